"""Transport-of-intensity phase retrieval: SITIE (one image) and three-image TIE.

TIE (SIPRAD eq. 1):  div(I0 grad phi) = -(2 pi / lambda) dI/dz.
SITIE (eq. 2):       lap phi = (2 pi / (lambda dz)) (1 - I_dz / I0), I0 = mean(I_dz).

Signs follow docs/conventions.md: chi = +pi lambda dz |k|^2 with T applied as
e^{-i chi}, so a weak phase images as I/I0 = 1 - (lambda dz / 2 pi) lap phi.
"""

from __future__ import annotations

import torch

from lorentz_live.physics.filters import gaussian_filter, mirror_pad
from lorentz_live.physics.fourier import frequency_grid, inverse_laplacian_kernel
from lorentz_live.physics.microscope import MicroscopeParams


def _solve_poisson(
    rhs: torch.Tensor, pixel_size_m: float, qc_per_nm: float, symmetrize: bool
) -> torch.Tensor:
    """phi with lap phi = rhs (rhs in 1/m^2), FFT solution, optional mirror padding."""
    height, width = rhs.shape[-2:]
    work = mirror_pad(rhs) if symmetrize else rhs
    real_dtype = torch.float64 if rhs.dtype == torch.float64 else torch.float32
    k_y, k_x = frequency_grid(tuple(work.shape[-2:]), pixel_size_m, device=rhs.device)
    qc_sq = (qc_per_nm * 1e9) ** 2
    kernel = inverse_laplacian_kernel(k_y**2 + k_x**2, qc_sq).to(real_dtype)
    phase = torch.fft.ifft2(torch.fft.fft2(work) * kernel).real
    return phase[..., :height, :width]


def sitie_phase(
    image: torch.Tensor,
    params: MicroscopeParams,
    *,
    qc_per_nm: float = 0.0,
    sigma_px: float = 0.0,
    symmetrize: bool = False,
) -> torch.Tensor:
    """Single-image TIE phase (rad), same shape as ``image`` [..., H, W].

    Parameters
    ----------
    image : defocused intensity, any positive scale (normalised by its mean here).
    params : defocus (nonzero), wavelength and pixel size are used.
    qc_per_nm : Tikhonov frequency q_c, 1/nm (0 = none); damps frequencies below it.
    sigma_px : Gaussian pre-smoothing of the image, pixels (0 = none).
    symmetrize : mirror-pad to 2H x 2W first; use for non-periodic (real) images,
        leave off for periodic fields such as simulations (it biases low frequencies).

    The result has zero mean over the padded field (the mean phase is unknowable).
    """
    params.require_reconstruction_defocus()
    smoothed = gaussian_filter(image, sigma_px)
    contrast = 1.0 - smoothed / smoothed.mean(dim=(-2, -1), keepdim=True)
    rhs = (2.0 * torch.pi / (params.wavelength_m * params.defocus_m)) * contrast
    return _solve_poisson(rhs, params.pixel_size_m, qc_per_nm, symmetrize)


def tie_phase(
    under: torch.Tensor,
    infocus: torch.Tensor,
    over: torch.Tensor,
    params: MicroscopeParams,
    *,
    qc_per_nm: float = 0.0,
    symmetrize: bool = False,
) -> torch.Tensor:
    """Phase (rad) from a symmetric through-focus series at -|dz|, 0, +|dz|.

    ``params.defocus_nm`` gives |dz| (its sign is ignored).  Solves
    div(I0 grad phi) = -(2 pi/lambda) dI/dz with dI/dz = (I+ - I-) / (2 |dz|) by the
    standard two-Poisson method: phi = -k lap^-1 div[(1/I0) grad lap^-1 dI/dz].
    Images are normalised by the in-focus mean.
    """
    params.require_reconstruction_defocus()
    scale = infocus.mean(dim=(-2, -1), keepdim=True)
    under, infocus, over = under / scale, infocus / scale, over / scale
    dz = abs(params.defocus_m)
    didz = (over - under) / (2.0 * dz)
    height, width = didz.shape[-2:]
    if symmetrize:
        didz, infocus = mirror_pad(didz), mirror_pad(infocus)
    real_dtype = torch.float64 if didz.dtype == torch.float64 else torch.float32
    k_y, k_x = frequency_grid(tuple(didz.shape[-2:]), params.pixel_size_m, device=didz.device)
    kernel = inverse_laplacian_kernel(k_y**2 + k_x**2, (qc_per_nm * 1e9) ** 2).to(real_dtype)
    k_y, k_x = k_y.to(real_dtype), k_x.to(real_dtype)
    wavenumber = 2.0 * torch.pi / params.wavelength_m
    potential_k = torch.fft.fft2(-wavenumber * didz) * kernel
    grad_y = torch.fft.ifft2(2j * torch.pi * k_y * potential_k).real / infocus
    grad_x = torch.fft.ifft2(2j * torch.pi * k_x * potential_k).real / infocus
    divergence_k = 2j * torch.pi * (k_y * torch.fft.fft2(grad_y) + k_x * torch.fft.fft2(grad_x))
    phase = torch.fft.ifft2(divergence_k * kernel).real
    return phase[..., :height, :width]
