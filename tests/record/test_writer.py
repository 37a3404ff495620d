"""The session writer: readable by plain h5py, never overwrites, stops cleanly on a full disk."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from lorentz_live.record import RecordError, SessionReader, SessionWriter
from tests.record.conftest import MICROSCOPE, stack_frames


def _header(seq: int) -> dict:
    return {"seq": seq, "timestamp_ns": 10**18 + seq, **MICROSCOPE, "extra": {"i": seq}}


def test_frames_and_results_read_back_with_plain_h5py(tmp_path) -> None:
    frames = stack_frames(4, (37, 53))  # odd, non-square: catches transposed bands
    maps = {
        name: np.random.default_rng(1).normal(size=(37, 53)) for name in ("phi_m", "b_x", "b_y")
    }
    with SessionWriter(tmp_path / "s", compression_threads=2) as writer:
        for seq, pixels in enumerate(frames):
            # compressed and uncompressed chunks mixed in one dataset
            assert writer.add_frame(pixels, _header(seq), compress=seq % 2 == 0)
        assert writer.add_result(
            {"seq": 2, "timestamp_ns": 5, "iterations": 7}, {**maps, "loss": [3.0, 2.0]}
        )
        assert writer.stats.uncompressed_frames == 2
    with h5py.File(tmp_path / "s" / "frames.h5", "r") as handle:  # no lorentz_live code
        np.testing.assert_array_equal(handle["pixels"][()], frames)
        assert list(handle["seq"]) == [0, 1, 2, 3]
        text = bytes(handle["header_json"][()])
        ends = handle["header_end"][()]
        assert json.loads(text[ends[0] : ends[1]])["extra"] == {"i": 1}
    with h5py.File(tmp_path / "s" / "results.h5", "r") as handle:
        np.testing.assert_allclose(handle["phi_m"][0], maps["phi_m"], rtol=1e-6)
        assert handle["b_x"].attrs["unit"] == "T nm"
    with SessionReader(tmp_path / "s") as reader:
        assert reader.result_headers[0]["loss"] == [3.0, 2.0]
        assert reader.frame_params(3).defocus_nm == MICROSCOPE["defocus_nm"]
        assert reader.info["software"]["lorentz_live"]


def test_headers_decode_on_demand_across_blocks(tmp_path, monkeypatch) -> None:
    from acquisition_bridge.sources import session as layout

    monkeypatch.setattr(layout.Headers, "BLOCK", 3)  # iteration crosses block edges
    with SessionWriter(tmp_path / "s") as writer:
        for seq in range(8):
            assert writer.add_frame(np.zeros((4, 4), "<u2"), _header(seq))
    with SessionReader(tmp_path / "s") as reader:
        headers = reader.frame_headers
        assert isinstance(headers, layout.Headers) and len(headers) == 8
        assert [h["extra"]["i"] for h in headers] == list(range(8))
        assert headers[-1]["seq"] == 7 and headers[2]["extra"] == {"i": 2}
        assert [h["seq"] for h in headers[2:5]] == [2, 3, 4]
        assert [h["seq"] for h in headers[::3]] == [0, 3, 6]
        with pytest.raises(IndexError, match="header 8 out of range"):
            headers[8]


def test_an_existing_session_is_never_overwritten(tmp_path) -> None:
    folder = tmp_path / "s"
    with SessionWriter(folder) as writer:
        writer.add_frame(stack_frames(1, (8, 8))[0], _header(0))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(RecordError, match="exists; a recording never overwrites"):
        SessionWriter(folder)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_frame_of_another_shape_stops_recording_and_keeps_the_rest(tmp_path) -> None:
    with SessionWriter(tmp_path / "s") as writer:
        assert writer.add_frame(stack_frames(1, (8, 8))[0], _header(0))
        assert not writer.add_frame(stack_frames(1, (8, 9))[0], _header(1))
        assert "differs from the session's" in writer.error
        assert not writer.add_frame(stack_frames(1, (8, 8))[0], _header(2))
    with SessionReader(tmp_path / "s") as reader:
        assert reader.frame_count == 1


def test_reserve_stops_before_the_disk_is_full(tmp_path) -> None:
    writer = SessionWriter(tmp_path / "s", reserve_bytes=2**62)
    assert not writer.add_frame(stack_frames(1, (8, 8))[0], _header(0))
    assert writer.error.startswith("disk full:") and "\n" not in writer.error
    writer.close()


FILLER = """
import resource, sys
import numpy as np
from lorentz_live.record import SessionWriter
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # files cannot grow past it
frames = np.random.default_rng(0).poisson(200.0, (4, 256, 256)).astype("<u2")
writer = SessionWriter(sys.argv[1], reserve_bytes=0)
seq = 0
while writer.add_frame(frames[seq % 4], {"seq": seq, "timestamp_ns": seq}, compress=False):
    print(seq, flush=True)
    seq += 1
print("ERROR", writer.error, flush=True)
writer.close()
"""


def test_a_full_disk_gives_one_clear_line_and_a_readable_session(tmp_path) -> None:
    limit_mib = 2
    folder = tmp_path / "s"
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FILLER), str(folder), str(limit_mib * 2**20)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[-1].startswith("ERROR disk full writing"), lines[-3:]
    acknowledged = len(lines) - 1
    assert acknowledged >= 1
    frames = np.random.default_rng(0).poisson(200.0, (4, 256, 256)).astype("<u2")
    with SessionReader(folder) as reader:
        assert reader.frame_count >= acknowledged
        for index in range(acknowledged):
            np.testing.assert_array_equal(reader.frame(index)[0], frames[index % 4])
