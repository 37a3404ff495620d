"""The live loop through real sockets: bridge publisher -> runner -> results subscriber."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from acquisition_bridge.protocol import Frame as WireFrame
from acquisition_bridge.results import ResultSubscriber
from acquisition_bridge.transport import Publisher
from lorentz_live.live import LiveEngine
from lorentz_live.live.runner import LiveRunner
from tests.helpers import correlation
from tests.live.conftest import PARAMS, movie

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def session(tmp_path, live_config):
    """A publisher, a runner in a thread and a results subscriber, all on random ports."""
    publisher = Publisher("tcp://127.0.0.1:*", source="test-camera")
    runner = LiveRunner(
        LiveEngine(live_config),
        publisher.address,
        results_bind="tcp://127.0.0.1:*",
        stats=tmp_path / "stats.jsonl",
        result_subscribers=1,
    )
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault("summary", runner.run()), daemon=True
    )
    thread.start()
    assert runner.wait_started(10.0)
    results = ResultSubscriber(runner.results_address)
    assert publisher.wait_for_subscribers(1, timeout_s=10.0)
    yield publisher, runner, results, outcome, thread
    runner.stop()
    thread.join(30.0)
    results.close()
    publisher.close()


def wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def until_method(results, seq: int, method: str, timeout_s: float = 120.0):
    """Poll the results stream until ``method``'s result for frame ``seq`` arrives."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = results.recv_latest(timeout_s=0.5)
        if result is not None and (result.seq, result.header["method"]) == (seq, method):
            return result
    raise AssertionError(f"no {method} result for frame {seq}")


def test_movie_end_to_end_with_bad_frames_and_a_defocus_change(session, tmp_path) -> None:
    publisher, runner, results, outcome, thread = session
    answered = []
    runner.engine.add_listener(answered.append)
    frames = movie(4)
    metadata = {**PARAMS.to_dict(), "temperature_k": 40.0, "series_id": "run-1"}
    changed = {**metadata, "defocus_nm": -8.0e5}
    plan = [
        (frames[0].image, metadata, "good"),
        (frames[1].image, metadata, "good"),
        (np.full((64, 64), np.nan, np.float32), metadata, "rejected"),  # the subscriber drops it
        (frames[2].image, {**metadata, "defocus_nm": 0.0}, "bad"),  # the engine refuses it
        (frames[2].image, metadata, "good"),
        (frames[3].image, changed, "good"),
    ]
    received, good = [], []
    for pixels, header, expect in plan:
        seq = publisher.publish(WireFrame(np.asarray(pixels, np.float32), header))
        if expect == "bad":
            wait_until(lambda: runner.summary.bad_frames == 1)
        if expect != "good":
            continue
        good.append(seq)
        received.append(until_method(results, seq, "siprad"))
    publisher.end_of_stream()
    thread.join(60.0)
    summary = outcome["summary"]
    assert summary.ended_by == "end of stream"
    assert (summary.frames, summary.refined, summary.bad_frames, summary.rejected) == (4, 4, 1, 1)
    # every good frame was answered by the instant method before SIPRAD refined it
    for seq in good:
        methods = [r.method for r in answered if r.seq == seq]
        assert methods == ["sitie", "siprad"], (seq, methods)

    assert [r.header["warm"] for r in received] == [False, True, True, False]
    assert "defocus_nm" in received[3].header["restart_reason"]
    truth = [frames[0].phase, frames[1].phase, frames[2].phase, frames[3].phase]
    for result, phase in zip(received, truth, strict=True):
        assert set(result.arrays) == {"phi_m", "b_x", "b_y", "rgb", "image_fit", "loss"}
        assert result.arrays["phi_m"].shape == (64, 64) and result.arrays["rgb"].shape == (
            64,
            64,
            3,
        )
        assert result.unit("b_x") == "T nm"
        assert result.header["frame"]["temperature_k"] == 40.0
        assert correlation(torch.from_numpy(result.arrays["phi_m"].copy()), phase) > 0.8

    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [(line["seq"], line["method"]) for line in lines] == [
        (r.seq, r.method) for r in answered
    ]
    assert {"latency_s", "iterations", "loss", "warm", "dropped_so_far"} <= set(lines[0])
    assert lines[-1]["bad_frames_so_far"] == 1


def test_frames_arriving_during_a_cold_start_are_all_answered(session) -> None:
    publisher, runner, results, outcome, thread = session
    answered = []
    runner.engine.add_listener(answered.append)
    frames = movie(2)
    metadata = PARAMS.to_dict()
    publisher.publish(WireFrame(frames[0].image, metadata))
    # ten frames while the first (cold) refinement runs: each gets an instant answer,
    # only the newest waiting one is refined next
    for _ in range(10):  # paced below the publisher's send high-water mark
        time.sleep(0.02)
        publisher.publish(WireFrame(frames[1].image, metadata))
    until_method(results, 10, "siprad")
    publisher.end_of_stream()
    thread.join(60.0)
    summary = outcome["summary"]
    instant = sorted(r.seq for r in answered if r.method == "sitie")
    refined = [r.seq for r in answered if r.method == "siprad"]
    assert summary.frames == len(instant) and summary.frames + summary.dropped == 11
    assert refined[-1] == 10 and len(refined) < 11
    first = next(r for r in answered if r.method == "siprad")
    assert (first.warm, first.restart_reason) == (False, "first frame")
    assert summary.refined == len(refined) and summary.superseded > 0
    # the instant answers did not wait for the cold start
    assert [r.method for r in answered].index("siprad") > 1
