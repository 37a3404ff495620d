"""Guards between the wire and the live engine: frame admission, glitches, errors.

The bridge's protocol accepts frames the reconstruction cannot use as they
are (a side of 1 px or 16384 px, a blanked beam, a hot pixel on a dark frame).
:class:`FrameGuard` sits in front of :class:`~lorentz_live.live.engine.LiveEngine`
and makes sure that one frame can never end the live loop or spoil the frames
after it (docs/reliability.md):

* **admission**: a frame whose larger side exceeds ``max_side_px`` is binned by
  an integer factor (the pixel size grows by the same factor); a frame too
  elongated for that is binned less and cropped to a centred region of
  interest; a frame with a side below ``min_side_px`` after that is refused.
  The raw frame still reaches viewers and recorders: they subscribe to the
  bridge, not to the engine.
* **glitches**: the mean intensity and the contrast (std / mean) of each frame
  are compared with the median of the last ``baseline_frames`` accepted frames
  (not with the previous frame); a frame outside the factors is skipped (no
  method sees it) and counted as ``glitch``.  ``accept_after`` consistent
  outliers in a row are a real change: the baseline restarts and the engine
  starts cold.  The misfit of each warm SIPRAD result is compared with the
  median misfit of the recent ones; an outlier is published (flagged in its
  metadata, key ``guard``) but its network state is not carried: the refiner
  rolls back to the last good state, and ``accept_after`` outliers in a row
  make the next frame cold.
* **errors**: any exception of the engine's instant path on a frame is
  counted as ``error`` with its type, logged once per type with its
  traceback, and the next frame starts cold (the refinement thread catches
  its own: :class:`lorentz_live.live.pipeline.LivePipeline`).

Every refused frame raises :class:`BadFrame`, an :class:`InputError` with a
``reason`` (the key of the runner's counters).
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lorentz_live.errors import InputError
from lorentz_live.live.engine import LiveEngine, LiveFrame, LiveResult

log = logging.getLogger("lorentz_live.live")

#: Reasons a frame is refused by the engine side (keys of ``RunSummary.bad_reasons``).
BAD_REASONS: tuple[str, ...] = ("size", "intensity", "params", "glitch", "error", "input")


class BadFrame(InputError):
    """A frame the live loop skips; ``reason`` is one of :data:`BAD_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class GuardConfig:
    """Settings of :class:`FrameGuard`.

    max_side_px : largest side reconstructed, px; larger frames are binned
        (512: a 4096² camera frame binned x8; one SIPRAD iteration at 512 px
        takes 0.45 s on one CPU core, docs/benchmarks.md).
    min_side_px : smallest side reconstructed after binning, px.
    baseline_frames : accepted frames in the running baseline.
    min_baseline : frames needed before the baseline is used.
    mean_factor : a frame whose mean intensity differs from the baseline median
        by more than this factor (either way) is a glitch.
    contrast_factor : the same for the contrast std / mean.
    max_contrast : contrast above which a frame is a glitch even without a
        baseline (a hot pixel on a dark frame of N px has about sqrt(N)).
    misfit_factor : a warm result whose misfit exceeds this multiple of the
        baseline median misfit does not carry its state.
    accept_after : outliers in a row that agree with each other become the new
        baseline (a real change of illumination or sample) with a cold start.
    """

    max_side_px: int = 512
    min_side_px: int = 8
    baseline_frames: int = 8
    min_baseline: int = 3
    mean_factor: float = 4.0
    contrast_factor: float = 3.0
    max_contrast: float = 20.0
    misfit_factor: float = 3.0
    accept_after: int = 3

    def __post_init__(self) -> None:
        if self.min_side_px < 8 or self.max_side_px < self.min_side_px:
            raise InputError(
                f"max_side_px must be >= min_side_px >= 8, got {self.max_side_px}, "
                f"{self.min_side_px}"
            )
        for name in ("mean_factor", "contrast_factor", "misfit_factor"):
            if not getattr(self, name) > 1.0:
                raise InputError(f"{name} must be > 1, got {getattr(self, name)}")


def bin_and_crop(shape: tuple[int, int], max_side: int, min_side: int) -> tuple[int, int, int]:
    """Binning factor and the cropped (height, width) in raw px for a frame of ``shape``.

    The factor k is the smallest that brings the larger side to ``max_side``;
    if the smaller side would then fall below ``min_side``, k is lowered to
    keep it there and the larger side is cropped to ``max_side * k``.
    """
    height, width = shape
    factor = max(1, math.ceil(max(height, width) / max_side))
    if min(height, width) // factor < min_side:
        factor = max(1, min(height, width) // min_side)
    crop_h = min(height, max_side * factor) // factor * factor
    crop_w = min(width, max_side * factor) // factor * factor
    return factor, crop_h, crop_w


def admit(frame: LiveFrame, config: GuardConfig) -> tuple[LiveFrame, tuple[float, float]]:
    """The frame the engine reconstructs, and its raw (mean, contrast).

    Binned and centre-cropped as :func:`bin_and_crop` says, as float32 scaled
    to mean 1 (SIPRAD normalises by the mean anyway; this keeps extreme but
    finite camera values out of float32 overflow).  Raises :class:`BadFrame`.
    """
    pixels = np.asarray(frame.image)
    if pixels.ndim != 2:
        raise BadFrame("size", f"frame {frame.seq}: expected a 2-D image, got {pixels.shape}")
    factor, crop_h, crop_w = bin_and_crop(pixels.shape, config.max_side_px, config.min_side_px)
    if min(crop_h, crop_w) // factor < config.min_side_px:
        raise BadFrame(
            "size",
            f"frame {frame.seq}: shape {pixels.shape} is too small "
            f"(need >= {config.min_side_px} px per side)",
        )
    top = (pixels.shape[0] - crop_h) // 2
    left = (pixels.shape[1] - crop_w) // 2
    window = pixels[top : top + crop_h, left : left + crop_w]
    binned = window.reshape(crop_h // factor, factor, crop_w // factor, factor).mean(
        axis=(1, 3), dtype=np.float64
    )
    if not np.isfinite(binned).all():
        raise BadFrame("intensity", f"frame {frame.seq}: image has NaN or infinite pixels")
    mean = float(binned.mean())
    if not mean > 0:
        raise BadFrame("intensity", f"frame {frame.seq}: mean intensity is not positive")
    contrast = float(binned.std() / mean)
    params = frame.params
    metadata = frame.metadata
    if factor > 1 or (crop_h, crop_w) != pixels.shape:
        params = params.replace(pixel_size_nm=params.pixel_size_nm * factor)
        metadata = {
            **metadata,
            "binning": factor,
            "roi": [top, left, crop_h, crop_w],
            "raw_shape": list(pixels.shape),
        }
    image = (binned / mean).astype(np.float32)
    return replace(frame, image=image, params=params, metadata=metadata), (mean, contrast)


def _ratio(value: float, reference: float) -> float:
    """How many times ``value`` and ``reference`` differ (>= 1; inf if either is 0)."""
    low, high = sorted((abs(value), abs(reference)))
    return high / low if low > 0 else math.inf


class FrameGuard:
    """Admit and check frames before ``engine`` sees them; watch its SIPRAD results.

    Create it before other listeners of ``engine`` (it flags results in place).
    ``counts`` holds the refused frames per reason.  Thread use: :meth:`submit`
    from the runner's thread; the SIPRAD check runs in the refinement thread
    as an engine listener, right after the refiner updated its state.
    """

    def __init__(self, engine: LiveEngine, config: GuardConfig | None = None) -> None:
        self.engine = engine
        self.config = config or GuardConfig()
        self.counts: dict[str, int] = dict.fromkeys(BAD_REASONS, 0)
        self._lock = threading.Lock()
        self._stats: deque[tuple[float, float]] = deque(maxlen=self.config.baseline_frames)
        self._misfits: deque[float] = deque(maxlen=self.config.baseline_frames)
        self._outliers: list[tuple[float, float]] = []
        self._misfit_outliers = 0
        self._good_state: Any = None
        self._conditions: tuple | None = None
        self._logged: set[str] = set()
        engine.add_listener(self._observe)

    def submit(self, frame: LiveFrame, answer: Callable[[LiveFrame], LiveResult]) -> LiveResult:
        """Admit ``frame`` and pass it to ``answer`` (e.g. ``LivePipeline.submit``).

        Raises :class:`BadFrame` (counted in :attr:`counts`) for a frame that is
        refused, or on which ``answer`` raised anything.
        """
        try:
            admitted, stats = admit(frame, self.config)
            self._check_intensity(admitted, stats)
            result = answer(admitted)
        except BadFrame as error:
            self.counts[error.reason] += 1
            raise
        except InputError as error:  # the engine's own checks
            self.counts["input"] += 1
            raise BadFrame("input", str(error)) from None
        except Exception as error:  # one frame must never end the loop
            self.counts["error"] += 1
            kind = type(error).__name__
            if kind not in self._logged:
                self._logged.add(kind)
                log.exception("frame %s failed (%s); the next frame starts cold", frame.seq, kind)
            self.engine.request_cold_restart(f"after an error ({kind})")
            self._reset()
            raise BadFrame("error", f"frame {frame.seq}: {kind}: {error}") from None
        with self._lock:
            self._stats.append(stats)
        return result

    def _reset(self) -> None:
        with self._lock:
            self._stats.clear()
            self._misfits.clear()
            self._outliers.clear()
            self._misfit_outliers = 0

    def _check_intensity(self, frame: LiveFrame, stats: tuple[float, float]) -> None:
        config = self.config
        conditions = (frame.image.shape, frame.params)
        if conditions != self._conditions:  # new imaging conditions: a new baseline
            self._conditions = conditions
            self._reset()
        mean, contrast = stats
        problem = None
        with self._lock:
            history = list(self._stats)
        if contrast > config.max_contrast:
            problem = f"contrast {contrast:.3g} > {config.max_contrast:g}"
        elif len(history) >= config.min_baseline:
            mean_0 = statistics.median(s[0] for s in history)
            contrast_0 = statistics.median(s[1] for s in history)
            if _ratio(mean, mean_0) > config.mean_factor:
                problem = f"mean intensity {mean:.3g} vs baseline {mean_0:.3g}"
            elif _ratio(contrast, contrast_0) > config.contrast_factor:
                problem = f"contrast {contrast:.3g} vs baseline {contrast_0:.3g}"
        if problem is None:
            self._outliers.clear()
            return
        self._outliers.append(stats)
        agree = all(
            _ratio(m, mean) <= config.mean_factor and _ratio(c, contrast) <= config.contrast_factor
            for m, c in self._outliers
        )
        if not agree:
            self._outliers = [stats]
        if len(self._outliers) >= config.accept_after and contrast <= config.max_contrast:
            log.info("frame %s: %s in a row: a new baseline", frame.seq, problem)
            self._reset()
            self.engine.request_cold_restart(f"intensity changed ({problem})")
            return
        raise BadFrame("glitch", f"frame {frame.seq}: glitch, {problem}")

    def _observe(self, result: LiveResult) -> None:
        """SIPRAD results: compare the misfit with the recent ones (refinement thread)."""
        if result.method != "siprad":
            return
        config = self.config
        refiner = self.engine.refiner
        # on the frame itself when known: SIPRAD may fit the running mean, whose
        # noise (and so its own misfit) drops and jumps as the mean restarts
        on_frame = getattr(result, "frame_misfit", None)
        misfit = result.final_loss if on_frame is None else on_frame
        with self._lock:
            if not result.warm:
                self._misfits.clear()
                self._misfit_outliers = 0
            elif len(self._misfits) >= config.min_baseline:
                reference = statistics.median(self._misfits)
                if not misfit <= config.misfit_factor * reference:
                    self._misfit_outlier(result, refiner, misfit, reference)
                    return
            self._misfit_outliers = 0
            self._misfits.append(misfit)
            self._good_state = getattr(refiner, "state", None)

    def _misfit_outlier(
        self, result: LiveResult, refiner: Any, misfit: float, reference: float
    ) -> None:
        """Leave ``result`` published but flagged; warm-start from the last good state."""
        self._misfit_outliers += 1
        note = f"misfit {misfit:.3g} > {self.config.misfit_factor:g} x baseline {reference:.3g}"
        if self._misfit_outliers >= self.config.accept_after:
            note += "; next frame cold"
            refiner.request_restart(f"misfit above the baseline in {self._misfit_outliers} frames")
            self._misfits.clear()
            self._misfit_outliers = 0
        elif self._good_state is not None and hasattr(refiner, "state"):
            refiner.state = self._good_state
            note += "; state not carried"
        result.metadata["guard"] = note
