"""Read a session folder (docs/session-format.md), complete or left by a killed writer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquisition_bridge.sources import SourceError
from acquisition_bridge.sources import session as layout
from lorentz_live.errors import InputError
from lorentz_live.physics import MicroscopeParams
from lorentz_live.record.writer import (
    ENGINE_FILE,
    EVENTS_FILE,
    RESULT_MAPS,
    RESULTS_FILE,
    SESSION_FILE,
)


class SessionReader:
    """Frames, results, settings and events of a session; raises :class:`InputError` if unusable.

    ``frame_count`` / ``result_count`` count complete entries only (after a
    crash the HDF5 datasets may hold one more, incomplete, entry).
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        if not (self.folder / SESSION_FILE).is_file():
            raise InputError(f"{self.folder} is not a session (no {SESSION_FILE})")
        self.info: dict[str, Any] = json.loads((self.folder / SESSION_FILE).read_text())
        engine = self.folder / ENGINE_FILE
        self.engine: dict[str, Any] | None = (
            json.loads(engine.read_text()) if engine.is_file() else None
        )
        self._frames = self._results = None
        try:
            if (self.folder / layout.FRAMES_FILE).is_file():
                self._frames = layout.open_hdf5(self.folder / layout.FRAMES_FILE)
            if (self.folder / RESULTS_FILE).is_file():
                self._results = layout.open_hdf5(self.folder / RESULTS_FILE)
        except SourceError as exc:
            raise InputError(str(exc)) from None
        stamps = (layout.SEQ, layout.TIMESTAMPS, layout.HEADER_END)
        self.frame_count = (
            layout.committed(self._frames, (*stamps, layout.PIXELS)) if self._frames else 0
        )
        self.result_count = (
            layout.committed(self._results, (*stamps, *RESULT_MAPS)) if self._results else 0
        )
        # decoded on demand: a long session's headers are not all held in memory
        self.frame_headers: Sequence[dict[str, Any]] = (
            layout.headers(self._frames, self.frame_count) if self._frames else []
        )
        self.result_headers: Sequence[dict[str, Any]] = (
            layout.headers(self._results, self.result_count) if self._results else []
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        """Control messages and notes, in order (a torn last line after a crash is skipped)."""
        path = self.folder / EVENTS_FILE
        events = []
        if path.is_file():
            for line in path.read_bytes().splitlines():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return events

    def frame(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Pixels [h, w] and full header of frame ``index``."""
        if not 0 <= index < self.frame_count:
            raise IndexError(f"frame {index} of {self.frame_count}")
        assert self._frames is not None  # frame_count > 0 only with a frames file
        return self._frames[layout.PIXELS][index], self.frame_headers[index]

    def frame_params(self, index: int) -> MicroscopeParams:
        """The imaging conditions recorded with frame ``index``."""
        return MicroscopeParams.from_mapping(self.frame_headers[index], ignore_unknown=True)

    def result(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Maps (phi_m rad, b_x, b_y T nm) and header of result ``index``."""
        if not 0 <= index < self.result_count:
            raise IndexError(f"result {index} of {self.result_count}")
        assert self._results is not None  # result_count > 0 only with a results file
        maps = {name: self._results[name][index] for name in RESULT_MAPS}
        return maps, self.result_headers[index]

    def result_stack(self, name: str, indices: list[int] | None = None) -> np.ndarray:
        """Complete results of map ``name`` (all, or those at ``indices``) as [m, h, w] float32."""
        if self._results is None:
            return np.zeros((0, 0, 0), np.float32)
        if indices is None:
            return self._results[name][: self.result_count]
        return np.stack([self._results[name][i] for i in indices]) if indices else np.zeros(0)

    def result_indices(self, method: str | None = None) -> list[int]:
        """Indices of the results made by ``method`` (``None``: the most refined present).

        The engine records every result it makes: the instant answer of each frame
        and the SIPRAD refinement of some; "siprad" is preferred when present.
        """
        methods = [header.get("method", "siprad") for header in self.result_headers]
        if method is None:
            method = "siprad" if "siprad" in methods else (methods[0] if methods else None)
        return [index for index, name in enumerate(methods) if name == method]

    @property
    def result_seqs(self) -> np.ndarray:
        """[n] int64 frame ``seq`` of each result (read from its own dataset, not the headers)."""
        if self._results is None:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._results[layout.SEQ][: self.result_count], dtype=np.int64)

    def close(self) -> None:
        for handle in (self._frames, self._results):
            if handle is not None:
                handle.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
