"""Non-magnetic parts of the exit wave: amplitude and electrostatic phase.

Following SIPRAD eq. 6 the amplitude is absorption only, a = exp(-t / xi0), and
the electrostatic phase is phi_e = sigma V0 t (eq. 3 with a uniform mean inner
potential V0; sigma the relativistic interaction constant).  Thickness maps are
in nm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lorentz_live.errors import InputError
from lorentz_live.physics.constants import NM
from lorentz_live.physics.magnetic_phase import magnetic_phase_from_moment
from lorentz_live.physics.microscope import interaction_constant_rad_per_v_m


@dataclass(frozen=True)
class Material:
    """Electron-optical constants of a (non-)magnetic material.

    mean_inner_potential_v : V0, volts.  absorption_length_nm : xi0, nm.
    Defaults are typical of amorphous carbon/hydrocarbon contamination.
    """

    mean_inner_potential_v: float = 10.0
    absorption_length_nm: float = 100.0


def amplitude_from_thickness(thickness_nm: torch.Tensor, material: Material) -> torch.Tensor:
    """a = exp(-t / xi0), dimensionless, t in nm."""
    return torch.exp(-thickness_nm / material.absorption_length_nm)


def electrostatic_phase(thickness_nm: torch.Tensor, material: Material, kv: float) -> torch.Tensor:
    """phi_e = sigma(kV) * V0 * t in rad, t in nm."""
    return (
        interaction_constant_rad_per_v_m(kv) * material.mean_inner_potential_v * thickness_nm * NM
    )


def contaminant_thickness(
    shape: tuple[int, int],
    pixel_size_nm: float,
    *,
    count: int = 6,
    radius_nm: tuple[float, float] = (20.0, 60.0),
    height_nm: float = 40.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Thickness map (nm) [H, W] of ``count`` lens-shaped surface particles.

    Each particle is a spherical cap of random radius in ``radius_nm`` and peak
    height ``height_nm``, at a uniformly random (periodic) position.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    y = torch.arange(height, dtype=dtype)[:, None] * pixel_size_nm
    x = torch.arange(width, dtype=dtype)[None, :] * pixel_size_nm
    thickness = torch.zeros(shape, dtype=dtype)
    size_y, size_x = height * pixel_size_nm, width * pixel_size_nm
    for _ in range(count):
        cy, cx = rng.uniform(0, size_y), rng.uniform(0, size_x)
        radius = rng.uniform(*radius_nm)
        dy = torch.remainder(y - cy + size_y / 2, size_y) - size_y / 2
        dx = torch.remainder(x - cx + size_x / 2, size_x) - size_x / 2
        r_sq = (dy**2 + dx**2) / radius**2
        thickness = torch.maximum(
            thickness, height_nm * torch.sqrt(torch.clamp(1.0 - r_sq, min=0.0))
        )
    return thickness


@dataclass(frozen=True)
class Specimen:
    """Exit-wave ingredients of a sample, arrays [H, W].

    phase_m, phase_e : magnetic and electrostatic phase, rad.
    amplitude : dimensionless (``None`` = uniform 1).  pixel_size_nm : nm.
    """

    phase_m: torch.Tensor
    phase_e: torch.Tensor | None
    amplitude: torch.Tensor | None
    pixel_size_nm: float

    @property
    def phase(self) -> torch.Tensor:
        """Total phase phi_m + phi_e, rad."""
        return self.phase_m if self.phase_e is None else self.phase_m + self.phase_e


def specimen_from_magnetisation(
    values: np.ndarray,
    cell_size_m: tuple[float, float, float],
    *,
    kv: float,
    ms_a_per_m: float | None = None,
    material: Material | None = None,
) -> Specimen:
    """Specimen seen at normal incidence from a micromagnetic state.

    ``values`` [z, y, x, 3]: magnetisation in A/m if ``ms_a_per_m`` is None,
    otherwise unit vectors scaled by ``ms_a_per_m``; empty cells are zero.
    ``cell_size_m`` (dz, dy, dx), with dy == dx.  Where the sample is patterned
    (some columns thinner than others), the thickness map gives the amplitude
    exp(-t / xi0) and phi_e = sigma V0 t of ``material``; a uniform slab gives
    a constant phi_e, which carries no contrast and is omitted.
    """
    dz, dy, dx = cell_size_m
    if not np.isclose(dy, dx, rtol=1e-6):
        raise InputError(f"cells must be square in x-y for imaging, got dy={dy:g} m, dx={dx:g} m")
    magnetisation = np.asarray(values, dtype=np.float64)
    if ms_a_per_m is not None:
        magnetisation = magnetisation * ms_a_per_m
    moment = torch.from_numpy(magnetisation.sum(axis=0) * dz).to(torch.float32)  # A, [y, x, 3]
    pixel_size_nm = dx / NM
    phase_m = magnetic_phase_from_moment(moment[..., 0], moment[..., 1], pixel_size_nm)
    filled = np.linalg.norm(magnetisation, axis=-1) > 0
    thickness_nm = torch.from_numpy(filled.sum(axis=0) * dz / NM).to(torch.float32)
    if bool((thickness_nm == thickness_nm.max()).all()):
        return Specimen(phase_m, None, None, pixel_size_nm)
    material = material or Material()
    return Specimen(
        phase_m,
        electrostatic_phase(thickness_nm, material, kv),
        amplitude_from_thickness(thickness_nm, material),
        pixel_size_nm,
    )
