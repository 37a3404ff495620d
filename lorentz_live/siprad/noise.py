"""Noise level of a defocused image, estimated without a ground truth.

In Lorentz mode the partial-coherence envelope e^{-g(k)} of the transfer
function removes all signal above a cut-off frequency; what remains there is
detector noise.  For white noise of standard deviation sigma (in units of the
mean intensity) every DFT coefficient has E|F(k)|^2 = H W sigma^2, so the mean
power over the frequencies where |T(k)| is negligible estimates sigma^2.

When the envelope does not kill any part of the spectrum (small defocus, or a
coarse pixel) the outermost frequencies are used instead; that estimate
includes some signal and is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: |T(k)| below which a frequency is taken to carry no signal.
ENVELOPE_CUTOFF = 1.0e-3
#: Smallest share of the spectrum needed for an envelope-based estimate.
MIN_FRACTION = 0.02
#: Fallback band: frequencies above this share of the Nyquist radius.
FALLBACK_RADIUS = 0.9


@dataclass(frozen=True)
class NoiseEstimate:
    """Estimated white-noise level of a mean-normalised image.

    sigma : noise standard deviation / mean intensity (dimensionless; 0.5 = "50 %").
    fraction : share of the spectrum used.
    source : ``"envelope"`` (frequencies where the envelope removed the signal)
        or ``"outer"`` (fallback: outermost frequencies, an upper bound).
    """

    sigma: float
    fraction: float
    source: str

    @property
    def variance(self) -> float:
        """sigma**2, the expected per-pixel MSE between a perfect model and the data."""
        return self.sigma**2


def estimate_noise(image: torch.Tensor, transfer: torch.Tensor) -> NoiseEstimate:
    """Noise standard deviation of ``image`` [H, W] relative to its mean.

    Parameters
    ----------
    image : intensity [H, W], any positive scale (normalised by its mean here).
    transfer : T(k) [H, W] of the image (:func:`lorentz_live.physics.transfer_function`).

    Returns
    -------
    NoiseEstimate
    """
    image = image / image.mean()
    height, width = image.shape[-2:]
    power = torch.fft.fft2(image - image.mean()).abs() ** 2 / (height * width)
    dead = transfer.abs() < ENVELOPE_CUTOFF
    fraction = float(dead.float().mean())
    source = "envelope"
    if fraction < MIN_FRACTION:
        k_y = torch.fft.fftfreq(height, device=image.device)[:, None] * 2.0
        k_x = torch.fft.fftfreq(width, device=image.device)[None, :] * 2.0
        dead = torch.sqrt(k_y**2 + k_x**2) > FALLBACK_RADIUS
        fraction = float(dead.float().mean())
        source = "outer"
    variance = float(power[dead].mean())
    return NoiseEstimate(sigma=variance**0.5, fraction=fraction, source=source)
