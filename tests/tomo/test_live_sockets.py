"""Live tilt series through real sockets: ``lorentz-bridge simulate-tilt`` (a subprocess)
-> ZeroMQ -> the live runner with ``run --tomo-out``'s collector -> B.npz."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lorentz_live.cli import _tomo_collector
from lorentz_live.live import LiveConfig, LiveEngine
from lorentz_live.live.runner import LiveRunner
from lorentz_live.tomo.fields import spectral_divergence

pytestmark = pytest.mark.timeout(240)

SIZE = 32


def _bridge(tmp_path: Path, seed: int) -> tuple[subprocess.Popen, str, Path, threading.Thread]:
    """Start the simulator on a random loopback port; (process, its address, truth file,
    the thread reading its log, which ends when the process does)."""
    truth = tmp_path / "truth.npz"
    command = [sys.executable, "-m", "acquisition_bridge", "simulate-tilt"]
    command += ["--bind", "tcp://127.0.0.1:*", "--size", str(SIZE), "--limit-deg", "60"]
    command += ["--step-deg", "10", "--fps", "20", "--seed", str(seed), "--truth", str(truth)]
    command += ["--wait-subscribers", "1", "--heartbeat-s", "0.2", "--status-s", "60"]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert process.stderr is not None
    stream = process.stderr

    def read_log() -> None:
        with stream:
            for line in stream:
                lines.put(line)

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert process.poll() is None, "the bridge exited before publishing"
            continue
        if "publishing on " in line:
            address = line.split("publishing on ")[1].split()[0].rstrip(",")
            return process, address, truth, reader
    process.kill()
    raise AssertionError("the bridge never said where it publishes")


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[:, mask].ravel(), b[:, mask].ravel()
    return float(np.dot(x - x.mean(), y - y.mean()) / (x.std() * y.std() * x.size))


def test_simulated_tilt_series_through_the_sockets_gives_a_tomogram(tmp_path: Path) -> None:
    # +-60 deg in 10 deg steps, 32 px, SITIE phases of the live loop (no SIPRAD).  Measured
    # over seeds 0-4: correlation with the true B inside the material 0.79-0.95 for b,
    # 0.73-0.90 for b_vfet, b above b_vfet in all five
    seed = 4
    out = tmp_path / "tomo"
    out.mkdir()
    process, address, truth_path, reader = _bridge(tmp_path, seed)
    try:
        collector, status = _tomo_collector(str(out))  # as run --tomo-out wires them
        runner = LiveRunner(
            LiveEngine(LiveConfig()),
            address,
            refine=False,
            idle_timeout_s=120,
            header_extras=lambda: {"tomo": status.header()},
        )
        runner.tomo = collector
        summary = runner.run()  # until the bridge's end_of_stream
        assert summary.ended_by == "end of stream"
        assert process.wait(timeout=60) == 0
        assert collector.wait(timeout_s=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
    files = sorted(out.glob("tomo_*.npz"))
    assert [f.name for f in files] == [
        f"tomo_tilt-x-skyrmion_tube-seed{seed}_tilt-y-skyrmion_tube-seed{seed}.npz"
    ]
    announced = status.header()  # what the results stream tells the viewer
    assert [Path(v["path"]).name for v in announced["volumes"]] == [files[0].name]
    assert all(info["complete"] for info in announced["series"].values())
    with np.load(files[0]) as data, np.load(truth_path) as truth:
        b, b_vfet, mask, b_true = data["b"], data["b_vfet"], truth["mask"], truth["b"]
        assert float(data["pixel_size_nm"]) == 5.0
    assert b.shape == b_vfet.shape == (3, SIZE, SIZE, SIZE)
    div = spectral_divergence(torch.from_numpy(b).double()).abs().max()
    assert div < 1e-4 * np.linalg.norm(b, axis=0).max()
    assert _correlation(b, b_true, mask) > 0.65
    assert _correlation(b_vfet, b_true, mask) > 0.6
