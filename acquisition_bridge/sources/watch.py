"""Publish image files as acquisition software writes them into a folder."""

from __future__ import annotations

import argparse
import collections
import logging
import time
from pathlib import Path
from typing import Any

from acquisition_bridge.protocol import Frame
from acquisition_bridge.sources import Source, SourceError
from acquisition_bridge.sources.files import (
    check_microscope_keys,
    file_format,
    read_json_object,
    read_stack,
    sidecar_path,
)

log = logging.getLogger("acquisition_bridge")


class WatchSource(Source):
    """Each new image file in ``folder`` (npy, TIFF, MRC, HDF5), published once complete.

    A file counts as complete when its size and modification time have not changed
    for ``settle_s`` and it reads without error (writers that rename a finished
    temporary file into place are handled too).  Files present at start are
    skipped unless ``existing``.  Metadata: ``metadata`` for all files, updated
    by a per-file sidecar ``<name>.json``; a file whose metadata lacks a
    microscope key, or that cannot be read, is skipped with a warning
    (:attr:`skipped` counts them).  Files are taken in order of modification time.

    Parameters
    ----------
    folder : the folder to watch (not recursive).
    metadata : header keys shared by all files (e.g. from ``--meta``).
    poll_s : how often the folder is listed, s.
    settle_s : how long a file must stay unchanged, s.
    existing : also publish files already present at start.
    """

    name = "watch"
    description = "publish image files as they appear in a folder"

    def __init__(
        self,
        folder: Path,
        *,
        metadata: dict[str, Any] | None = None,
        poll_s: float = 0.2,
        settle_s: float = 0.5,
        existing: bool = False,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"watch folder not found: {self.folder}")
        self.metadata = dict(metadata or {})
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.skipped = 0
        self._seen: set[str] = set()
        # name -> (size, mtime_ns, first time seen with that signature)
        self._pending: dict[str, tuple[int, int, float]] = {}
        self._frames: collections.deque[Frame] = collections.deque()
        self._last_poll = 0.0
        if not existing:
            self._seen.update(path.name for path in self._candidates())

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, help="folder the acquisition software writes into")
        parser.add_argument("--meta", type=Path, help="metadata JSON for every file")
        parser.add_argument("--settle-s", type=float, default=0.5, help="unchanged for, s")
        parser.add_argument("--poll-s", type=float, default=0.2, help="listing interval, s")
        parser.add_argument(
            "--existing", action="store_true", help="publish files present at start"
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WatchSource:
        metadata = read_json_object(args.meta) if args.meta is not None else None
        if args.settle_s < 0 or args.poll_s <= 0:
            raise SourceError("--settle-s must be >= 0 and --poll-s > 0")
        return cls(
            args.folder,
            metadata=metadata,
            poll_s=args.poll_s,
            settle_s=args.settle_s,
            existing=args.existing,
        )

    def _candidates(self) -> list[Path]:
        try:
            entries = list(self.folder.iterdir())
        except OSError as exc:
            raise SourceError(f"cannot list {self.folder}: {exc.strerror}") from None
        return [
            path
            for path in entries
            if not path.name.startswith((".", "~")) and file_format(path) is not None
        ]

    def _poll(self) -> None:
        now = time.monotonic()
        self._last_poll = now
        ready: list[tuple[int, Path]] = []
        for path in self._candidates():
            if path.name in self._seen:
                continue
            try:
                stat = path.stat()
            except OSError:  # vanished between listing and stat
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            previous = self._pending.get(path.name)
            if previous is None or previous[:2] != signature:
                self._pending[path.name] = (*signature, now)
            elif now - previous[2] >= self.settle_s and stat.st_size > 0:
                ready.append((stat.st_mtime_ns, path))
        for _, path in sorted(ready):
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            stack = read_stack(path)
        except SourceError as exc:
            # possibly still being written despite a stable size: retry until stable again
            first_try = self._pending[path.name][2]
            if time.monotonic() - first_try < 10 * max(self.settle_s, self.poll_s):
                return
            self._skip(path, str(exc))
            return
        metadata = dict(self.metadata)
        sidecar = sidecar_path(path)
        try:
            if sidecar is not None:
                metadata.update(read_json_object(sidecar))
            elif not self.metadata:
                raise SourceError(f"{path.name}: no sidecar {path.stem}.json and no --meta")
            check_microscope_keys(metadata, f"metadata of {path.name}")
        except SourceError as exc:
            self._skip(path, str(exc))
            return
        self._seen.add(path.name)
        self._pending.pop(path.name, None)
        extra = dict(metadata.get("extra", {}))
        extra["file"] = path.name
        metadata["extra"] = extra
        for image in stack:
            self._frames.append(Frame(image, dict(metadata)))

    def _skip(self, path: Path, reason: str) -> None:
        self._seen.add(path.name)
        self._pending.pop(path.name, None)
        self.skipped += 1
        log.warning("skipping %s: %s", path.name, reason)

    def read(self, timeout_s: float) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        while not self._frames:
            wait = self._last_poll + self.poll_s - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    time.sleep(max(deadline - time.monotonic(), 0.0))
                    return None
                time.sleep(wait)
            self._poll()
            if not self._frames and time.monotonic() >= deadline:
                return None
        return self._frames.popleft()


__all__ = ["WatchSource"]
