"""Recorder and bridge as separate processes: kill -9 mid-session, record -> replay."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition_bridge.sources import session as layout
from lorentz_live.record import SessionReader
from lorentz_live.simulator import free_loopback_endpoint
from tests.record.conftest import acknowledged, bridge_replay, recorder

pytestmark = pytest.mark.timeout(180)


def test_sigkill_leaves_every_acknowledged_frame(tmp_path, stack) -> None:
    kill_after = 7  # the kill lands wherever the writer is: frames come at 40 fps
    path, frames = stack
    record = free_loopback_endpoint()
    out = tmp_path / "session"
    rec = recorder(out, source=record, status_s=0)
    assert rec.wait_for(lambda line: line.startswith("recording"), 60), rec.lines
    bridge = bridge_replay(path, record, fps=40, loop=True, frames=400)
    try:
        assert rec.wait_for(lambda line: (acknowledged(line) or 0) >= kill_after, 60), rec.lines
        rec.popen.kill()  # SIGKILL: no handler, no flush, no close
        rec.finish(10)
    finally:
        bridge.kill()
    acked = max(acknowledged(line) or 0 for line in rec.lines)
    assert acked >= kill_after
    with SessionReader(out) as reader:
        assert reader.frame_count >= acked  # at most one more, written but not yet reported
        assert reader.frame_count <= acked + 1
        for index in range(reader.frame_count):
            pixels, header = reader.frame(index)
            source_index = header["seq"] % len(frames)
            np.testing.assert_array_equal(pixels, frames[source_index])
            assert header["temperature_k"] == 300.0 - source_index
            assert header["extra"] == {"n": source_index}
        seqs = [header["seq"] for header in reader.frame_headers]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # lossless: no gap


def test_record_then_replay_gives_identical_pixels_and_metadata(tmp_path, stack) -> None:
    path, frames = stack
    first, second = tmp_path / "first", tmp_path / "second"
    for source, out in ((path, first), (first, second)):
        record = free_loopback_endpoint()
        rec = recorder(out, source=record, idle_timeout=30, status_s=5)
        assert rec.wait_for(lambda line: line.startswith("recording"), 60), rec.lines
        # recorded timing by default (the npy sidecar has none: --fps for the first leg)
        options = {"fps": 30} if source == path else {}
        bridge = bridge_replay(source, record, **options)
        code, err = rec.finish(90)
        bridge.kill()
        assert code == 0, err
        assert "end of stream" in rec.lines[-1], rec.lines
    with SessionReader(first) as one, SessionReader(second) as two:
        assert one.frame_count == two.frame_count == len(frames)
        original_gaps = np.diff([h["timestamp_ns"] for h in one.frame_headers]) * 1e-9
        replay_gaps = np.diff([h["timestamp_ns"] for h in two.frame_headers]) * 1e-9
        # replayed at the recorded timing (generous: loaded machines run late, never early)
        assert np.all(replay_gaps > 0.5 * original_gaps)
        for index in range(len(frames)):
            pixels_one, header_one = one.frame(index)
            pixels_two, header_two = two.frame(index)
            np.testing.assert_array_equal(pixels_one, frames[index])
            np.testing.assert_array_equal(pixels_two, pixels_one)
            assert pixels_two.dtype == pixels_one.dtype
            assert header_two["recorded_seq"] == header_one["seq"]
            assert header_two["recorded_timestamp_ns"] == header_one["timestamp_ns"]
            kept = {k: v for k, v in header_one.items() if k not in layout.REPLAY_DROPS}
            replayed = {k: header_two[k] for k in kept}
            assert replayed == kept
        kinds = [event["kind"] for event in two.events]
        assert kinds[0] == "series_start" and kinds[-1] == "end_of_stream"
