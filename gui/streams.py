"""Receiving off the GUI thread: raw frames and results into one-slot mailboxes.

A :class:`StreamReceiver` thread takes frames from an
:class:`acquisition_bridge.transport.Subscriber` (newest frame) and results
from an :class:`acquisition_bridge.results.ResultSubscriber`, computes what the
display needs (contrast levels from a subsample, |B|, arrow segments) and keeps
only the newest of each.  The GUI thread takes them with :meth:`take_raw` /
:meth:`take_result` on a timer (never blocks); what it did not take in time is
counted as ``superseded``.  No Qt here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from acquisition_bridge.protocol import FRAME
from acquisition_bridge.results import ResultSubscriber
from acquisition_bridge.transport import Subscriber
from lorentz_live.record import SessionWriter

#: Arrows per side of the B map overlay.
ARROWS = 16


@dataclass(frozen=True, eq=False)
class RawView:
    """A camera frame ready to show: pixels [h, w] (read-only), levels, header, arrival time."""

    pixels: np.ndarray
    levels: tuple[float, float]
    header: dict[str, Any]
    received_at: float


@dataclass(frozen=True, eq=False)
class ResultView:
    """A result ready to show: arrays, phi_m levels, |B| (T nm), arrows [n, 2, 2] (y, x) px."""

    arrays: dict[str, np.ndarray]
    header: dict[str, Any]
    phi_levels: tuple[float, float]
    magnitude: np.ndarray | None
    magnitude_levels: tuple[float, float]
    arrows: np.ndarray | None
    received_at: float


def contrast_levels(image: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """(low, high) percentiles of a strided subsample of ~64k pixels (cheap at 4k x 4k)."""
    step = max(1, int(np.sqrt(image.size / 65536)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    lo, hi = np.percentile(sample, [low, high])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def arrow_segments(b_x: np.ndarray, b_y: np.ndarray, count: int = ARROWS) -> np.ndarray:
    """Line segments [n, 2, 2] ((y, x) start, (y, x) end, px) showing B on a count x count grid."""
    height, width = b_x.shape
    step_y, step_x = height / count, width / count
    ys = ((np.arange(count) + 0.5) * step_y).astype(int)
    xs = ((np.arange(count) + 0.5) * step_x).astype(int)
    bx, by = b_x[np.ix_(ys, xs)], b_y[np.ix_(ys, xs)]
    scale = np.percentile(np.hypot(b_x, b_y)[:: max(1, height // 64), :: max(1, width // 64)], 99)
    length = 0.45 * min(step_y, step_x) / max(float(scale), 1e-30)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    start = np.stack([yy - 0.5 * length * by, xx - 0.5 * length * bx], axis=-1)
    end = np.stack([yy + 0.5 * length * by, xx + 0.5 * length * bx], axis=-1)
    return np.stack([start, end], axis=-2).reshape(-1, 2, 2)


class StreamReceiver:
    """Receive raw frames and results in a thread; hand the newest of each to the GUI.

    source, results : endpoints (``None``: that stream is off).
    contrast : percentiles of the raw and phase display levels (settable any time).
    """

    def __init__(
        self,
        source: str | None,
        results: str | None,
        *,
        contrast: tuple[float, float] = (0.5, 99.5),
        curve_server_key: bytes | None = None,
    ) -> None:
        self.contrast = contrast
        self.superseded_raw = 0
        self.superseded_results = 0
        self.rejected_results = 0
        self._raw = (
            Subscriber(source, mode="latest", curve_server_key=curve_server_key) if source else None
        )
        self._results = ResultSubscriber(results) if results else None
        self._lock = threading.Lock()
        self._raw_slot: RawView | None = None
        self._result_slot: ResultView | None = None
        self._record_lock = threading.Lock()
        self._recorder: SessionWriter | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-receiver", daemon=True)
        self._thread.start()

    # ---- GUI side ------------------------------------------------------------------
    def take_raw(self) -> RawView | None:
        with self._lock:
            view, self._raw_slot = self._raw_slot, None
        return view

    def take_result(self) -> ResultView | None:
        with self._lock:
            view, self._result_slot = self._result_slot, None
        return view

    def raw_stats(self) -> Any:
        return self._raw.stats if self._raw is not None else None

    def close(self) -> None:
        """Stop the thread, finish a recording, close both sockets (about a second)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        writer = self.stop_recording()
        if writer is not None:
            writer.close()
        if self._raw is not None:
            self._raw.close()

    # ---- the viewer's record button --------------------------------------------------
    def start_recording(self, writer: SessionWriter) -> None:
        """Append every frame and result this receiver takes to ``writer``.

        The appends (and their fsync) run in the receiver thread, never in the GUI
        thread.  The viewer records what it receives: the raw stream in
        latest-frame mode skips frames when the viewer lags (counted in
        ``raw_stats().skipped``); ``lorentz-live record`` is the lossless path.
        """
        with self._record_lock:
            self._recorder = writer

    def stop_recording(self) -> SessionWriter | None:
        """Stop appending; the caller closes the returned writer (off the GUI thread)."""
        with self._record_lock:
            writer, self._recorder = self._recorder, None
        return writer

    @property
    def recording(self) -> SessionWriter | None:
        return self._recorder

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- receiver thread -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._raw is None and self._results is None:
                    self._stop.wait(0.1)  # both streams off: nothing to receive
                    continue
                busy = False
                if self._raw is not None:
                    message = self._raw.recv(timeout_s=0.0 if self._results else 0.02)
                    if message is not None and message.kind == FRAME and message.pixels is not None:
                        self._put_raw(message.pixels, message.header)
                        self._record(frame=(message.pixels, message.header))
                        busy = True
                if self._results is not None:
                    result = self._results.recv_latest(timeout_s=0.0 if busy else 0.01)
                    if result is not None:
                        self._put_result(result.arrays, result.header)
                        self._record(result=(result.header, result.arrays))
                        self.rejected_results = self._results.rejected
        finally:
            if self._results is not None:
                self._results.close()

    def _record(
        self,
        frame: tuple[np.ndarray, dict[str, Any]] | None = None,
        result: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None,
    ) -> None:
        with self._record_lock:
            writer = self._recorder
            if writer is None or writer.error is not None:
                return  # a failed recording says why in writer.error; display goes on
            if frame is not None:
                writer.add_frame(*frame)
            if result is not None:
                writer.add_result(*result)

    def _put_raw(self, pixels: np.ndarray, header: dict[str, Any]) -> None:
        view = RawView(pixels, contrast_levels(pixels, *self.contrast), header, time.monotonic())
        with self._lock:
            if self._raw_slot is not None:
                self.superseded_raw += 1
            self._raw_slot = view

    def _put_result(self, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        phi = arrays.get("phi_m")
        levels = contrast_levels(phi, *self.contrast) if phi is not None else (0.0, 1.0)
        magnitude, arrows, magnitude_levels = None, None, (0.0, 1.0)
        if "b_x" in arrays and "b_y" in arrays:
            magnitude = np.hypot(arrays["b_x"], arrays["b_y"])
            magnitude_levels = (0.0, contrast_levels(magnitude, 0.0, 99.5)[1])
            arrows = arrow_segments(arrays["b_x"], arrays["b_y"])
        view = ResultView(
            arrays, header, levels, magnitude, magnitude_levels, arrows, time.monotonic()
        )
        with self._lock:
            if self._result_slot is not None:
                self.superseded_results += 1
            self._result_slot = view
