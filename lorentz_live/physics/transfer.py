"""Microscope transfer function T(k) = A(k) e^{-i chi(k)} e^{-g(k)} (SIPRAD eqs. 8-10).

chi(k) = pi lambda [dz + C_a cos(2 (theta_k - phi_a))] |k|^2 + (pi/2) Cs lambda^3 |k|^4

g(k) = (pi theta_c / lambda)^2 / u * (Cs lambda^3 |k|^3 + dz lambda |k|)^2
       + (pi lambda Delta)^2 / (2 u) |k|^4,     u = 1 + 2 (pi theta_c Delta)^2 |k|^2

The first term of g is the spatial-coherence envelope, (pi theta_c / lambda)^2
times the squared gradient |d chi / d k| / (2 pi); its sign inside the bracket
follows from chi.  The paper prints (Cs lambda^3 k^3 - dz lambda k) because its
reference code uses chi with -dz; with the eq. 9 chi used here the consistent
bracket has +dz (docs/conventions.md).  In Lorentz mode the Cs term is ~1e-5 of
the defocus term, so the two differ by far less than float32 resolution.

T multiplies FFT(psi) with the forward FFT e^{-2 pi i k.r}.  Built in float64
(lambda^3 k^4 underflows float32 in SI) and returned as complex64 by default.
"""

from __future__ import annotations

import torch

from lorentz_live.physics.fourier import frequency_grid
from lorentz_live.physics.microscope import MicroscopeParams


def phase_transfer_chi(
    k_y: torch.Tensor, k_x: torch.Tensor, params: MicroscopeParams
) -> torch.Tensor:
    """Aberration phase chi(k) in rad; k in 1/m (float64 recommended)."""
    wavelength = params.wavelength_m
    k_sq = k_y**2 + k_x**2
    theta_k = torch.atan2(k_y, k_x)
    astig = params.astigmatism_nm * 1e-9 * torch.cos(2.0 * (theta_k - params.astigmatism_angle_rad))
    defocus_term = torch.pi * wavelength * (params.defocus_m + astig) * k_sq
    cs_term = 0.5 * torch.pi * params.cs_nm * 1e-9 * wavelength**3 * k_sq**2
    return defocus_term + cs_term


def damping_envelope_g(
    k_y: torch.Tensor, k_x: torch.Tensor, params: MicroscopeParams
) -> torch.Tensor:
    """Exponent g(k) >= 0 of the partial-coherence envelope e^{-g}; k in 1/m."""
    wavelength = params.wavelength_m
    cs = params.cs_nm * 1e-9
    spread = params.defocus_spread_nm * 1e-9
    theta_c = params.theta_c_rad
    k_sq = k_y**2 + k_x**2
    k = torch.sqrt(k_sq)
    u = 1.0 + 2.0 * (torch.pi * theta_c * spread) ** 2 * k_sq
    gradient = cs * wavelength**3 * k**3 + params.defocus_m * wavelength * k
    spatial = (torch.pi * theta_c / wavelength) ** 2 * gradient**2 / u
    temporal = (torch.pi * wavelength * spread) ** 2 * k_sq**2 / (2.0 * u)
    return spatial + temporal


def transfer_function(
    shape: tuple[int, ...],
    params: MicroscopeParams,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """T(k) on the unshifted FFT grid of an image of ``shape`` [H, W].

    Dimensionless complex tensor [H, W]; T = 1 when dz = Cs = C_a = 0 with no
    envelope and no aperture.
    """
    k_y, k_x = frequency_grid(shape, params.pixel_size_m, device=device, dtype=torch.float64)
    chi = phase_transfer_chi(k_y, k_x, params)
    g = damping_envelope_g(k_y, k_x, params)
    transfer = torch.exp(-g) * torch.exp(-1j * chi)
    if params.aperture_per_nm is not None:
        k_mag_per_nm = torch.sqrt(k_y**2 + k_x**2) * 1e-9
        transfer = transfer * (k_mag_per_nm <= params.aperture_per_nm)
    return transfer.to(dtype)
