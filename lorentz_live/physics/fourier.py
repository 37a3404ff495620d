"""Spatial-frequency grids for the FFT convention of docs/conventions.md.

Forward FFT kernel e^{-2 pi i k.r} (``torch.fft.fft2``), so d/dx <-> 2 pi i k_x.
Frequencies are in cycles per metre, unshifted (DC at index 0), arrays [y, x].
"""

from __future__ import annotations

import torch


def frequency_grid(
    shape: tuple[int, ...],
    pixel_size_m: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (k_y, k_x), each of ``shape`` [H, W], in 1/m.

    k_y varies along axis 0 and k_x along axis 1, as ``torch.fft.fftfreq``.
    """
    height, width = shape
    ky = torch.fft.fftfreq(height, d=pixel_size_m, device=device, dtype=dtype)
    kx = torch.fft.fftfreq(width, d=pixel_size_m, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ky, kx, indexing="ij")
    return grid_y, grid_x


def inverse_laplacian_kernel(k_sq: torch.Tensor, qc_sq: float = 0.0) -> torch.Tensor:
    """Fourier multiplier of the (regularised) inverse Laplacian.

    The Laplacian is -4 pi^2 |k|^2 in Fourier space; its inverse is
    -1 / (4 pi^2 |k|^2).  With a Tikhonov frequency q_c (1/m, passed squared)
    1/|k|^2 becomes |k|^2 / (|k|^2 + q_c^2)^2, which damps frequencies below q_c.
    The DC term is set to 0 (the mean phase is not measurable).
    """
    if qc_sq > 0:
        inverse = k_sq / (k_sq + qc_sq) ** 2
    else:
        inverse = torch.where(k_sq > 0, 1.0 / torch.where(k_sq > 0, k_sq, 1.0), 0.0)
    inverse = inverse.clone()
    inverse[..., 0, 0] = 0.0
    return -inverse / (4.0 * torch.pi**2)
