"""The viewer's headless model: histories, rates and stream states (no Qt, testable alone).

The window (``gui.window``) only displays what this model and the receiver
(``gui.streams``) hand it.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Points kept per time series (a day at one point per 5 s); older ones are dropped.
HISTORY_POINTS = 20_000
#: Points drawn per plotted series at most (decimated over the whole history).
DISPLAY_POINTS = 256
#: Shortest interval between two metadata points from the camera stream, s.
METADATA_INTERVAL_S = 0.5
#: Results stream counted as quiet after this many seconds without a result.
RESULTS_QUIET_S = 10.0
#: Sign conventions of the defocus a microscope displays (docs/conventions.md: ours is the first).
SIGN_CONVENTIONS = ("negative = underfocus", "positive = underfocus")


def defocus_to_display(defocus_nm: float, convention: str) -> float:
    """The defocus as the microscope shows it (nm) from ours (negative = underfocus)."""
    return -defocus_nm if convention == SIGN_CONVENTIONS[1] else defocus_nm


def defocus_from_display(shown_nm: float, convention: str) -> float:
    """Our defocus (negative = underfocus, nm) from the number the microscope shows."""
    return -shown_nm if convention == SIGN_CONVENTIONS[1] else shown_nm


def focus_words(defocus_nm: float) -> str:
    """``"underfocus 1.00 mm"`` / ``"overfocus 250 µm"`` / ``"in focus"`` (our sign)."""
    if defocus_nm == 0:
        return "in focus"
    size = abs(defocus_nm)
    amount = f"{size / 1e6:.2f} mm" if size >= 1e6 else f"{size / 1e3:.3g} µm"
    return ("underfocus " if defocus_nm < 0 else "overfocus ") + amount


def nice_length_nm(field_nm: float) -> float:
    """A 1-2-5 scale-bar length of about a fifth of ``field_nm``."""
    target = max(field_nm / 5.0, 1e-3)
    power = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * power <= target:
            return step * power
    return power


def length_label(length_nm: float) -> str:
    return f"{length_nm / 1000:g} µm" if length_nm >= 1000 else f"{length_nm:g} nm"


def census_summary(census: dict[str, Any]) -> str:
    """One line for the census of a result header (missing or null fields left out)."""
    if not census:
        return ""
    if census.get("phase") == "error":
        return f"census failed: {census.get('error')}"

    def number(key: str, form: str) -> str | None:
        value = census.get(key)
        return format(value, form) if isinstance(value, (int, float)) else None

    text = f"{census.get('phase', '?')}: {census.get('count', '?')} bubbles"
    if census.get("ccw") is not None and census.get("cw") is not None:
        text += f" ({census['ccw']} ccw / {census['cw']} cw)"
    diameter, spread = number("diameter_mean_nm", ".0f"), number("diameter_std_nm", ".0f")
    if diameter is not None:
        text += f", d = {diameter}" + (f" ± {spread}" if spread is not None else "") + " nm"
    if (order := number("hexatic_order", ".2f")) is not None:
        text += f", psi6 {order}"
    if (period := number("period_nm", ".0f")) is not None:
        text += f", period {period} nm"
    return text


def numeric_items(header: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numbers of a header, nested maps flattened as ``outer.inner`` (one level)."""
    out: dict[str, float] = {}
    for key, value in header.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix + key] = float(value)
        elif isinstance(value, dict) and not prefix:
            out.update(numeric_items(value, prefix=f"{key}."))
    return out


class Series:
    """A bounded (t, y) time series in preallocated ring buffers (memory fixed from the start).

    The buffers are written once at creation so that their pages are resident
    at once: a lazily allocated ring would make the process grow for hours
    while it fills.
    """

    def __init__(self, maxlen: int = HISTORY_POINTS) -> None:
        self._t = np.full(maxlen, np.nan)
        self._y = np.full(maxlen, np.nan)
        self._next = 0
        self._count = 0
        self.total = 0  # points ever appended (a change counter for displays)

    def append(self, t: float, y: float) -> None:
        self._t[self._next] = t
        self._y[self._next] = y
        self._next = (self._next + 1) % len(self._t)
        self._count = min(self._count + 1, len(self._t))
        self.total += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (t, y), oldest first."""
        if self._count < len(self._t):
            return self._t[: self._count].copy(), self._y[: self._count].copy()
        order = np.r_[self._next : len(self._t), 0 : self._next]
        return self._t[order], self._y[order]

    def display_arrays(self, max_points: int = DISPLAY_POINTS) -> tuple[np.ndarray, np.ndarray]:
        """(t, y) of at most ``max_points`` points spanning the whole history, for plots.

        Every ``stride``-th point counted from the first ever appended, plus the
        newest; ``stride`` is the smallest power of two that fits, so a point
        once shown stays shown until the stride doubles (no flicker), and a
        plot's cost stays bounded however long the session runs.
        """
        t, y = self.arrays()
        if len(t) <= max_points:
            return t, y
        stride = 1
        while -(-len(t) // stride) + 1 > max_points:
            stride *= 2
        first_index = self.total - len(t)  # running index of t[0]
        keep = np.arange((-first_index) % stride, len(t), stride)
        if keep[-1] != len(t) - 1:
            keep = np.append(keep, len(t) - 1)
        return t[keep], y[keep]

    @property
    def last(self) -> float:
        return float(self._y[self._next - 1])

    def __len__(self) -> int:
        return self._count


class Rate:
    """Events per second over the last ``window_s`` (slow streams: over the last two events)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque(maxlen=4096)

    def tick(self, now: float) -> None:
        self._times.append(now)

    def per_second(self, now: float) -> float:
        times = self._times
        while len(times) > 2 and now - times[0] > self.window_s:
            times.popleft()
        if len(times) < 2:
            return 0.0
        # a stream that stopped decays: the time since the last event counts as an interval
        span = max(times[-1] - times[0], 1e-9) + max(0.0, now - times[-1] - self.window_s)
        return (len(times) - 1) / span


@dataclass
class ViewerModel:
    """Everything the viewer plots, fed by the receiver's raw frames and results.

    Times are monotonic seconds since the model started (``t0``).
    """

    t0: float
    metadata: dict[str, Series] = field(default_factory=dict)
    census: dict[str, Series] = field(default_factory=dict)
    census_temperature: dict[str, Series] = field(default_factory=dict)
    loss_per_frame: Series = field(default_factory=Series)
    camera_rate: Rate = field(default_factory=Rate)
    result_rate: Rate = field(default_factory=Rate)
    display_rate: Rate = field(default_factory=Rate)
    last_raw_header: dict[str, Any] | None = None
    last_result_header: dict[str, Any] | None = None
    last_result_at: float | None = None
    results: int = 0
    frames: int = 0
    _last_metadata_t: float | None = None
    _refined_seen: bool = False

    def on_raw(self, header: dict[str, Any], now: float) -> None:
        """A camera frame arrived (any numeric header key becomes a time series).

        Metadata are sampled at most every ``METADATA_INTERVAL_S`` (a 30 fps
        camera would otherwise fill the histories in minutes).
        """
        self.frames += 1
        self.camera_rate.tick(now)
        self.last_raw_header = header
        t = now - self.t0
        if self._last_metadata_t is not None and t - self._last_metadata_t < METADATA_INTERVAL_S:
            return
        self._last_metadata_t = t
        for key, value in numeric_items(header).items():
            if key in ("seq", "timestamp_ns", "protocol"):
                continue
            self.metadata.setdefault(key, Series()).append(t, value)

    def on_result(self, header: dict[str, Any], now: float) -> None:
        """A result arrived: loss, census and (if no raw stream) metadata series.

        Instant results (``method`` other than ``siprad``) feed the plots only
        until the first SIPRAD result arrives.
        """
        self.results += 1
        self.result_rate.tick(now)
        self.last_result_header = header
        self.last_result_at = now
        t = now - self.t0
        refined = header.get("method", "siprad") == "siprad"
        self._refined_seen = self._refined_seen or refined
        if self._refined_seen and not refined:
            return  # once SIPRAD results flow, the plots follow them, not the instant answers
        loss = header.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            self.loss_per_frame.append(t, float(loss))
        frame = header.get("frame") or {}
        temperature = frame.get("temperature_k")
        for key, value in numeric_items(header.get("census") or {}).items():
            self.census.setdefault(key, Series()).append(t, value)
            if isinstance(temperature, (int, float)):
                self.census_temperature.setdefault(key, Series()).append(temperature, value)
        if self.frames == 0:  # no raw stream: plot the frame metadata the results carry
            for key, value in numeric_items(
                {**frame, "defocus_nm": header.get("defocus_nm")}
            ).items():
                self.metadata.setdefault(key, Series()).append(t, value)

    def results_state(self, now: float) -> str:
        """``waiting`` / ``live`` / ``quiet N s`` for the results stream."""
        if self.last_result_at is None:
            return "waiting"
        quiet = now - self.last_result_at
        return "live" if quiet < RESULTS_QUIET_S else f"quiet {quiet:.0f} s"


def raw_state(stats: Any) -> str:
    """``waiting`` / ``live`` / ``silent`` / ``ended`` from a Subscriber's counters."""
    if stats is None:
        return "off"
    if stats.received == 0:
        return "waiting"
    if stats.ended:
        return "ended"
    return "silent" if stats.silent else "live"
