"""Conventional vector-field electron tomography (VFET) by direct Fourier reconstruction.

For an x-tilt series, -(Phi_0/pi) d phi / dy of each image is the projection of
B_x (invariant under rotation about x), so B_x is scalar tomography; B_y likewise
from the y-tilt series with (Phi_0/pi) d phi / dx.  Each 1D profile across the
tilt axis is padded 2x, Fourier transformed and scattered by bilinear weights
onto the 2D Fourier plane perpendicular to the tilt axis (central-slice
theorem); accumulated values are divided by the accumulated weights, unsampled
frequencies (the missing wedge) stay zero.  B_z follows from div B = 0.
Conventions as in :mod:`lorentz_live.tomo.projector`.
"""

from __future__ import annotations

import functools
import math

import torch

from lorentz_live.tomo.fields import _wavevectors
from lorentz_live.tomo.projector import induction_from_phase

#: Accumulated bilinear weight below which a Fourier cell counts as unsampled.
MIN_WEIGHT = 1e-3
#: Default low-pass of the projected induction before gridding, as fractions of the
#: Nyquist frequency: flat below the first, cosine taper to zero at the second.
#: It tames the phase-gradient noise (2 % phase noise: median NRMSE 76 % -> 30 % at
#: +-45 deg) for a few % more error on noise-free series (benchmarks/tomo.py).
DEFAULT_WINDOW = (0.5, 0.9)
#: The B_z method with the lowest median NRMSE in benchmarks/tomo.py.
DEFAULT_BZ_METHOD = "hybrid"


@functools.lru_cache(maxsize=32)
def _gridding(angles_deg: tuple[float, ...], size: int, axis: str):
    """Scatter indices [4, n_tilts * 2N] into the flattened (2N x 2N) (k_z, k_w) plane,
    bilinear weights [4, n_tilts * 2N] and the inverse accumulated weight [2N * 2N]."""
    sigma = 1.0 if axis == "x" else -1.0
    padded = 2 * size
    angles = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180.0
    k = torch.fft.fftfreq(padded, d=1.0 / padded, dtype=torch.float64)  # integer frequency index
    # w' = c w - sigma s z: the detector frequency k maps to (k_z, k_w) = (-sigma s k, c k).
    k_w = torch.cos(angles)[:, None] * k[None, :]
    k_z = -sigma * torch.sin(angles)[:, None] * k[None, :]
    z0, w0 = torch.floor(k_z), torch.floor(k_w)
    fz, fw = k_z - z0, k_w - w0
    indices, weights = [], []
    for dz, dw, weight in (
        (0, 0, (1 - fz) * (1 - fw)),
        (0, 1, (1 - fz) * fw),
        (1, 0, fz * (1 - fw)),
        (1, 1, fz * fw),
    ):
        zi = torch.remainder((z0 + dz).long(), padded)
        wi = torch.remainder((w0 + dw).long(), padded)
        indices.append((zi * padded + wi).reshape(-1))
        weights.append(weight.reshape(-1))
    indices_t, weights_t = torch.stack(indices), torch.stack(weights)
    total = torch.zeros(padded * padded, dtype=torch.float64)
    total.index_add_(0, indices_t.reshape(-1), weights_t.reshape(-1))
    inverse = torch.where(total > MIN_WEIGHT, 1.0 / total.clamp_min(MIN_WEIGHT), 0.0)
    return indices_t, weights_t, inverse


#: Neighbouring tilts further apart than this are a gap, not interpolated across.
MAX_INTERPOLATED_STEP_DEG = 10.0


def _angular_upsample(spectrum: torch.Tensor, angles: tuple[float, ...], size: int):
    """Insert spokes between neighbouring tilts by linear interpolation of their spectra.

    With 2N padding the outermost ring has radius N cells; a step of d radians leaves
    N d cells between spokes there, so each step is split into ceil(N d) parts and
    every Fourier cell of the sampled wedge receives a bilinear weight.
    ``spectrum`` [..., n_tilts, 2N] on the sorted ``angles``.
    """
    order = sorted(range(len(angles)), key=lambda i: angles[i])
    spectrum = spectrum[..., order, :]
    angles = tuple(angles[i] for i in order)
    parts, new_angles = [], []
    for i in range(len(angles) - 1):
        step = angles[i + 1] - angles[i]
        parts.append(spectrum[..., i : i + 1, :])
        new_angles.append(angles[i])
        if step <= 0 or step > MAX_INTERPOLATED_STEP_DEG:
            continue
        count = math.ceil(size * math.radians(step))
        for j in range(1, count):
            f = j / count
            parts.append(
                (1 - f) * spectrum[..., i : i + 1, :] + f * spectrum[..., i + 1 : i + 2, :]
            )
            new_angles.append(angles[i] + f * step)
    parts.append(spectrum[..., -1:, :])
    new_angles.append(angles[-1])
    return torch.cat(parts, dim=-2), tuple(new_angles)


def direct_fourier_reconstruction(
    projections: torch.Tensor, angles_deg, axis: str, voxel_size_nm: float
) -> torch.Tensor:
    """Scalar volume [N, N, N] from line integrals [n_tilts, N, N] (images [y, x]).

    Inverts :func:`lorentz_live.tomo.projector.project` (units: projection units / nm).
    """
    n_tilts, size, _ = projections.shape
    key = tuple(float(a) for a in torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1))
    if len(key) != n_tilts:
        raise ValueError(f"{n_tilts} projections but {len(key)} angles")
    padded = 2 * size
    centre = size // 2
    real = projections.dtype
    complex_dtype = torch.complex128 if real == torch.float64 else torch.complex64
    # detector profile across the tilt axis along the last dim: [carried, tilt, w']
    profiles = projections.permute(2, 0, 1) if axis == "x" else projections.permute(1, 0, 2)
    profiles = profiles / voxel_size_nm
    line = torch.zeros(size, n_tilts, padded, dtype=real, device=projections.device)
    line[..., :size] = profiles
    line = torch.roll(line, -centre, dims=-1)  # rotation axis at index 0
    spectrum = torch.fft.fft(line, dim=-1)
    spectrum, key = _angular_upsample(spectrum, key, size)
    indices, weights, inverse = _gridding(key, size, axis)
    spectrum = spectrum.reshape(size, -1)
    plane = torch.zeros(size, padded * padded, dtype=complex_dtype, device=projections.device)
    for corner in range(4):
        contribution = spectrum * weights[corner].to(device=projections.device, dtype=real)
        plane.index_add_(1, indices[corner].to(projections.device), contribution)
    plane = plane * inverse.to(device=projections.device, dtype=real)
    image = torch.fft.ifft2(plane.reshape(size, padded, padded)).real
    image = torch.roll(image, (centre, centre), dims=(-2, -1))[:, :size, :size]  # [carried, z, w]
    if axis == "x":  # [x, z, y] -> [z, y, x]
        return image.permute(1, 2, 0).contiguous()
    return image.permute(1, 0, 2).contiguous()  # [y, z, x] -> [z, y, x]


def bz_fourier(b_x: torch.Tensor, b_y: torch.Tensor) -> torch.Tensor:
    """B_z = -(k_x B_x + k_y B_y) / k_z on a periodic box; zero on the k_z = 0 plane."""
    kx, ky, kz = _wavevectors(tuple(b_x.shape[-3:]), b_x.device, b_x.dtype)
    numerator = -(
        kx * torch.fft.fftn(b_x, dim=(-3, -2, -1)) + ky * torch.fft.fftn(b_y, dim=(-3, -2, -1))
    )
    safe = torch.where(kz != 0, kz, 1.0)
    spectrum = torch.where(kz != 0, numerator / safe, 0.0)
    return torch.fft.ifftn(spectrum, dim=(-3, -2, -1)).real


def _lateral_divergence(b_x: torch.Tensor, b_y: torch.Tensor) -> torch.Tensor:
    """dB_x/dx + dB_y/dy per voxel, spectral in x and y (periodic laterally)."""
    kx, ky, _ = _wavevectors(tuple(b_x.shape[-3:]), b_x.device, b_x.dtype)
    spectrum = kx * torch.fft.fft2(b_x) + ky * torch.fft.fft2(b_y)
    return torch.fft.ifft2(2j * torch.pi * spectrum).real


def bz_real_space(b_x: torch.Tensor, b_y: torch.Tensor) -> torch.Tensor:
    """B_z from integrating -(dB_x/dx + dB_y/dy) along z from the vacuum faces of the box.

    B_z(z) = -int_{bottom}^{z} div_xy B dz' assumes B_z = 0 just below the box and
    B_z(z) = +int_{z}^{top} div_xy B dz' assumes it just above; the two are
    averaged (trapezoid rule in z, spectral derivatives in x and y, voxel units).
    """
    source = -_lateral_divergence(b_x, b_y)
    upward = torch.cumsum(source, dim=-3) - 0.5 * source
    downward = -(
        torch.flip(torch.cumsum(torch.flip(source, dims=(-3,)), dim=-3), dims=(-3,)) - 0.5 * source
    )
    return 0.5 * (upward + downward)


def bz_hybrid(b_x: torch.Tensor, b_y: torch.Tensor) -> torch.Tensor:
    """:func:`bz_fourier` for k_z != 0 and the z-average of :func:`bz_real_space` for k_z = 0."""
    spectrum = torch.fft.fft(bz_fourier(b_x, b_y), dim=-3)
    spectrum[..., 0, :, :] = torch.fft.fft(bz_real_space(b_x, b_y), dim=-3)[..., 0, :, :]
    return torch.fft.ifft(spectrum, dim=-3).real


BZ_FUNCTIONS = {"fourier": bz_fourier, "real-space": bz_real_space, "hybrid": bz_hybrid}


def lowpass(images: torch.Tensor, window: tuple[float, float] | None) -> torch.Tensor:
    """Radial Tukey low-pass of images [..., H, W]: 1 below ``window[0]`` x Nyquist,
    cosine taper to 0 at ``window[1]`` x Nyquist; ``None`` returns the images unchanged."""
    if window is None:
        return images
    flat, zero = window
    if not 0 < flat < zero:
        raise ValueError(f"window must satisfy 0 < flat < zero, got {window}")
    ky = torch.fft.fftfreq(images.shape[-2], device=images.device, dtype=images.dtype)[:, None]
    kx = torch.fft.fftfreq(images.shape[-1], device=images.device, dtype=images.dtype)[None, :]
    radius = torch.sqrt(kx**2 + ky**2) / 0.5
    taper = 0.5 * (1 + torch.cos(torch.pi * (radius - flat) / (zero - flat)))
    weight = torch.where(radius < flat, 1.0, torch.where(radius < zero, taper, 0.0))
    return torch.fft.ifft2(torch.fft.fft2(images) * weight).real


def vfet(
    phase_x: torch.Tensor,
    angles_x_deg,
    phase_y: torch.Tensor,
    angles_y_deg,
    pixel_size_nm: float,
    *,
    bz_method: str = DEFAULT_BZ_METHOD,
    window: tuple[float, float] | None = DEFAULT_WINDOW,
) -> torch.Tensor:
    """Conventional VFET: B (T) [3, N, N, N] = (B_x, B_y, B_z) on [z, y, x] from two tilt series.

    ``phase_x`` [n_x, N, N] and ``phase_y`` [n_y, N, N] are magnetic phases (rad) at
    the tilts ``angles_x_deg`` about x and ``angles_y_deg`` about y.  ``bz_method``
    is a key of :data:`BZ_FUNCTIONS`; ``window`` the low-pass of :func:`lowpass`.
    """
    if bz_method not in BZ_FUNCTIONS:
        raise ValueError(f"bz_method must be one of {tuple(BZ_FUNCTIONS)}, got {bz_method!r}")
    proj_bx = lowpass(induction_from_phase(phase_x, pixel_size_nm)[0], window)
    proj_by = lowpass(induction_from_phase(phase_y, pixel_size_nm)[1], window)
    b_x = direct_fourier_reconstruction(proj_bx, angles_x_deg, "x", pixel_size_nm)
    b_y = direct_fourier_reconstruction(proj_by, angles_y_deg, "y", pixel_size_nm)
    b_z = BZ_FUNCTIONS[bz_method](b_x, b_y)
    return torch.stack([b_x, b_y, b_z])
