"""3D induction fields on voxel grids [z, y, x]: B from M, divergence, the NRMSE of the paper.

Volumes are tensors [..., 3, Z, Y, X] holding (x, y, z) components in that order
on arrays indexed [z, y, x].  FFTs follow docs/conventions.md (e^{-2 pi i k.r},
d/dx <-> 2 pi i k_x); lengths in voxels unless a name says otherwise (B from M
is scale free: only the ratio of lengths matters).
"""

from __future__ import annotations

import torch

from lorentz_live.physics.constants import MU0_H_PER_M


def _frequencies(n: int, device, dtype) -> torch.Tensor:
    """fftfreq in cycles per voxel with the Nyquist term of an even ``n`` set to 0.

    The Nyquist mode of a real field has no sign, so a derivative there cannot
    stay real; zeroing it keeps projection and divergence consistent.
    """
    k = torch.fft.fftfreq(n, device=device, dtype=dtype)
    if n % 2 == 0:
        k[n // 2] = 0.0
    return k


def _wavevectors(shape: tuple[int, ...], device, dtype) -> tuple[torch.Tensor, ...]:
    """(k_x, k_y, k_z) in cycles per voxel, each broadcastable to ``shape`` [Z, Y, X]."""
    kz = _frequencies(shape[0], device, dtype)[:, None, None]
    ky = _frequencies(shape[1], device, dtype)[None, :, None]
    kx = _frequencies(shape[2], device, dtype)[None, None, :]
    return kx, ky, kz


def solenoidal_part(field: torch.Tensor) -> torch.Tensor:
    """Helmholtz projection F - k (k.F) / k^2 of ``field`` [..., 3, Z, Y, X] (periodic box).

    The k = 0 term (the mean) is kept.  The result has zero spectral divergence.
    """
    shape = tuple(field.shape[-3:])
    kx, ky, kz = _wavevectors(shape, field.device, field.dtype)
    spectrum = torch.fft.fftn(field, dim=(-3, -2, -1))
    k = (kx, ky, kz)
    k_sq = kx**2 + ky**2 + kz**2
    inv_k_sq = torch.where(k_sq > 0, 1.0 / torch.where(k_sq > 0, k_sq, 1.0), 0.0)
    k_dot = sum(k[i] * spectrum[..., i, :, :, :] for i in range(3)) * inv_k_sq
    projected = torch.stack([spectrum[..., i, :, :, :] - k[i] * k_dot for i in range(3)], dim=-4)
    return torch.fft.ifftn(projected, dim=(-3, -2, -1)).real


def induction_from_magnetisation(
    magnetisation_a_per_m: torch.Tensor, *, padding_factor: int = 2
) -> torch.Tensor:
    """B (T) [..., 3, Z, Y, X] of a magnetisation M (A/m) including its stray field.

    B(k) = mu0 [M(k) - k (k.M(k)) / k^2] evaluated in a box zero-padded to
    ``padding_factor`` (>= 2) times each dimension, then cropped back, so the
    return flux of a finite body stays inside the padded box instead of wrapping
    around.  The k = 0 term is mu0 <M> (H has zero mean in the periodic box).
    """
    if padding_factor < 2:
        raise ValueError(f"padding_factor must be >= 2, got {padding_factor}")
    shape = tuple(magnetisation_a_per_m.shape[-3:])
    padded_shape = tuple(padding_factor * n for n in shape)
    pad = []
    for n, big in zip(reversed(shape), reversed(padded_shape), strict=True):
        pad += [0, big - n]
    padded = torch.nn.functional.pad(magnetisation_a_per_m, pad)
    induction = MU0_H_PER_M * solenoidal_part(padded)
    return induction[..., : shape[0], : shape[1], : shape[2]].contiguous()


def divergence(field: torch.Tensor) -> torch.Tensor:
    """Central-difference divergence [..., Z, Y, X] of ``field`` [..., 3, Z, Y, X], per voxel."""
    d_bx = torch.gradient(field[..., 0, :, :, :], dim=-1)[0]
    d_by = torch.gradient(field[..., 1, :, :, :], dim=-2)[0]
    d_bz = torch.gradient(field[..., 2, :, :, :], dim=-3)[0]
    return d_bx + d_by + d_bz


def spectral_divergence(field: torch.Tensor) -> torch.Tensor:
    """Spectral (periodic) divergence [..., Z, Y, X] of ``field`` [..., 3, Z, Y, X], per voxel."""
    shape = tuple(field.shape[-3:])
    kx, ky, kz = _wavevectors(shape, field.device, field.dtype)
    spectrum = torch.fft.fftn(field, dim=(-3, -2, -1))
    div = (
        2j
        * torch.pi
        * (
            kx * spectrum[..., 0, :, :, :]
            + ky * spectrum[..., 1, :, :, :]
            + kz * spectrum[..., 2, :, :, :]
        )
    )
    return torch.fft.ifftn(div, dim=(-3, -2, -1)).real


def nrmse(estimate: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalised RMS error of the MagNet paper's eq. 3, over the voxels where ``mask`` is true.

    sqrt( sum_V |B - B_ref|^2 / (V max_V |B_ref|^2) ) with |.| the vector norm over
    the 3 components; fields [..., 3, Z, Y, X], mask [Z, Y, X] (or broadcastable).
    Dimensionless (0.1 = 10 %).
    """
    inside = mask.to(torch.bool)
    squared_error = ((estimate - truth) ** 2).sum(dim=-4)
    reference = (truth**2).sum(dim=-4)
    count = inside.sum()
    error = torch.where(inside, squared_error, 0.0).sum(dim=(-3, -2, -1))
    peak = torch.where(inside, reference, 0.0).amax(dim=(-3, -2, -1))
    return torch.sqrt(error / (count * peak))
