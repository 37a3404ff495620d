"""Separate processes as at the microscope: bridge simulate -> lorentz-live run -> a client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from acquisition_bridge.results import ResultSubscriber
from lorentz_live.simulator import bridge_command, free_loopback_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
BIN = Path(sys.executable).parent


def test_bridge_engine_and_client_in_three_processes(tmp_path) -> None:
    results = free_loopback_endpoint()
    source = free_loopback_endpoint()
    command = bridge_command(
        source, size=48, fps=4, frames=40, temperature_start_k=250, truth=tmp_path / "truth.h5"
    )
    bridge = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = ResultSubscriber(results)
    try:
        engine = subprocess.run(
            [
                str(BIN / "lorentz-live"),
                "run",
                "--source",
                source,
                "--results",
                results,
                "--frames",
                "3",
                "--stats",
                str(tmp_path / "stats.jsonl"),
                "--threads",
                "1",
                "--iterations",
                "40",
                "--idle-timeout",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        latest = client.recv_latest(timeout_s=5.0)
    finally:
        # the bridge ends by itself after its 40 frames (10 s at 4 fps)
        _, bridge_log = bridge.communicate(timeout=120)
        client.close()
    assert engine.returncode == 0, engine.stderr[-2000:] + bridge_log[-2000:]
    assert "3 frames" in engine.stdout
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    answers = [line for line in lines if line["method"] == "sitie"]
    refined = [line for line in lines if line["method"] == "siprad"]
    assert len(answers) == 3 and 1 <= len(refined) <= 3
    assert (refined[0]["warm"], refined[0]["restart_reason"]) == (False, "first frame")
    # the last answered frame is refined before the run ends
    assert refined[-1]["seq"] == answers[-1]["seq"]
    # later frames are warm unless the movie changed enough to trip the divergence check
    last = refined[-1]
    assert len(refined) == 1 or last["warm"] or "diverged" in last["restart_reason"], lines
    assert answers[-1]["dropped_so_far"] >= answers[-1]["seq"] - 2
    assert all(line["latency_s"] > 0 for line in lines)
    assert latest is None or latest.arrays["phi_m"].shape == (48, 48)


def test_run_rejects_bad_options(capsys) -> None:
    from lorentz_live.cli import main

    assert main(["run", "--frames", "0"]) == 2
    assert "--frames must be >= 1" in capsys.readouterr().err
    assert main(["run", "--budget", "-1"]) == 2
    assert "--budget must be > 0" in capsys.readouterr().err
