"""The drift-registered running mean of a movie's frames: noise averaged over time.

Consecutive frames of an in-situ movie show nearly the same texture with
independent noise.  Moving the running mean with the stage drift (measured
between the mean, which sits where the last frame was, and the new frame) and
blending in each new frame (weight ``weight``) averages the noise of about
(2 - w) / w frames while following the sample; SITIE of the mean is then far
less noisy than SITIE of the frame (benchmarks/live_amortised.py).  This is
also where the online-trained network's gain on a still texture comes from: it
integrates frames in its weights.

The mean restarts from the new frame when the frames do not pair (the first
frame, a change of microscope parameters or shape, a gap in ``seq``) and when
the frame changed more than noise explains: mean squared difference of the
registered consecutive frames over twice the noise variance above
``reset_ratio``.

A fading texture (bubbles shrinking and vanishing in a rising field) changes
the image too little per frame for that test at noise 0.3, yet the mean keeps
the old bubbles as ghosts ((1 - w)^n after n frames) that outweigh the faint
texture left.  So the mean also compares the signal power of the frame with
that of the mean (:func:`texture_ratio`, ~1 while the texture holds) and
blends the frame in with weight max(w, 1 - ratio); at a weight of
``reset_weight`` (0.6) or more it restarts from the frame.  On the issue movie
(benchmarks/live.py, "The issue's scenario": rows of the running mean with a
fixed weight and following the fading texture) this keeps the instant answer
from falling far below single-frame Wiener-SITIE as the bubbles vanish, for a
small loss of mean B correlation (``reset_weight`` was chosen on movie seeds
1-5 as the largest of 0.45-0.7 that left no frame below SITIE - 0.02).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lorentz_live.physics import MicroscopeParams
from lorentz_live.physics.registration import estimate_shift, fourier_shift
from lorentz_live.siprad import estimate_noise


@dataclass(frozen=True)
class MeanUpdate:
    """What one frame did to the running mean.

    mean : the running mean after the frame (mean-normalised [H, W]).
    drift_px : (dy, dx) shift from the previous frame, px, or None when the two
        frames do not pair (first frame, new conditions, gap).
    reset : the mean restarted from this frame (why: ``reason``).
    """

    mean: torch.Tensor
    drift_px: tuple[float, float] | None
    reset: bool
    reason: str | None = None
    texture_ratio: float | None = None
    weight: float | None = None


class RunningMean:
    """Drift-registered exponential running mean of mean-normalised frames (see module text).

    weight : weight of the newest frame, in (0, 1]; 1 = no averaging.
    reset_ratio : frame change (difference / twice the noise) that restarts the mean.
    follow_fading : raise the weight where the texture fades (module text).
    reset_weight : the raised weight at which the mean restarts instead.
    """

    def __init__(
        self,
        weight: float,
        reset_ratio: float = 2.0,
        follow_fading: bool = True,
        reset_weight: float = 0.6,
    ) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"running-mean weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.reset_ratio = reset_ratio
        self.follow_fading = follow_fading
        self.reset_weight = reset_weight
        #: the mean's noise variance over a single frame's
        self._noise_fraction = 1.0
        self.resets = 0
        self._mean: torch.Tensor | None = None
        self._last: tuple[torch.Tensor, int, MicroscopeParams] | None = None

    def clear(self) -> None:
        """Forget the mean: the next frame starts it afresh."""
        self._mean, self._last, self._noise_fraction = None, None, 1.0

    def update(
        self, norm: torch.Tensor, seq: int, params: MicroscopeParams, transfer: torch.Tensor
    ) -> MeanUpdate:
        """Blend the mean-normalised frame ``norm`` [H, W] (its T(k) ``transfer``) in."""
        last, self._last = self._last, (norm, seq, params)
        reason = None
        drift = None
        if last is None:
            reason = "first frame"
        elif last[2] != params or last[0].shape != norm.shape:
            reason = "new microscope parameters or shape"
        elif not 0 < seq - last[1] <= 1:
            reason = f"seq {last[1]} -> {seq}"
        else:  # against the mean when there is one: less noisy than the last frame
            reference = last[0] if self._mean is None else self._mean
            drift = estimate_shift(reference, norm)
        if drift is None or self._mean is None or self.weight >= 1.0:
            self._mean, self._noise_fraction = norm, 1.0
            return MeanUpdate(norm, drift, reset=True, reason=reason)
        assert last is not None
        noise = estimate_noise(norm, transfer).variance
        difference = float(torch.mean((norm - fourier_shift(last[0], drift)) ** 2))
        ratio = difference / (2.0 * noise) if noise > 0 else 0.0
        if ratio > self.reset_ratio:
            self.resets += 1
            self._mean, self._noise_fraction = norm, 1.0
            return MeanUpdate(norm, drift, reset=True, reason=f"frame change ratio {ratio:.2f}")
        moved = fourier_shift(self._mean, drift)
        weight, texture = self.weight, None
        if self.follow_fading:
            texture = texture_ratio(norm, moved, noise, self._noise_fraction)
            if math.isfinite(texture):
                weight = min(1.0, max(weight, 1.0 - texture))
        if weight >= self.reset_weight:
            self.resets += 1
            self._mean, self._noise_fraction = norm, 1.0
            reason = f"texture fading (signal power ratio {texture:.2f})"
            return MeanUpdate(norm, drift, True, reason, texture, 1.0)
        self._mean = (1.0 - weight) * moved + weight * norm
        self._noise_fraction = (1.0 - weight) ** 2 * self._noise_fraction + weight**2
        return MeanUpdate(self._mean, drift, reset=False, texture_ratio=texture, weight=weight)


def texture_ratio(
    norm: torch.Tensor, mean: torch.Tensor, noise: float, mean_noise_fraction: float
) -> float:
    """Signal power of the frame ``norm`` over that of the registered ``mean`` (both [H, W]).

    Over the Fourier modes where the mean's power exceeds 4x a frame's noise
    variance ``noise`` (mean-normalised units), each spectrum less its noise
    (``noise`` for the frame, ``mean_noise_fraction`` x it for the mean):
    ~1 while the texture holds, below 1 when it fades (bubbles shrink or
    vanish), NaN when the mean has no such mode.
    """
    count = norm.numel()
    frame_power = torch.fft.fft2(norm - norm.mean()).abs() ** 2 / count
    mean_power = torch.fft.fft2(mean - mean.mean()).abs() ** 2 / count
    band = mean_power > 4.0 * noise
    if not bool(band.any()):
        return math.nan
    signal = float((mean_power[band] - noise * mean_noise_fraction).sum())
    return float((frame_power[band] - noise).sum()) / signal if signal > 0 else math.nan


__all__ = ["MeanUpdate", "RunningMean", "texture_ratio"]
