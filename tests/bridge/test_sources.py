"""Sources: the registry, replay of stacks with sidecar JSON, the watch folder."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acquisition_bridge.keys import MICROSCOPE_DEFAULTS, MICROSCOPE_KEYS
from acquisition_bridge.sources import (
    EndOfSource,
    MemorySource,
    Pacer,
    SourceError,
    available_sources,
    load_source,
)
from acquisition_bridge.sources.replay import ReplaySource
from acquisition_bridge.sources.watch import WatchSource


def _read_all(source: Any, limit: int = 100) -> list:
    frames = []
    with source:
        for _ in range(limit):
            try:
                frame = source.read(1.0)
            except EndOfSource:
                break
            if frame is not None:
                frames.append(frame)
    return frames


def _stack(count: int = 4, shape: tuple[int, int] = (9, 7), dtype: str = "<u2") -> np.ndarray:
    return np.arange(count * shape[0] * shape[1]).reshape(count, *shape).astype(dtype)


def test_registry_finds_builtin_and_entry_point_sources() -> None:
    sources = available_sources()
    assert {"replay", "watch", "simulate"} <= set(sources)
    assert load_source("replay") is ReplaySource
    assert load_source("simulate").__module__ == "lorentz_live.simulator"
    with pytest.raises(SourceError, match=r"unknown source 'nikon'.*replay"):
        load_source("nikon")


def test_memory_source_paces_and_ends(meta) -> None:
    images = list(_stack(3))
    start = time.monotonic()
    frames = _read_all(MemorySource(images, meta, per_frame=[{"i": i} for i in range(3)], fps=20))
    assert time.monotonic() - start >= 2 / 20 - 0.01
    assert [f.metadata["i"] for f in frames] == [0, 1, 2]
    np.testing.assert_array_equal(frames[2].pixels, images[2])


def test_pacer_returns_none_early_when_the_next_frame_is_not_due() -> None:
    pacer = Pacer(2.0)
    assert pacer.wait(0.01)
    start = time.monotonic()
    assert not pacer.wait(0.05)
    assert 0.04 < time.monotonic() - start < 0.3


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".mrc", ".h5"])
def test_replay_reads_each_format_with_its_sidecar(tmp_path, meta, suffix) -> None:
    stack = _stack(4, (9, 7), "<f4" if suffix == ".mrc" else "<u2")
    path = tmp_path / f"movie{suffix}"
    if suffix == ".npy":
        np.save(path, stack)
    elif suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, stack, photometric="minisblack")
    elif suffix == ".mrc":
        import mrcfile

        with mrcfile.new(path) as mrc:
            mrc.set_data(stack)
    else:
        import h5py

        with h5py.File(path, "w") as handle:
            handle["entry/data"] = stack
    per_frame = [{"temperature_k": 300.0 - 10 * i} for i in range(4)]
    sidecar = dict(meta, fps=0, per_frame=per_frame, beamline="TEM-2")
    (tmp_path / "movie.json").write_text(json.dumps(sidecar))
    frames = _read_all(ReplaySource(path))
    assert len(frames) == 4
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.pixels, stack[index])
        assert frame.metadata["temperature_k"] == 300.0 - 10 * index
        assert frame.metadata["beamline"] == "TEM-2"
        assert frame.metadata["series_id"] == "movie"
        assert {k: frame.metadata[k] for k in meta} == meta
        assert "per_frame" not in frame.metadata and "fps" not in frame.metadata


def test_replay_follows_recorded_timestamps_and_loops(tmp_path, meta) -> None:
    path = tmp_path / "burst.npy"
    np.save(path, _stack(3))
    (tmp_path / "burst.npy.json").write_text(json.dumps(dict(meta, timestamps_s=[5.0, 5.0, 5.2])))
    source = ReplaySource(path, loop=True)
    times = []
    with source:
        while len(times) < 4:
            if source.read(1.0) is not None:
                times.append(time.monotonic())
    assert times[1] - times[0] < 0.1
    assert 0.15 < times[2] - times[0] < 0.4
    assert times[3] - times[2] < 0.1  # the loop starts again at the first timestamp


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (None, "no sidecar"),
        ("{not json", "not valid JSON"),
        ('["kv"]', "JSON object"),
        ("STRING_DEFOCUS", "defocus_nm must be a number"),
        ("SHORT_PER_FRAME", "per_frame must be a list of 3"),
    ],
)
def test_replay_names_the_problem_with_bad_metadata(tmp_path, meta, sidecar, message) -> None:
    path = tmp_path / "stack.npy"
    np.save(path, _stack(3))
    texts = {
        "STRING_DEFOCUS": json.dumps(dict(meta, defocus_nm="-1 mm")),
        "SHORT_PER_FRAME": json.dumps(dict(meta, per_frame=[{}])),
    }
    if sidecar is not None:
        (tmp_path / "stack.json").write_text(texts.get(sidecar, sidecar))
    with pytest.raises(SourceError, match=message):
        ReplaySource(path)


def test_sidecars_take_any_subset_of_keys_with_the_documented_defaults(tmp_path) -> None:
    """As ``reconstruct --params``: kV, pixel size and defocus suffice (MICROSCOPE_DEFAULTS)."""
    np.save(tmp_path / "movie.npy", _stack(2))
    given = {"kv": 300.0, "pixel_size_nm": 6.0, "defocus_nm": -6.0e5}
    (tmp_path / "movie.json").write_text(json.dumps(given))
    with ReplaySource(tmp_path / "movie.npy", fps=0) as source:
        frame = source.read(1.0)
    assert frame is not None
    assert {key: frame.metadata[key] for key in MICROSCOPE_KEYS} == {
        **MICROSCOPE_DEFAULTS,
        **given,
    }
    folder = tmp_path / "watched"
    folder.mkdir()
    with WatchSource(folder, poll_s=0.02, settle_s=0.05) as source:
        (folder / "img.json").write_text(json.dumps({"defocus_nm": -8.0e5}))
        np.save(folder / "img.npy", _stack(1))
        deadline = time.monotonic() + 10.0
        while (frame := source.read(0.05)) is None and time.monotonic() < deadline:
            pass
    assert frame is not None
    assert (frame.metadata["defocus_nm"], frame.metadata["cs_nm"]) == (-8.0e5, 2.0e5)


def test_replay_rejects_files_that_are_not_image_stacks(tmp_path, meta) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), "u1"), photometric="rgb")
    with pytest.raises(SourceError, match="colour TIFF"):
        ReplaySource(tmp_path / "rgb.tif", metadata=meta)
    (tmp_path / "a.json").write_text(json.dumps(meta))
    np.save(tmp_path / "a.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(SourceError, match="expected an image"):
        ReplaySource(tmp_path / "a.npy")
    np.save(tmp_path / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SourceError, match="cannot read"):  # never unpickled
        ReplaySource(tmp_path / "a.npy")
    (tmp_path / "a.tif").write_bytes(b"II*\x00 truncated")
    with pytest.raises(SourceError, match="cannot read as tiff"):
        ReplaySource(tmp_path / "a.tif", metadata=meta)
    with pytest.raises(SourceError, match="unknown image format"):
        ReplaySource(tmp_path / "a.json", metadata=meta)
    with pytest.raises(SourceError, match="not found"):
        ReplaySource(tmp_path / "missing.npy", metadata=meta)


def _write_slowly(path: Path, data: bytes, pieces: int, pause_s: float) -> None:
    with open(path, "wb") as handle:
        for index in range(pieces):
            handle.write(data[index * len(data) // pieces : (index + 1) * len(data) // pieces])
            handle.flush()
            time.sleep(pause_s)


def test_watch_publishes_each_new_file_once_it_is_complete(tmp_path, meta) -> None:
    np.save(tmp_path / "old.npy", _stack(1))  # present at start: skipped
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    source = WatchSource(tmp_path, metadata=meta, poll_s=0.02, settle_s=0.15)
    stack = _stack(2, (64, 48))
    buffer = tmp_path / "buffer.npy"
    np.save(buffer, stack)
    data = buffer.read_bytes()
    buffer.unlink()
    frames: list = []
    with source:
        writer = threading.Thread(
            target=_write_slowly, args=(tmp_path / "img_001.npy", data, 5, 0.05)
        )
        writer.start()
        deadline = time.monotonic() + 5.0
        while len(frames) < 2 and time.monotonic() < deadline:
            frame = source.read(0.05)
            if frame is not None:
                assert writer.is_alive() is False, "published before the file was complete"
                frames.append(frame)
        writer.join()
        # a second file with its own sidecar, written in one go
        (tmp_path / "img_002.json").write_text(json.dumps({"temperature_k": 12.5}))
        np.save(tmp_path / "img_002.npy", stack[:1] + 1)
        while len(frames) < 3 and time.monotonic() < deadline:
            frame = source.read(0.05)
            if frame is not None:
                frames.append(frame)
        assert source.read(0.3) is None  # nothing is published twice
    assert len(frames) == 3
    np.testing.assert_array_equal(frames[0].pixels, stack[0])
    np.testing.assert_array_equal(frames[1].pixels, stack[1])
    np.testing.assert_array_equal(frames[2].pixels, stack[0] + 1)
    assert frames[0].metadata["extra"]["file"] == "img_001.npy"
    assert frames[2].metadata["temperature_k"] == 12.5
    assert "temperature_k" not in frames[0].metadata


def test_watch_skips_files_without_metadata_and_broken_files(tmp_path, meta, caplog) -> None:
    source = WatchSource(tmp_path, poll_s=0.02, settle_s=0.05)
    with source:
        np.save(tmp_path / "no_meta.npy", _stack(1))
        (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
        (tmp_path / "good.json").write_text(json.dumps(meta))
        np.save(tmp_path / "good.npy", _stack(1))
        frames = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (not frames or source.skipped < 2):
            frame = source.read(0.05)
            if frame is not None:
                frames.append(frame)
    assert [f.metadata["extra"]["file"] for f in frames] == ["good.npy"]
    assert source.skipped == 2
    assert any("no_meta.npy" in r.message and "no sidecar" in r.message for r in caplog.records)


def test_watch_needs_an_existing_folder(tmp_path) -> None:
    with pytest.raises(SourceError, match="not found"):
        WatchSource(tmp_path / "nope")
