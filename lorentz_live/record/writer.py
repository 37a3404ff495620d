"""Crash-safe, append-only writer of a session folder (docs/session-format.md).

One :class:`SessionWriter` per session; the recorder process, the engine and
the viewer's record button all use it.  Every append is durable when it returns
(HDF5 flush + ``fsync``), and the HDF5 files are written in SWMR mode, so a
``kill -9`` or a power cut at any moment leaves a readable session holding every
frame an ``add_*`` call returned for.  The folder is created with ``mkdir``, so
a recording never overwrites an existing session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import math
import os
import platform
import shutil
import sys
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from acquisition_bridge.sources import session as layout

FORMAT = "lorentz-live-session"
FORMAT_VERSION = 1
SESSION_FILE = "session.json"
ENGINE_FILE = "engine.json"
RESULTS_FILE = "results.h5"
EVENTS_FILE = "events.jsonl"
#: Result maps stored per result ([h, w] float32 each); other arrays go into the header JSON.
RESULT_MAPS: dict[str, str] = {"phi_m": "rad", "b_x": "T nm", "b_y": "T nm"}
#: gzip level of the chunks (1: fastest; camera noise compresses little more at 9).
GZIP_LEVEL = 1
#: Bytes of free disk space kept: recording stops cleanly before the disk is full.
DEFAULT_RESERVE_BYTES = 256 * 2**20
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class RecordError(Exception):
    """Recording cannot start or continue; the message is one line naming the problem."""


def software_versions() -> dict[str, str]:
    """Versions of the software that wrote a session."""
    from lorentz_live import __version__

    return {
        "lorentz_live": __version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _json_bytes(values: Mapping[str, Any]) -> bytes:
    return json.dumps(values, separators=(",", ":"), default=_jsonable).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def write_json_atomic(path: Path, values: Mapping[str, Any]) -> None:
    """Write ``path`` so that it is either the old or the complete new file, durably."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(json.dumps(values, indent=1, default=_jsonable).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _describe(error: BaseException, path: Path) -> str:
    """One line for an I/O failure, naming a full disk as such."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code in _DISK_FULL or "No space left" in text or "File too large" in text:
        return f"disk full writing {path}: recording stopped ({text.splitlines()[0]})"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write {path}: recording stopped"
    return f"cannot write {path}: recording stopped ({text.splitlines()[0] if text else error!r})"


class _Stream:
    """One append-only SWMR file of a session: maps [n, h, w] plus seq, time and headers.

    Created at its first append, when shapes and dtypes are known (SWMR files
    cannot gain datasets later).  Maps are chunked by row bands and compressed
    (shuffle + gzip) in a thread pool through HDF5's direct chunk write, so any
    HDF5 reader decodes them; a band written while the writer is behind is
    stored uncompressed (its chunk filter mask says so), which keeps the
    recording lossless and at camera rate.
    """

    def __init__(
        self,
        path: Path,
        maps: Mapping[str, np.ndarray],
        units: Mapping[str, str],
        pool: ThreadPoolExecutor | None,
        attrs: Mapping[str, Any],
    ) -> None:
        self.path = path
        self.pool = pool
        self.count = 0
        self.header_bytes = 0
        self.shapes = {name: array.shape for name, array in maps.items()}
        self.dtypes = {name: array.dtype for name, array in maps.items()}
        handle = h5py.File(path, "x", libver="latest", locking=False)
        try:
            self.bands = {}
            for name, array in maps.items():
                height, width = array.shape
                bands = max(1, min(16, array.nbytes // 2**20))
                rows = math.ceil(height / bands)
                self.bands[name] = rows
                dataset = handle.create_dataset(
                    name,
                    shape=(0, height, width),
                    maxshape=(None, height, width),
                    dtype=array.dtype,
                    chunks=(1, rows, width),
                    shuffle=True,
                    compression="gzip",
                    compression_opts=GZIP_LEVEL,
                )
                dataset.attrs["unit"] = units.get(name, "")
            for name in (layout.SEQ, layout.TIMESTAMPS, layout.HEADER_END):
                handle.create_dataset(name, (0,), "<i8", maxshape=(None,), chunks=(4096,))
            handle.create_dataset(
                layout.HEADER_BYTES, (0,), "u1", maxshape=(None,), chunks=(2**16,)
            )
            for key, value in attrs.items():
                handle.attrs[key] = value
            handle.swmr_mode = True
        except BaseException:
            handle.close()
            raise
        self.handle = handle
        self.descriptor = handle.id.get_vfd_handle()
        _fsync_folder(path.parent)

    def _chunks(self, name: str, array: np.ndarray, compress: bool) -> list[tuple[bytes, int]]:
        rows = self.bands[name]
        height = array.shape[0]
        pieces = []
        for top in range(0, height, rows):
            band = array[top : top + rows]
            if band.shape[0] < rows:  # the last chunk is stored full size
                band = np.concatenate([band, np.zeros((rows - band.shape[0], *band.shape[1:]))])
                band = band.astype(array.dtype)
            pieces.append(np.ascontiguousarray(band))
        if not compress:
            return [(piece.tobytes(), 0b11) for piece in pieces]  # skip shuffle and gzip

        def squeeze(piece: np.ndarray) -> tuple[bytes, int]:
            size = piece.dtype.itemsize
            shuffled = piece.reshape(-1).view(np.uint8).reshape(-1, size).T.tobytes()
            return zlib.compress(shuffled, GZIP_LEVEL), 0

        if self.pool is None or len(pieces) == 1:
            return [squeeze(piece) for piece in pieces]
        return list(self.pool.map(squeeze, pieces))

    def append(
        self,
        arrays: Mapping[str, np.ndarray],
        seq: int,
        timestamp_ns: int,
        header: bytes,
        *,
        compress: bool,
    ) -> None:
        for name, shape in self.shapes.items():
            array = arrays[name]
            if array.shape != shape or array.dtype != self.dtypes[name]:
                raise RecordError(
                    f"{self.path.name}: {name} {array.shape} {array.dtype} differs from the "
                    f"session's {shape} {self.dtypes[name]}; start a new session"
                )
        index = self.count
        handle = self.handle
        for name in self.shapes:
            dataset = handle[name]
            dataset.resize(index + 1, axis=0)
            chunks = self._chunks(name, arrays[name], compress)
            rows = self.bands[name]
            for band, (data, mask) in enumerate(chunks):
                dataset.id.write_direct_chunk((index, band * rows, 0), data, filter_mask=mask)
            dataset.flush()
        start = self.header_bytes
        end = start + len(header)
        text = handle[layout.HEADER_BYTES]
        text.resize(end, axis=0)
        text[start:end] = np.frombuffer(header, np.uint8)
        text.flush()
        for name, value in (
            (layout.TIMESTAMPS, timestamp_ns),
            (layout.HEADER_END, end),
            (layout.SEQ, seq),  # last: its length is the number of complete entries
        ):
            dataset = handle[name]
            dataset.resize(index + 1, axis=0)
            dataset[index] = value
            dataset.flush()
        handle.flush()
        os.fsync(self.descriptor)
        self.count, self.header_bytes = index + 1, end

    def close(self) -> None:
        self.handle.close()


@dataclasses.dataclass
class WriterStats:
    """Durable entries of a session so far; ``error`` is set when recording stopped."""

    frames: int = 0
    results: int = 0
    last_frame_seq: int | None = None
    last_result_seq: int | None = None
    uncompressed_frames: int = 0
    bytes_written: int = 0
    error: str | None = None


class SessionWriter:
    """Append frames, results and events to a new session folder; thread-safe.

    Parameters
    ----------
    folder : the session to create; it must not exist (never overwritten).
    command : the command line or UI action that started the recording.
    engine_config : the engine's settings (a mapping or dataclass), if known now.
    compression_threads : threads that gzip the chunks (default: CPU count).
    reserve_bytes : free disk space to keep; recording stops (with
        :attr:`error` set) before the disk holds less.

    Each ``add_*`` call returns once the entry is on disk (``fsync``) and returns
    ``False`` without writing if recording has stopped; :attr:`error` then holds
    one line saying why (disk full, no permission, ...).  Recording problems
    never raise from ``add_*``, so a live display calling them keeps running.
    Raises :class:`RecordError` only when the session cannot be created.
    """

    def __init__(
        self,
        folder: Path | str,
        *,
        command: str = "",
        engine_config: Any = None,
        compression_threads: int | None = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        self.folder = Path(folder)
        self.reserve_bytes = reserve_bytes
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._frames: _Stream | None = None
        self._results: _Stream | None = None
        threads = compression_threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(threads, "session-gzip") if threads > 1 else None
        try:
            self.folder.mkdir(parents=False)
        except FileExistsError:
            raise RecordError(
                f"{self.folder} exists; a recording never overwrites a session"
            ) from None
        except FileNotFoundError:
            raise RecordError(f"folder {self.folder.parent} does not exist") from None
        except OSError as exc:
            raise RecordError(f"cannot create session {self.folder}: {exc.strerror}") from None
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "software": software_versions(),
            "command": command or " ".join(sys.argv),
            "host": platform.node(),
        }
        try:
            write_json_atomic(self.folder / SESSION_FILE, info)
            self._events = open(self.folder / EVENTS_FILE, "ab")  # noqa: SIM115 (kept open)
        except OSError as exc:
            raise RecordError(_describe(exc, self.folder)) from None
        if engine_config is not None:
            self.set_engine_config(engine_config)

    @property
    def error(self) -> str | None:
        """Why recording stopped, or ``None`` while it runs."""
        return self.stats.error

    def set_engine_config(self, config: Any, *, software: Mapping[str, str] | None = None) -> bool:
        """Store the engine's settings (and the engine's software versions) in engine.json."""
        values = {
            "config": (
                dataclasses.asdict(config)
                if dataclasses.is_dataclass(config) and not isinstance(config, type)
                else config
            ),
            "software": dict(software) if software else software_versions(),
        }
        return self._guard(
            self.folder / ENGINE_FILE,
            lambda: write_json_atomic(self.folder / ENGINE_FILE, values),
        )

    def add_frame(
        self, pixels: np.ndarray, header: Mapping[str, Any], *, compress: bool = True
    ) -> bool:
        """Append one raw frame with its full header (``seq``, ``timestamp_ns`` required).

        ``compress=False`` stores it uncompressed (the recorder does so while it
        is behind the camera).
        """
        pixels = np.asarray(pixels)

        def write() -> None:
            if self._frames is None:
                self._frames = _Stream(
                    self.folder / layout.FRAMES_FILE,
                    {layout.PIXELS: pixels},
                    {layout.PIXELS: "counts"},
                    self._pool,
                    {"content": "raw camera frames", "format": FORMAT},
                )
            self._frames.append(
                {layout.PIXELS: pixels},
                int(header["seq"]),
                int(header["timestamp_ns"]),
                _json_bytes(header),
                compress=compress,
            )
            self.stats.frames += 1
            self.stats.last_frame_seq = int(header["seq"])
            self.stats.uncompressed_frames += not compress
            self.stats.bytes_written += pixels.nbytes

        return self._guard(self.folder / layout.FRAMES_FILE, write, pixels.nbytes)

    def add_result(self, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bool:
        """Append one reconstruction: ``arrays`` holds :data:`RESULT_MAPS`, float [h, w].

        Other 1-D arrays (e.g. the loss curve) go into the stored header as lists;
        the header needs ``seq`` and ``timestamp_ns`` of the frame it belongs to.
        """
        maps = {name: np.asarray(arrays[name], dtype="<f4") for name in RESULT_MAPS}
        extra = {
            name: np.asarray(value).tolist()
            for name, value in arrays.items()
            if name not in RESULT_MAPS and np.ndim(value) == 1
        }
        full = {**header, **extra}

        def write() -> None:
            if self._results is None:
                self._results = _Stream(
                    self.folder / RESULTS_FILE,
                    maps,
                    RESULT_MAPS,
                    self._pool,
                    {"content": "reconstructions", "format": FORMAT},
                )
            self._results.append(
                maps,
                int(header["seq"]),
                int(header["timestamp_ns"]),
                _json_bytes(full),
                compress=True,
            )
            self.stats.results += 1
            self.stats.last_result_seq = int(header["seq"])

        nbytes = sum(array.nbytes for array in maps.values())
        return self._guard(self.folder / RESULTS_FILE, write, nbytes)

    def add_event(self, event: Mapping[str, Any]) -> bool:
        """Append a JSON line to events.jsonl (control messages, gaps, notes)."""

        def write() -> None:
            self._events.write(_json_bytes(event) + b"\n")
            self._events.flush()
            os.fsync(self._events.fileno())

        return self._guard(self.folder / EVENTS_FILE, write)

    def listener(self) -> Callable[[Any], None]:
        """A callable for ``LiveEngine.add_listener`` that records every result."""
        from lorentz_live.record.live import result_record

        def record(result: Any) -> None:
            self.add_result(*result_record(result))

        return record

    def _guard(self, path: Path, write: Callable[[], None], nbytes: int = 0) -> bool:
        with self._lock:
            if self.stats.error is not None:
                return False
            try:
                free = shutil.disk_usage(self.folder).free
                if free < self.reserve_bytes + 2 * nbytes:
                    self.stats.error = (
                        f"disk full: {free / 2**20:.0f} MiB left on the disk of {self.folder}, "
                        f"{self.reserve_bytes / 2**20:.0f} MiB kept free; recording stopped"
                    )
                    return False
                write()
            except RecordError as exc:
                self.stats.error = str(exc)
                return False
            except (OSError, RuntimeError, ValueError) as exc:
                self.stats.error = _describe(exc, path)
                return False
            return True

    def close(self) -> None:
        """Finish the files (a closed session opens in any HDF5 reader); idempotent."""
        with self._lock:
            for stream in (self._frames, self._results):
                if stream is not None:
                    # e.g. disk full: what was acknowledged is already safe on disk
                    with contextlib.suppress(OSError, RuntimeError):
                        stream.close()
            self._frames = self._results = None
            if not self._events.closed:
                self._events.close()
            if self._pool is not None:
                self._pool.shutdown()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
