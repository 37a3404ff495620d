"""Training and test examples for MagNet: texture -> tilt series -> VFET input, ground truth.

A library entry (:func:`lorentz_live.tomo.textures.library`) is turned once into its
ground-truth induction, material mask and full x and y tilt series (-90..+90 deg
in 5 deg steps, phases from mu0 M, so the stray field along the whole beam path
is included).  An example then cuts the series to a tilt limit, optionally adds
phase noise and runs VFET.  Pure functions; caching on disk is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.projector import tilt_phase
from lorentz_live.tomo.textures import generate_sample, library
from lorentz_live.tomo.vfet import vfet

#: Tilt step (deg) of every series, as in the paper.
TILT_STEP_DEG = 5.0
#: Full series from -90 to +90 deg.
FULL_ANGLES_DEG = tuple(float(a) for a in np.arange(-90.0, 90.0 + 1e-9, TILT_STEP_DEG))
#: Voxel size used for the synthetic library (B does not depend on it; phases do).
LIBRARY_VOXEL_NM = 5.0


@dataclass(frozen=True)
class Series:
    """Tilt series and ground truth of one sample: phases [37, N, N] (rad) about x and y at
    :data:`FULL_ANGLES_DEG`, induction (T) [3, N, N, N], mask [N, N, N], class name."""

    phase_x: torch.Tensor
    phase_y: torch.Tensor
    induction_t: torch.Tensor
    mask: torch.Tensor
    kind: str


def sample_series(kind: str, size: int, seed: int, relax_steps: int = 0) -> Series:
    """Full tilt series of library sample (``kind``, ``seed``) in a ``size``^3 box.

    ``relax_steps`` > 0: the texture is relaxed first
    (:func:`lorentz_live.tomo.textures.generate_sample`).
    """
    sample = generate_sample(
        kind, size, seed, dtype=torch.float64, relax_steps=relax_steps, voxel_nm=LIBRARY_VOXEL_NM
    )
    mu0_m = MU0_H_PER_M * sample.magnetisation_a_per_m
    phase_x = tilt_phase(mu0_m, FULL_ANGLES_DEG, "x", LIBRARY_VOXEL_NM)
    phase_y = tilt_phase(mu0_m, FULL_ANGLES_DEG, "y", LIBRARY_VOXEL_NM)
    return Series(phase_x.float(), phase_y.float(), sample.induction_t.float(), sample.mask, kind)


def build_series(
    count: int, size: int, seed: int, split: str, relax_steps: int = 0
) -> list[Series]:
    """:func:`sample_series` of every entry of a library split."""
    return [
        sample_series(kind, size, s, relax_steps) for s, kind in library(count, size, seed, split)
    ]


def limit_indices(limit_deg: float) -> list[int]:
    """Indices into :data:`FULL_ANGLES_DEG` of the tilts within +-``limit_deg``."""
    return [i for i, a in enumerate(FULL_ANGLES_DEG) if abs(a) <= limit_deg + 1e-9]


def add_phase_noise(phase: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of std ``level`` x max |phi| of the series (level 0.02 = "2 %")."""
    if level <= 0:
        return phase
    scale = level * phase.abs().amax()
    noise = torch.randn(phase.shape, generator=generator, dtype=phase.dtype)
    return phase + scale * noise


def vfet_input(
    series: Series, limit_deg: float, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """VFET result B_in (T) [3, N, N, N] from ``series`` cut to +-``limit_deg`` with ``noise``."""
    keep = limit_indices(limit_deg)
    angles = [FULL_ANGLES_DEG[i] for i in keep]
    phase_x = add_phase_noise(series.phase_x[keep], noise, generator)
    phase_y = add_phase_noise(series.phase_y[keep], noise, generator)
    return vfet(phase_x, angles, phase_y, angles, LIBRARY_VOXEL_NM)
