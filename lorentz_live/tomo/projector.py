"""Tilt projector: magnetic phase of a 3D induction field seen at a tilt.

Conventions (docs/conventions.md, "Tomography"): volumes are [z, y, x] with the
tilt axes through the voxel of index n // 2 on every axis.  A tilt
``tilt_x_deg`` = alpha rotates the sample by +alpha about +x (right-handed:
+y turns toward +z), ``tilt_y_deg`` = beta rotates it by +beta about +y (+z turns
toward +x); the rotated sample is then projected along +z.  The vector field
rotates with the sample, B'(r) = R B(R^-1 r).  Projected images are [y, x] on the
same voxel grid (the detector pixel is the voxel), phases in rad, B in T,
voxel size in nm.

The line integral is ray driven: every detector pixel samples its ray once per
voxel length with bilinear interpolation in the plane of the rotation.  One
sparse matrix per (angles, size, axis) holds those weights; projection
multiplies by it and :func:`backproject` by its transpose, so the two are exact
adjoints.
"""

from __future__ import annotations

import functools
import math

import torch

from lorentz_live.physics.constants import FLUX_QUANTUM_WB, NM

AXES = ("x", "y")


@functools.lru_cache(maxsize=32)
def _ray_matrix(angles_deg: tuple[float, ...], size: int, axis: str) -> torch.Tensor:
    """Sparse [n_tilts * size, size * size] matrix: plane (z, w) -> detector rows (tilt, w')."""
    # In the rotation plane (z, w), w = y for an x tilt and w = x for a y tilt.  The
    # rotated in-plane coordinate is w' = c w - sigma s z (sigma = +1 for x, -1 for y),
    # so a ray (w', t) samples w = c w' + sigma s t, z = -sigma s w' + c t.
    sigma = 1.0 if axis == "x" else -1.0
    centre = size // 2
    half = math.ceil(size * math.sqrt(2.0) / 2.0) + 1
    angles = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180.0
    cos = torch.cos(angles)[:, None, None]
    sin = torch.sin(angles)[:, None, None]
    detector = (torch.arange(size, dtype=torch.float64) - centre)[None, :, None]
    ray = torch.arange(-half, half + 1, dtype=torch.float64)[None, None, :]
    w = cos * detector + sigma * sin * ray + centre
    z = -sigma * sin * detector + cos * ray + centre
    w, z = torch.broadcast_tensors(w, z)
    rows = torch.arange(len(angles_deg))[:, None, None] * size + torch.arange(size)[None, :, None]
    rows = rows.expand_as(w)
    w0, z0 = torch.floor(w), torch.floor(z)
    fw, fz = w - w0, z - z0
    all_rows, all_cols, all_vals = [], [], []
    for dz, dw, weight in (
        (0, 0, (1 - fz) * (1 - fw)),
        (0, 1, (1 - fz) * fw),
        (1, 0, fz * (1 - fw)),
        (1, 1, fz * fw),
    ):
        zi, wi = (z0 + dz).long(), (w0 + dw).long()
        keep = (zi >= 0) & (zi < size) & (wi >= 0) & (wi < size) & (weight > 0)
        all_rows.append(rows[keep])
        all_cols.append(zi[keep] * size + wi[keep])
        all_vals.append(weight[keep])
    matrix = torch.sparse_coo_tensor(
        torch.stack([torch.cat(all_rows), torch.cat(all_cols)]),
        torch.cat(all_vals),
        (len(angles_deg) * size, size * size),
        check_invariants=True,
    )
    return matrix.coalesce()


def _matrix(angles_deg, size: int, axis: str, like: torch.Tensor) -> torch.Tensor:
    if axis not in AXES:
        raise ValueError(f"tilt axis must be 'x' or 'y', got {axis!r}")
    key = tuple(float(a) for a in torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1))
    return _ray_matrix(key, size, axis).to(device=like.device, dtype=like.dtype)


def _check_cube(volume: torch.Tensor) -> int:
    z, y, x = volume.shape[-3:]
    if not z == y == x:
        raise ValueError(
            f"tomography needs cubic volumes [N, N, N], got {tuple(volume.shape[-3:])}"
        )
    return z


def project(volume: torch.Tensor, angles_deg, axis: str, voxel_size_nm: float) -> torch.Tensor:
    """Line integrals along +z of a scalar volume [..., N, N, N] rotated by each tilt.

    Returns [..., n_tilts, N, N] (images [y, x]) in volume units times nm.
    """
    size = _check_cube(volume)
    matrix = _matrix(angles_deg, size, axis, volume)
    batch = volume.shape[:-3]
    flat = volume.reshape(-1, size, size, size)
    if axis == "y":  # plane (z, x), the y axis is carried along
        flat = flat.permute(0, 1, 3, 2)
    # [B, z, w, carried] -> [z*w, B*carried]
    columns = flat.permute(1, 2, 0, 3).reshape(size * size, -1)
    images = torch.sparse.mm(matrix, columns).reshape(-1, size, flat.shape[0], size)
    images = images.permute(2, 0, 1, 3)  # [B, tilt, w', carried]
    if axis == "y":
        images = images.transpose(-1, -2)
    return (voxel_size_nm * images).reshape(*batch, -1, size, size)


def backproject(images: torch.Tensor, angles_deg, axis: str, voxel_size_nm: float) -> torch.Tensor:
    """Adjoint of :func:`project`: images [..., n_tilts, N, N] -> volume [..., N, N, N]."""
    size = images.shape[-1]
    matrix = _matrix(angles_deg, size, axis, images)
    batch = images.shape[:-3]
    flat = images.reshape(-1, images.shape[-3], size, size)
    if axis == "y":
        flat = flat.transpose(-1, -2)
    rows = flat.permute(1, 2, 0, 3).reshape(-1, flat.shape[0] * size)
    volume = torch.sparse.mm(matrix.transpose(0, 1).coalesce(), rows)
    volume = volume.reshape(size, size, flat.shape[0], size).permute(2, 0, 1, 3)
    if axis == "y":
        volume = volume.permute(0, 1, 3, 2)
    return (voxel_size_nm * volume).reshape(*batch, size, size, size)


def projected_induction(
    induction_t: torch.Tensor, angles_deg, axis: str, voxel_size_nm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """In-plane induction of the tilted sample integrated along the beam, in T nm.

    ``induction_t`` [..., 3, N, N, N] = (B_x, B_y, B_z) in T.  Returns
    (int B'_x dz, int B'_y dz), each [..., n_tilts, N, N].  For an x tilt B'_x = B_x
    and B'_y = cos(a) B_y - sin(a) B_z; for a y tilt B'_x = cos(b) B_x + sin(b) B_z
    and B'_y = B_y.
    """
    angles = torch.as_tensor(angles_deg, dtype=induction_t.dtype, device=induction_t.device)
    cos = torch.cos(torch.deg2rad(angles))[:, None, None]
    sin = torch.sin(torch.deg2rad(angles))[:, None, None]
    p = [project(induction_t[..., i, :, :, :], angles_deg, axis, voxel_size_nm) for i in range(3)]
    if axis == "x":
        return p[0], cos * p[1] - sin * p[2]
    return cos * p[0] + sin * p[2], p[1]


def phase_from_projected_induction(
    b_x_tnm: torch.Tensor, b_y_tnm: torch.Tensor, pixel_size_nm: float
) -> torch.Tensor:
    """phi_m (rad) [..., N, N] whose gradient best matches (Phi_0/pi)(-d/dy, d/dx) phi = B_int.

    Least-squares Fourier integration on a 2x zero-padded image (no wrap-around),
    mean set by the padding (phi ~ 0 far from the sample).  Inverse of
    :func:`lorentz_live.physics.integrated_induction` up to discretisation.
    """
    height, width = b_x_tnm.shape[-2:]
    pad = (0, width, 0, height)
    bx = torch.nn.functional.pad(b_x_tnm, pad) * NM  # T m
    by = torch.nn.functional.pad(b_y_tnm, pad) * NM
    spacing = pixel_size_nm * NM
    ky = torch.fft.fftfreq(2 * height, d=spacing, device=bx.device, dtype=bx.dtype)[:, None]
    kx = torch.fft.fftfreq(2 * width, d=spacing, device=bx.device, dtype=bx.dtype)[None, :]
    k_sq = kx**2 + ky**2
    factor = torch.where(k_sq > 0, 1.0 / torch.where(k_sq > 0, k_sq, 1.0), 0.0)
    spectrum = 1j * (ky * torch.fft.fft2(bx) - kx * torch.fft.fft2(by)) * factor
    phase = torch.fft.ifft2(spectrum / (2.0 * FLUX_QUANTUM_WB)).real
    return phase[..., :height, :width]


def tilt_phase(
    induction_t: torch.Tensor, angles_deg, axis: str, voxel_size_nm: float
) -> torch.Tensor:
    """Magnetic phase (rad) [..., n_tilts, N, N] of ``induction_t`` [..., 3, N, N, N] (T).

    Also takes mu0 M (T) of a magnetised body: the phase sees only the in-plane
    solenoidal part of the projection, which is the same for mu0 M and for the
    induction B integrated along the whole beam path, stray field included.  With
    mu0 M it is exact for compact bodies; with B it sees only the field inside the box.
    """
    b_x, b_y = projected_induction(induction_t, angles_deg, axis, voxel_size_nm)
    return phase_from_projected_induction(b_x, b_y, voxel_size_nm)


def induction_from_phase(
    phase: torch.Tensor, pixel_size_nm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(int B_x dz, int B_y dz) in T nm = (Phi_0/pi)(-d phi/dy, d phi/dx) of phases [..., H, W].

    Spectral derivatives of the mirror-extended image (2H x 2W, even about both
    edges), so a phase that does not wrap around gives no edge ringing, and the
    sharp features of the texture are not damped as central differences damp them.
    """
    height, width = phase.shape[-2:]
    extended = torch.cat([phase, torch.flip(phase, dims=(-1,))], dim=-1)
    extended = torch.cat([extended, torch.flip(extended, dims=(-2,))], dim=-2)
    spacing = pixel_size_nm * NM
    ky = torch.fft.fftfreq(2 * height, d=spacing, device=phase.device, dtype=phase.dtype)[:, None]
    kx = torch.fft.fftfreq(2 * width, d=spacing, device=phase.device, dtype=phase.dtype)[None, :]
    spectrum = torch.fft.fft2(extended)
    d_dy = torch.fft.ifft2(2j * math.pi * ky * spectrum).real[..., :height, :width]
    d_dx = torch.fft.ifft2(2j * math.pi * kx * spectrum).real[..., :height, :width]
    scale = FLUX_QUANTUM_WB / math.pi / NM
    return -scale * d_dy, scale * d_dx
