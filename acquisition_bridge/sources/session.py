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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

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


class Headers(Sequence):
    """The first ``count`` JSON headers of a session stream file, decoded on demand.

    Holds only the ``header_end`` offsets (8 bytes per entry) in memory, so a
    night-long session does not load a million headers to replay or read one;
    iteration reads the JSON in blocks of :attr:`BLOCK` entries.
    """

    BLOCK = 4096

    def __init__(self, handle: Any, count: int) -> None:
        self._bytes = handle[HEADER_BYTES]
        self._ends = np.asarray(handle[HEADER_END][:count], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._decode(start, stop)
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"header {index} out of range (0..{len(self) - 1})")
        return self._decode(position, position + 1)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for start in range(0, len(self), self.BLOCK):
            yield from self._decode(start, min(start + self.BLOCK, len(self)))

    def _decode(self, start: int, stop: int) -> list[dict[str, Any]]:
        if stop <= start:
            return []
        first = int(self._ends[start - 1]) if start else 0
        raw = bytes(self._bytes[first : int(self._ends[stop - 1])])
        ends = self._ends[start:stop] - first
        starts = np.concatenate([[0], ends[:-1]])
        return [json.loads(raw[a:b]) for a, b in zip(starts, ends, strict=True)]


def headers(handle: Any, count: int) -> Headers:
    """The first ``count`` JSON headers of a session stream file (lazy, see :class:`Headers`)."""
    return Headers(handle, count)


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
