"""Rigid shift between two images by phase correlation (sub-pixel, periodic).

Used by the live loop to measure stage drift between consecutive frames.
"""

from __future__ import annotations

import torch


def estimate_shift(
    reference: torch.Tensor, moving: torch.Tensor, *, lowpass: float = 0.05, window: bool = True
) -> tuple[float, float]:
    """(dy, dx) in pixels such that ``moving[y, x] ~ reference[y - dy, x - dx]``.

    Phase correlation: the normalised cross-power spectrum, low-passed by a
    Gaussian of width ``lowpass`` cycles/px (noise at high frequency would
    otherwise get full weight), with a parabolic sub-pixel fit of the peak.  A
    Hann ``window`` suppresses the edges of non-periodic camera frames.  Shifts
    are wrapped into [-N/2, N/2).  Arrays [H, W], any real dtype.
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(
            "need two 2D images of one shape, got "
            f"{tuple(reference.shape)} and {tuple(moving.shape)}"
        )
    a, b = reference.double(), moving.double()
    a, b = a - a.mean(), b - b.mean()
    height, width = a.shape
    if window:
        hann = torch.outer(
            torch.hann_window(height, periodic=True, dtype=torch.float64),
            torch.hann_window(width, periodic=True, dtype=torch.float64),
        ).to(a.device)
        a, b = a * hann, b * hann
    cross = torch.fft.fft2(b) * torch.conj(torch.fft.fft2(a))
    k_y = torch.fft.fftfreq(height, dtype=torch.float64, device=a.device)[:, None]
    k_x = torch.fft.fftfreq(width, dtype=torch.float64, device=a.device)[None, :]
    weight = torch.exp(-(k_y**2 + k_x**2) / (2.0 * lowpass**2))
    surface = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-30) * weight).real
    peak = int(torch.argmax(surface))
    py, px = divmod(peak, width)

    def refine(minus: float, centre: float, plus: float) -> float:
        curvature = minus - 2.0 * centre + plus
        return 0.0 if curvature >= 0 else 0.5 * (minus - plus) / curvature

    dy = py + refine(
        surface[(py - 1) % height, px], surface[py, px], surface[(py + 1) % height, px]
    )
    dx = px + refine(surface[py, (px - 1) % width], surface[py, px], surface[py, (px + 1) % width])
    dy = (dy + height / 2) % height - height / 2
    dx = (dx + width / 2) % width - width / 2
    return float(dy), float(dx)


def fourier_shift(image: torch.Tensor, shift_px: tuple[float, float]) -> torch.Tensor:
    """Translate ``image`` [..., H, W] by (dy, dx) pixels, periodically (band-limited)."""
    height, width = image.shape[-2:]
    real = torch.float64 if image.dtype == torch.float64 else torch.float32
    k_y = torch.fft.fftfreq(height, device=image.device, dtype=real)[:, None]
    k_x = torch.fft.fftfreq(width, device=image.device, dtype=real)[None, :]
    ramp = torch.exp(-2j * torch.pi * (k_y * shift_px[0] + k_x * shift_px[1]))
    return torch.fft.ifft2(torch.fft.fft2(image) * ramp).real.to(image.dtype)
