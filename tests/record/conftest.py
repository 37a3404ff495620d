"""Fixtures for the recording tests: a stack with a sidecar, bridge and recorder processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lorentz_live.simulator import free_loopback_endpoint
from tests.bridge.conftest import CAMERA_MICROSCOPE

BIN = Path(sys.executable).parent
MICROSCOPE = CAMERA_MICROSCOPE


def stack_frames(count: int, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """[count, h, w] uint16 noisy frames, every one different."""
    rng = np.random.default_rng(seed)
    return rng.poisson(200.0, (count, *shape)).astype("<u2")


@pytest.fixture
def stack(tmp_path) -> tuple[Path, np.ndarray]:
    """A 6-frame 96 x 80 stack with a sidecar (microscope keys, per-frame temperature)."""
    frames = stack_frames(6, (96, 80))
    path = tmp_path / "movie.npy"
    np.save(path, frames)
    sidecar = {
        **MICROSCOPE,
        "series_id": "cooling-1",
        "per_frame": [{"temperature_k": 300.0 - i, "extra": {"n": i}} for i in range(6)],
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path, frames


class Process:
    """A child process whose stdout lines are collected by a thread (reads never block)."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.popen.stdout, self.lines), (self.popen.stderr, self.errors))
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(predicate(line) for line in list(self.lines)):
                return True
            if self.popen.poll() is not None:
                time.sleep(0.2)
                return any(predicate(line) for line in list(self.lines))
            time.sleep(0.02)
        return False

    def finish(self, timeout_s: float = 60.0) -> tuple[int, str]:
        """Wait for the exit (kill after ``timeout_s``); (return code, stderr)."""
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        for thread in self._threads:
            thread.join(5.0)
        for stream in (self.popen.stdout, self.popen.stderr):
            stream.close()
        return self.popen.returncode, "\n".join(self.errors)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.finish(10.0)


def bridge_replay(path: Path, record: str, **options: Any) -> Process:
    """``lorentz-bridge replay PATH`` with a lossless path on ``record``."""
    argv = [str(BIN / "lorentz-bridge"), "replay", str(path), "--bind", free_loopback_endpoint()]
    argv += ["--record-bind", record, "--quiet"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return Process(argv)


def recorder(out: Path, *, source: str | None = None, results: str | None = None, **options: Any):
    argv = [str(BIN / "lorentz-live"), "record", "--out", str(out)]
    if source:
        argv += ["--source", source]
    if results:
        argv += ["--results", results]
    for name, value in options.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return Process(argv)


def acknowledged(line: str) -> int | None:
    """Frames a recorder status line says are on disk."""
    if "recorded frames" not in line:
        return None
    return int(line.split("recorded frames", 1)[1].split(maxsplit=1)[0])
