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
"""

from __future__ import annotations

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


class RunningMean:
    """Drift-registered exponential running mean of mean-normalised frames (see module text).

    weight : weight of the newest frame, in (0, 1]; 1 = no averaging.
    reset_ratio : frame change (difference / twice the noise) that restarts the mean.
    """

    def __init__(self, weight: float, reset_ratio: float = 2.0) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"running-mean weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.reset_ratio = reset_ratio
        self.resets = 0
        self._mean: torch.Tensor | None = None
        self._last: tuple[torch.Tensor, int, MicroscopeParams] | None = None

    def clear(self) -> None:
        """Forget the mean: the next frame starts it afresh."""
        self._mean, self._last = None, None

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
            self._mean = norm
            return MeanUpdate(norm, drift, reset=True, reason=reason)
        assert last is not None
        noise = estimate_noise(norm, transfer).variance
        difference = float(torch.mean((norm - fourier_shift(last[0], drift)) ** 2))
        ratio = difference / (2.0 * noise) if noise > 0 else 0.0
        if ratio > self.reset_ratio:
            self.resets += 1
            self._mean = norm
            return MeanUpdate(norm, drift, reset=True, reason=f"frame change ratio {ratio:.2f}")
        self._mean = (1.0 - self.weight) * fourier_shift(self._mean, drift) + self.weight * norm
        return MeanUpdate(self._mean, drift, reset=False)


__all__ = ["MeanUpdate", "RunningMean"]
