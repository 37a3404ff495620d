"""The raw frames of a recorded session (docs/session-format.md), read for replay.

A session is a folder; its raw frames are the HDF5 file ``frames.h5``, written
append-only in SWMR mode by ``lorentz_live.record``.  This module names that
layout (the writer imports these names) and reads it back with h5py, which is
imported only here, when a session is replayed: the bridge itself still needs
only numpy, pyzmq and msgpack.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from acquisition_bridge.sources import SourceError

FRAMES_FILE = "frames.h5"
#: [n, h, w] pixels as received (wire dtype), one chunk row band per HDF5 chunk.
PIXELS = "pixels"
#: [n] int64 source ``seq`` of each frame; written last, so its length counts the frames.
SEQ = "seq"
#: [n] int64 ``timestamp_ns`` of each frame (camera time, UTC ns).
TIMESTAMPS = "timestamp_ns"
#: UTF-8 JSON of every frame's full header, concatenated; ``header_end[i]`` ends frame i.
HEADER_BYTES = "header_json"
HEADER_END = "header_end"
#: Keys of a recorded header that a replay sets anew (the envelope and the pixel layout).
REPLAY_DROPS = ("protocol", "kind", "seq", "timestamp_ns", "source", "stream_id", "shape", "dtype")


def is_session(path: Path) -> bool:
    """True if ``path`` is a session folder with recorded frames."""
    return path.is_dir() and (path / FRAMES_FILE).is_file()


def open_hdf5(path: Path) -> Any:
    """Open a session HDF5 file read-only, also after its writer was killed.

    A writer killed in SWMR mode leaves the file marked "open for writing";
    h5py opens such a file only as a SWMR reader, which is what this does.
    """
    try:
        h5py = importlib.import_module("h5py")
    except ImportError:
        raise SourceError("replaying a session needs h5py: pip install h5py") from None
    try:
        return h5py.File(path, "r", swmr=True, locking=False)
    except OSError as exc:
        raise SourceError(f"{path}: cannot open as HDF5: {exc}") from None


def committed(handle: Any, names: tuple[str, ...]) -> int:
    """Entries complete in every one of ``names`` (the others may hold one more)."""
    return min(handle[name].shape[0] for name in names)


def headers(handle: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` JSON headers of a session stream file."""
    ends = np.asarray(handle[HEADER_END][:count], dtype=np.int64)
    raw = bytes(handle[HEADER_BYTES][: int(ends[-1])]) if count else b""
    starts = np.concatenate([[0], ends[:-1]])
    return [json.loads(raw[a:b]) for a, b in zip(starts, ends, strict=True)]


class SessionFrames:
    """Frames of a session: ``pixels`` (an h5py dataset, read lazily), headers, timing."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FRAMES_FILE
        if not self.path.is_file():
            raise SourceError(f"{folder}: not a session (no {FRAMES_FILE})")
        self._handle = open_hdf5(self.path)
        try:
            self.count = committed(self._handle, (SEQ, PIXELS, TIMESTAMPS, HEADER_END))
            if self.count == 0:
                raise SourceError(f"{folder}: the session holds no frames")
            self.pixels = self._handle[PIXELS]
            self.headers = headers(self._handle, self.count)
            self.timestamps_ns = np.asarray(self._handle[TIMESTAMPS][: self.count])
        except (KeyError, ValueError) as exc:
            self.close()
            raise SourceError(f"{self.path}: not a session frames file ({exc})") from None

    def replay_metadata(self, index: int) -> dict[str, Any]:
        """Header keys to publish frame ``index`` with; the original seq and time kept."""
        header = self.headers[index]
        keys = {key: value for key, value in header.items() if key not in REPLAY_DROPS}
        keys["recorded_seq"] = header["seq"]
        keys["recorded_timestamp_ns"] = header["timestamp_ns"]
        return keys

    def close(self) -> None:
        self._handle.close()
