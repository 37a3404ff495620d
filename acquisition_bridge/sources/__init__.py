"""Frame sources: the plug-in interface, the registry and an in-memory source.

A source is one class (docs/protocol.md, "Writing a camera plug-in")::

    class MyCamera(Source):
        name = "mycam"

        @classmethod
        def add_arguments(cls, parser): parser.add_argument("--exposure-s", type=float)

        @classmethod
        def from_args(cls, args): return cls(exposure_s=args.exposure_s, fps=args.fps)

        def __enter__(self): ...open the SDK...; return self
        def __exit__(self, *exc): ...close it...
        def read(self, timeout_s): ...return Frame(pixels, metadata) or None...

registered in the plug-in's pyproject.toml::

    [project.entry-points."acquisition_bridge.sources"]
    mycam = "mypackage.camera:MyCamera"

``lorentz-bridge mycam --bind ...`` then publishes it.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from acquisition_bridge.protocol import Frame

#: Entry-point group under which source plug-ins register.
ENTRY_POINT_GROUP = "acquisition_bridge.sources"

#: Sources of the bridge itself, found even when the package is not installed.
BUILTIN_SOURCES: dict[str, str] = {
    "replay": "acquisition_bridge.sources.replay:ReplaySource",
    "watch": "acquisition_bridge.sources.watch:WatchSource",
}


class SourceError(ValueError):
    """A source cannot start or continue; the message names the problem (CLI exit 2)."""


class EndOfSource(Exception):
    """Raised by :meth:`Source.read` when no frame will ever come again."""


class Source:
    """Base class of frame sources: a context manager with :meth:`read`.

    Subclasses set ``name`` and ``description`` and implement :meth:`read`;
    ``__enter__`` / ``__exit__`` open and release the hardware or files.  A
    source paces itself (a camera by its exposure, a simulator by ``fps``).
    """

    name: str = ""
    description: str = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the source's own command-line options (the CLI adds --fps, --frames)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Source:
        """Build the source from parsed options; raise :class:`SourceError` for bad ones."""
        raise NotImplementedError

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, or ``None`` if none is ready within ``timeout_s`` seconds.

        Raises :class:`EndOfSource` when the source is exhausted.
        """
        raise NotImplementedError


class Pacer:
    """Release frames at ``fps`` (``None`` or 0: as fast as asked), without drift.

    :meth:`wait` returns ``True`` once the next frame is due, or ``False`` if that
    is more than ``timeout_s`` away (after sleeping ``timeout_s``).
    """

    def __init__(self, fps: float | None) -> None:
        self.interval_s = 1.0 / fps if fps else 0.0
        self._next: float | None = None

    def wait(self, timeout_s: float) -> bool:
        now = time.monotonic()
        if self._next is None:
            self._next = now
        delay = self._next - now
        if delay > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return False
        if delay > 0:
            time.sleep(delay)
        # a late frame does not make the following ones early (no burst catch-up)
        self._next = max(self._next, time.monotonic() - self.interval_s) + self.interval_s
        return True


class MemorySource(Source):
    """Frames from memory, for tests and notebooks.

    ``images`` : arrays [h, w] (or a stack [n, h, w]); ``metadata`` : header keys
    shared by all frames; ``per_frame`` : optional extra keys per frame;
    ``fps`` : pacing (``None`` = immediately).
    """

    name = "memory"
    description = "frames held in memory (tests)"

    def __init__(
        self,
        images: Iterable[np.ndarray],
        metadata: Mapping[str, Any],
        *,
        per_frame: Iterable[Mapping[str, Any]] | None = None,
        fps: float | None = None,
    ) -> None:
        self._images = iter(images)
        self._metadata = dict(metadata)
        self._per_frame = iter(per_frame) if per_frame is not None else None
        self._pacer = Pacer(fps)

    def read(self, timeout_s: float) -> Frame | None:
        if not self._pacer.wait(timeout_s):
            return None
        try:
            image = next(self._images)
        except StopIteration:
            raise EndOfSource from None
        metadata = dict(self._metadata)
        if self._per_frame is not None:
            metadata.update(next(self._per_frame, {}))
        return Frame(np.asarray(image), metadata)


def available_sources() -> dict[str, str]:
    """Source names mapped to ``"module:Class"``: the built-ins plus every entry point."""
    found = dict(BUILTIN_SOURCES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.value
    return found


def load_source(name: str) -> type[Source]:
    """The source class registered as ``name``; :class:`SourceError` if unknown or broken."""
    sources = available_sources()
    if name not in sources:
        raise SourceError(f"unknown source {name!r}; available: {', '.join(sorted(sources))}")
    module_name, _, attribute = sources[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"source {name!r} ({sources[name]}) cannot be loaded: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise SourceError(f"source {name!r} ({sources[name]}) is not a Source subclass")
    return cls


__all__ = [
    "BUILTIN_SOURCES",
    "ENTRY_POINT_GROUP",
    "EndOfSource",
    "MemorySource",
    "Pacer",
    "Source",
    "SourceError",
    "available_sources",
    "load_source",
]
