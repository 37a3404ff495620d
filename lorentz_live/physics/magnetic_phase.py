"""Magnetic phase of a thin film from its in-plane magnetisation (Mansuripur).

For a beam along z and a magnetisation uniform through the film (or any
magnetisation integrated along z), the Aharonov-Bohm phase is, with the forward
FFT e^{-2 pi i k.r}:

    phi_m(k) = i mu0 (k_y Mt_x(k) - k_x Mt_y(k)) / (2 Phi_0 |k|^2),    phi_m(0) = 0

where Mt = integral of M dz (A).  It is the exact inverse of eq. 4 applied to
B_int = mu0 * (divergence-free part of Mt): a divergence-free in-plane texture of
saturation Ms and thickness t gives |B_int| = mu0 Ms t.  M_z does not contribute
at normal incidence.  The field of view is periodic.
"""

from __future__ import annotations

import torch

from lorentz_live.physics.constants import FLUX_QUANTUM_WB, MU0_H_PER_M, NM
from lorentz_live.physics.fourier import frequency_grid


def magnetic_phase_from_moment(
    moment_x_a: torch.Tensor, moment_y_a: torch.Tensor, pixel_size_nm: float
) -> torch.Tensor:
    """phi_m (rad) from the areal magnetic moment Mt = int M dz, in A, arrays [..., H, W]."""
    real_dtype = moment_x_a.dtype
    k_y, k_x = frequency_grid(
        tuple(moment_x_a.shape[-2:]), pixel_size_nm * NM, device=moment_x_a.device
    )
    k_sq = k_y**2 + k_x**2
    safe_k_sq = torch.where(k_sq > 0, k_sq, 1.0)
    factor = torch.where(k_sq > 0, MU0_H_PER_M / (2.0 * FLUX_QUANTUM_WB * safe_k_sq), 0.0)
    complex_dtype = torch.complex128 if real_dtype == torch.float64 else torch.complex64
    mx_k = torch.fft.fft2(moment_x_a.to(complex_dtype))
    my_k = torch.fft.fft2(moment_y_a.to(complex_dtype))
    numerator = k_y.to(real_dtype) * mx_k - k_x.to(real_dtype) * my_k
    phase_k = 1j * factor.to(real_dtype) * numerator
    return torch.fft.ifft2(phase_k).real.to(real_dtype)


def film_magnetic_phase(
    magnetisation: torch.Tensor,
    ms_a_per_m: float | torch.Tensor,
    thickness_nm: float | torch.Tensor,
    pixel_size_nm: float,
) -> torch.Tensor:
    """phi_m (rad) of a film with unit magnetisation ``magnetisation`` [3, H, W] (m_x, m_y, m_z).

    ``ms_a_per_m`` saturation magnetisation (A/m) and ``thickness_nm`` (nm) may be
    scalars or [H, W] maps (patterned samples).
    """
    areal = ms_a_per_m * thickness_nm * NM
    return magnetic_phase_from_moment(
        magnetisation[0] * areal, magnetisation[1] * areal, pixel_size_nm
    )
