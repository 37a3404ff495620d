"""Differentiable LTEM image formation (SIPRAD eqs. 5-8).

psi = a e^{i phi};  I = |IFFT(FFT(psi) T)|^2, returned divided by its mean.
Batched over leading dimensions; the FFT makes the sample periodic.
"""

from __future__ import annotations

import torch

from lorentz_live.physics.microscope import MicroscopeParams
from lorentz_live.physics.transfer import transfer_function


def exit_wave(phase: torch.Tensor, amplitude: torch.Tensor | float | None = None) -> torch.Tensor:
    """psi = a e^{i phi}; phase in rad, amplitude dimensionless (1 if None)."""
    wave = torch.polar(torch.ones_like(phase), phase)
    if amplitude is None:
        return wave
    return wave * amplitude


def image_from_wave(
    wave: torch.Tensor, transfer: torch.Tensor, *, normalise: bool = True
) -> torch.Tensor:
    """|IFFT(FFT(psi) T)|^2 over the last two axes, optionally mean-normalised."""
    image_wave = torch.fft.ifft2(torch.fft.fft2(wave) * transfer)
    intensity = image_wave.real**2 + image_wave.imag**2
    if normalise:
        intensity = intensity / intensity.mean(dim=(-2, -1), keepdim=True)
    return intensity


def forward_image(
    phase: torch.Tensor,
    transfer: torch.Tensor,
    amplitude: torch.Tensor | float | None = None,
    *,
    normalise: bool = True,
) -> torch.Tensor:
    """Mean-normalised defocused image of the exit wave a e^{i phi}.

    ``phase`` [..., H, W] in rad (real, float32 or float64); ``transfer`` from
    :func:`transfer_function` for the same [H, W] (complex64 pairs with float32).
    Differentiable in phase and amplitude.
    """
    return image_from_wave(exit_wave(phase, amplitude), transfer, normalise=normalise)


def simulate_image(
    phase: torch.Tensor,
    params: MicroscopeParams,
    amplitude: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Convenience: build T for ``phase``'s shape and device, then :func:`forward_image`."""
    complex_dtype = torch.complex128 if phase.dtype == torch.float64 else torch.complex64
    transfer = transfer_function(
        tuple(phase.shape[-2:]), params, device=phase.device, dtype=complex_dtype
    )
    return forward_image(phase, transfer, amplitude)
