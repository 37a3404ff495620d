"""Radial power spectra of images on the FFT grid of :mod:`lorentz_live.physics.fourier`.

Frequencies are in cycles per pixel here (``torch.fft.fftfreq`` with d = 1), rings
of |k| one ring per 1 / max(H, W) cycles/px.  Used to filter an image with a
noise estimate and to state the resolution the noise allows.
"""

from __future__ import annotations

import math

import torch

#: Wiener gain at the noise-limited cut-off (signal power = noise power).
CUTOFF_GAIN = 0.5


def ring_index(shape: tuple[int, int], *, device: torch.device | str | None = None) -> torch.Tensor:
    """Ring number round(|k| max(H, W)) [H, W] (long) of every FFT frequency, |k| in cycles/px."""
    height, width = shape
    k_y = torch.fft.fftfreq(height, device=device, dtype=torch.float64)[:, None]
    k_x = torch.fft.fftfreq(width, device=device, dtype=torch.float64)[None, :]
    return torch.round(torch.sqrt(k_y**2 + k_x**2) * max(height, width)).long()


def radial_mean(values: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [H, W] over each ring of ``ring`` [H, W] -> [n_rings] float64."""
    flat = ring.flatten()
    count = torch.bincount(flat).clamp_min(1)
    return torch.bincount(flat, weights=values.flatten().double()) / count


def wiener_gain(image: torch.Tensor, noise_variance: float) -> torch.Tensor:
    """Wiener gain S / (S + N) [H, W] on the FFT grid of the mean-normalised ``image`` [H, W].

    Signal power per ring = measured power - noise power (floored at 0), so the
    gain needs no ground truth, only the white-noise variance (in units of the
    squared mean intensity).  DC gets gain 1.
    """
    height, width = image.shape
    power = torch.fft.fft2(image - image.mean()).abs() ** 2 / (height * width)
    ring = ring_index((height, width), device=image.device)
    signal = (radial_mean(power, ring) - noise_variance).clamp_min(0.0).to(power.dtype)[ring]
    gain = signal / (signal + noise_variance) if noise_variance > 0 else torch.ones_like(signal)
    gain[0, 0] = 1.0
    return gain


def wiener_contrast(image: torch.Tensor, noise_variance: float) -> torch.Tensor:
    """Mean-normalised ``image`` [H, W] Wiener-filtered by :func:`wiener_gain`."""
    spectrum = torch.fft.fft2(image - image.mean())
    return 1.0 + torch.fft.ifft2(spectrum * wiener_gain(image, noise_variance)).real


def noise_limited_cutoff(image: torch.Tensor, noise_variance: float) -> float | None:
    """Highest |k| <= Nyquist (cycles/px) whose ring-mean Wiener gain is >= 1/2, or None.

    Above it noise power exceeds signal power: the finest detail the image
    supports.  The corner rings beyond Nyquist (few pixels each) are not used.
    """
    height, width = image.shape
    ring = ring_index((height, width), device=image.device)
    profile = radial_mean(wiener_gain(image, noise_variance), ring)
    nyquist = max(height, width) // 2
    passing = torch.nonzero(profile[1 : nyquist + 1] >= CUTOFF_GAIN).flatten()
    if passing.numel() == 0:
        return None
    return float(passing.max() + 1) / max(height, width)


def gaussian_half_transfer(sigma_px: float) -> float:
    """|k| (cycles/px) where a Gaussian of ``sigma_px`` transfers 1/2 (inf for sigma 0)."""
    if sigma_px <= 0:
        return math.inf
    return sigma_for_cutoff(sigma_px)  # the relation is symmetric in sigma and k


def sigma_for_cutoff(k_c: float) -> float:
    """Gaussian sigma (px) whose transfer is 1/2 at ``k_c`` (cycles/px): exp(-2 pi^2 s^2 k^2)."""
    return math.sqrt(math.log(2.0) / 2.0) / (math.pi * k_c)


def resolution_sigma_px(image: torch.Tensor, noise_variance: float, cap_px: float = 8.0) -> float:
    """Gaussian sigma (px) whose transfer is 1/2 at :func:`noise_limited_cutoff` (<= ``cap_px``)."""
    k_c = noise_limited_cutoff(image, noise_variance)
    if k_c is None:
        return cap_px
    return min(cap_px, sigma_for_cutoff(k_c))
