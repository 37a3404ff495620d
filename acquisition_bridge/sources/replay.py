"""Replay a recorded stack (npy, TIFF, MRC, HDF5) with a sidecar JSON of metadata."""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from acquisition_bridge.protocol import Frame
from acquisition_bridge.sources import EndOfSource, Pacer, Source, SourceError
from acquisition_bridge.sources.files import (
    check_microscope_keys,
    read_json_object,
    read_stack,
    sidecar_path,
)
from acquisition_bridge.sources.session import SessionFrames, is_session

#: Sidecar keys that steer the replay instead of going into the headers.
CONTROL_KEYS = ("fps", "timestamps_s", "per_frame", "dataset")
DEFAULT_FPS = 10.0


class ReplaySource(Source):
    """Frames of one stack file, at the recorded timing or a chosen rate.

    Parameters
    ----------
    path : the stack, [n, h, w] or one image [h, w].
    metadata : header keys for every frame (every microscope key is required);
        by default the sidecar ``<stack>.json`` (or ``<stack>.<ext>.json``).  Its
        special keys: ``fps``; ``timestamps_s`` (one per frame, the recorded
        timing); ``per_frame`` (a list of maps of extra keys per frame, e.g.
        ``temperature_k``); ``dataset`` (HDF5 path).  Other keys go into every header.
    fps : replay rate; overrides the sidecar.  ``0`` replays as fast as possible.
    loop : start again after the last frame.
    """

    name = "replay"
    description = (
        "replay a TIFF/MRC/HDF5/npy stack with a sidecar JSON of metadata, or a recorded session"
    )

    def __init__(
        self,
        path: Path,
        *,
        metadata: dict[str, Any] | None = None,
        fps: float | None = None,
        loop: bool = False,
        dataset: str | None = None,
    ) -> None:
        path = Path(path)
        self.session: SessionFrames | None = None
        if is_session(path):
            # a recorded session: its own headers and timing (docs/session-format.md)
            self.session = SessionFrames(path)
            count = self.session.count
            metadata = {**self.session.replay_metadata(0), **(metadata or {})}
            stamps = self.session.timestamps_ns
            metadata["per_frame"] = [self.session.replay_metadata(i) for i in range(count)]
            metadata["timestamps_s"] = ((stamps - stamps[0]) * 1e-9).tolist()
        elif not path.is_file():
            raise SourceError(f"{path}: file not found")
        if metadata is None:
            sidecar = sidecar_path(path)
            if sidecar is None:
                raise SourceError(
                    f"{path}: no sidecar {path.with_suffix('.json').name} with the microscope "
                    "keys; write one or pass --meta FILE.json"
                )
            metadata = read_json_object(sidecar)
        metadata = dict(metadata)
        control = {key: metadata.pop(key) for key in CONTROL_KEYS if key in metadata}
        if self.session is not None:
            self.stack = self.session.pixels
            self.count = self.session.count
        else:
            self.stack = read_stack(path, dataset=dataset or control.get("dataset"))
            self.count = self.stack.shape[0]
        check_microscope_keys(metadata, f"metadata of {path.name}")
        metadata.setdefault("series_id", path.stem)
        metadata.setdefault("series_role", "movie")
        self.metadata = metadata
        count = self.count
        self.per_frame = control.get("per_frame")
        if self.per_frame is not None and (
            not isinstance(self.per_frame, list)
            or len(self.per_frame) != count
            or not all(isinstance(item, dict) for item in self.per_frame)
        ):
            raise SourceError(f"{path}: per_frame must be a list of {count} maps")
        self.timestamps_s = None
        if fps is None and "timestamps_s" in control:
            stamps = control["timestamps_s"]
            if (
                not isinstance(stamps, list)
                or len(stamps) != count
                or not all(isinstance(t, (int, float)) for t in stamps)
                or any(b < a for a, b in itertools.pairwise(stamps))
            ):
                raise SourceError(f"{path}: timestamps_s must be {count} increasing numbers")
            self.timestamps_s = [float(t) - float(stamps[0]) for t in stamps]
        if fps is None:
            fps = control.get("fps", DEFAULT_FPS)
        if not isinstance(fps, (int, float)) or fps < 0:
            raise SourceError(f"fps must be a number >= 0, got {fps!r}")
        self.fps = float(fps)
        self.loop = loop
        self._index = 0
        self._pacer = Pacer(self.fps)
        self._start: float | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "path", type=Path, help="stack file (.npy, .tif, .mrc, .h5) or session folder"
        )
        parser.add_argument("--meta", type=Path, help="metadata JSON (default: the sidecar)")
        parser.add_argument("--dataset", help="HDF5 dataset path (default: the first image one)")
        parser.add_argument("--loop", action="store_true", help="start again after the last frame")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReplaySource:
        metadata = read_json_object(args.meta) if args.meta is not None else None
        return cls(args.path, metadata=metadata, fps=args.fps, loop=args.loop, dataset=args.dataset)

    def __exit__(self, *exc: object) -> None:
        if self.session is not None:
            self.session.close()

    def _due(self, timeout_s: float) -> bool:
        if self.timestamps_s is None:
            return self._pacer.wait(timeout_s)
        if self._start is None or self._index == 0:
            self._start = time.monotonic()
        delay = self._start + self.timestamps_s[self._index] - time.monotonic()
        if delay > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return False
        if delay < 0:  # late (the publisher stalled): keep the recorded spacing, no burst
            self._start -= delay
        time.sleep(max(delay, 0.0))
        return True

    def read(self, timeout_s: float) -> Frame | None:
        if self._index >= self.count:
            if not self.loop:
                raise EndOfSource
            self._index = 0
        if not self._due(timeout_s):
            return None
        metadata = dict(self.metadata)
        if self.per_frame is not None:
            metadata.update(self.per_frame[self._index])
        pixels = np.ascontiguousarray(self.stack[self._index])
        self._index += 1
        return Frame(pixels, metadata)
