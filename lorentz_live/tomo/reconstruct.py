"""3D reconstruction of a pair of tilt series: VFET, then MagNet, then data-consistency
refinement (:func:`lorentz_live.tomo.refine.plan_for` unless told)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lorentz_live.tomo.magnet import load_model, magnet
from lorentz_live.tomo.refine import refine
from lorentz_live.tomo.vfet import vfet

#: Largest tomogram edge, voxels: larger images are averaged down by an integer factor
#: (VFET's Fourier planes grow as (2N)^2 N: 512 px would need several GB).
MAX_SIZE = 128


@dataclass(frozen=True)
class TomoResult:
    """MagNet result ``b`` and conventional ``b_vfet``, both (T) [3, N, N, N] = (B_x, B_y, B_z)
    on [z, y, x], on voxels of ``voxel_size_nm``."""

    b: torch.Tensor
    b_vfet: torch.Tensor
    voxel_size_nm: float


def bin_images(phase: torch.Tensor, pixel_size_nm: float, max_size: int = MAX_SIZE):
    """(phases [n, M, M], pixel size (nm)) averaged down by the smallest integer factor that
    brings the edge to at most ``max_size``."""
    factor = max(1, -(-phase.shape[-1] // max_size))
    if factor == 1:
        return phase, pixel_size_nm
    return torch.nn.functional.avg_pool2d(phase[None], factor)[0], pixel_size_nm * factor


def reconstruct_tilt_series(
    phase_x: torch.Tensor,
    angles_x_deg,
    phase_y: torch.Tensor,
    angles_y_deg,
    pixel_size_nm: float,
    *,
    model=None,
    refine_iterations: int | None = None,
) -> TomoResult:
    """Reconstruct B from phases (rad) [n_x, N, N] about x and [n_y, N, N] about y.

    Images above :data:`MAX_SIZE` pixels are binned first (see :func:`bin_images`).

    ``model`` is (UNet3D, box size) from :func:`lorentz_live.tomo.magnet.load_model`
    (default: the shipped weights).  ``refine_iterations`` steps of the
    data-consistency refinement of :mod:`lorentz_live.tomo.refine` follow MagNet
    (0: none; None: :func:`lorentz_live.tomo.refine.plan_for`, 150 steps, 20 on
    noisy phases).
    """
    phase_x, voxel_nm = bin_images(torch.as_tensor(phase_x, dtype=torch.float32), pixel_size_nm)
    phase_y, _ = bin_images(torch.as_tensor(phase_y, dtype=torch.float32), pixel_size_nm)
    b_vfet = vfet(phase_x, angles_x_deg, phase_y, angles_y_deg, voxel_nm)
    network, size = model if model is not None else load_model()
    b = magnet(b_vfet, network, size)
    if refine_iterations is None or refine_iterations > 0:
        series = [(phase_x, list(angles_x_deg), "x"), (phase_y, list(angles_y_deg), "y")]
        b = refine(b, series, voxel_nm, refine_iterations)
    return TomoResult(b, b_vfet, voxel_nm)
