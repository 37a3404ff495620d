"""Micromagnetic energy of a magnetisation on a voxel grid, and its descent to a nearby minimum.

Relaxes the analytic textures of :mod:`lorentz_live.tomo.textures` so that wall and
core profiles follow a material instead of an ansatz.  Arrays as in
:mod:`lorentz_live.tomo.fields`: the unit magnetisation m [3, Z, Y, X] holds
(m_x, m_y, m_z) on [z, y, x]; m = 0 outside the material mask.

Discretisation on cubic cells of side d, summing over every pair of face
neighbours i -> j = i + e_a (a = x, y, z) with both cells in the material, so
surfaces are free:

* exchange, A |grad m|^2:                     A d sum |m_j - m_i|^2
* bulk DMI, D m . (curl m):                   -D d^2 sum e_a . (m_i x m_j)
  (a helix turns right-handed for D > 0; period 2 pi d / atan(D d / 2A) -> 4 pi A / D)
* interfacial DMI, D [m_z div m - (m . grad) m_z] (interface normal +z):
                                              D d^2 sum (z x e_a) . (m_i x m_j)
* uniaxial anisotropy:                        -K_u d^3 sum (m . u)^2
* Zeeman:                                     -mu0 Ms d^3 sum m . H
* demagnetising field:                        -(mu0 / 2) Ms^2 d^3 sum m . h_d, with
  h_d = H_d / Ms from the solenoidal projection in a box zero-padded 2x
  (:func:`lorentz_live.tomo.fields.induction_from_magnetisation`), whose k = 0
  term (mean H = 0 in the periodic box) is replaced by that of an isolated body
  seen from afar, -<m>/3, so the demagnetising factors of any uniformly
  magnetised body sum to 1 (a cube: 1/3 each).

Energies in joules, fields in A/m, lengths in nm in the public API.  The
registry's PyTorch solvers were tried first: magnum.np 2.2.0 sets torch's global
default dtype (float64), device and seed when imported, and both it and
NeuralMag 1.0.0 import pyvista (vtk) at module level, so neither can live inside
the engine's process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.fields import induction_from_magnetisation

NM = 1e-9
#: Zero-padding factor per axis of the demagnetising-field box (that of the ground-truth B).
PADDING = 2


@dataclass(frozen=True)
class MagneticMaterial:
    """Micromagnetic constants (SI).

    ms_a_per_m : saturation magnetisation Ms, A/m.
    exchange_j_per_m : exchange stiffness A, J/m.
    dmi_bulk_j_per_m2 : bulk (Bloch) DMI constant D, J/m^2.
    dmi_interfacial_j_per_m2 : interfacial (Neel, normal +z) DMI constant, J/m^2.
    anisotropy_j_per_m3 : uniaxial anisotropy K_u (> 0: easy axis), J/m^3.
    anisotropy_axis : its axis (x, y, z), normalised here.
    field_a_per_m : applied field H (x, y, z), A/m.
    demag : include the demagnetising field.
    """

    ms_a_per_m: float
    exchange_j_per_m: float = 1.0e-11
    dmi_bulk_j_per_m2: float = 0.0
    dmi_interfacial_j_per_m2: float = 0.0
    anisotropy_j_per_m3: float = 0.0
    anisotropy_axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    field_a_per_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    demag: bool = True

    def __post_init__(self) -> None:
        if not self.ms_a_per_m > 0:
            raise ValueError(f"ms_a_per_m must be > 0, got {self.ms_a_per_m}")
        if self.exchange_j_per_m < 0:
            raise ValueError(f"exchange_j_per_m must be >= 0, got {self.exchange_j_per_m}")
        if sum(c * c for c in self.anisotropy_axis) == 0:
            raise ValueError("anisotropy_axis must not be zero")


def _neighbour_pairs(m: torch.Tensor, mask: torch.Tensor):
    """(axis component, m_i, m_j) for face neighbours along x, y, z, zeroed unless both inside."""
    for component, dim in ((0, -1), (1, -2), (2, -3)):
        size = m.shape[dim]
        both = mask.narrow(dim, 0, size - 1) & mask.narrow(dim, 1, size - 1)
        m_i = m.narrow(dim, 0, size - 1) * both
        m_j = m.narrow(dim, 1, size - 1) * both
        yield component, m_i, m_j


def energy_terms(
    m: torch.Tensor, mask: torch.Tensor, material: MagneticMaterial, cell_nm: float
) -> dict[str, torch.Tensor]:
    """Energy (J) of each term for unit magnetisation ``m`` [3, Z, Y, X] on cubes of ``cell_nm``.

    ``mask`` [Z, Y, X] (bool) marks the material; ``m`` is used only there.
    Keys: exchange, dmi_bulk, dmi_interfacial, anisotropy, zeeman, demag.
    """
    if m.shape[0] != 3 or m.shape[1:] != mask.shape:
        raise ValueError(
            f"m must be [3, *mask.shape], got {tuple(m.shape)} and {tuple(mask.shape)}"
        )
    d = cell_nm * NM
    inside = mask.to(torch.bool)
    m = m * inside
    zero = m.new_zeros(())
    exchange, bulk, interfacial = zero, zero, zero
    for component, m_i, m_j in _neighbour_pairs(m, inside):
        exchange = exchange + ((m_j - m_i) ** 2).sum()
        if material.dmi_bulk_j_per_m2 or material.dmi_interfacial_j_per_m2:
            cross = torch.linalg.cross(m_i, m_j, dim=0)
            bulk = bulk + cross[component].sum()
            if component == 0:  # z x e_x = +e_y
                interfacial = interfacial + cross[1].sum()
            elif component == 1:  # z x e_y = -e_x
                interfacial = interfacial - cross[0].sum()
    axis = torch.tensor(material.anisotropy_axis, dtype=m.dtype, device=m.device)
    axis = axis / torch.linalg.vector_norm(axis)
    field = torch.tensor(material.field_a_per_m, dtype=m.dtype, device=m.device)
    along_axis = torch.einsum("c...,c->...", m, axis)
    volume = d**3
    ms = material.ms_a_per_m
    terms = {
        "exchange": material.exchange_j_per_m * d * exchange,
        "dmi_bulk": -material.dmi_bulk_j_per_m2 * d**2 * bulk,
        "dmi_interfacial": material.dmi_interfacial_j_per_m2 * d**2 * interfacial,
        "anisotropy": -material.anisotropy_j_per_m3 * volume * (along_axis**2 * inside).sum(),
        "zeeman": -MU0_H_PER_M * ms * volume * torch.einsum("c...,c->", m, field),
        "demag": zero,
    }
    if material.demag:
        h_d = (
            induction_from_magnetisation(m, padding_factor=PADDING) / MU0_H_PER_M - m
        )  # H_d / Ms (m in units of Ms)
        padded_mean = m.sum(dim=(-3, -2, -1), keepdim=True) / (PADDING**3 * mask.numel())
        h_d = h_d - padded_mean / 3.0
        terms["demag"] = -0.5 * MU0_H_PER_M * ms**2 * volume * (m * h_d).sum()
    return terms


def total_energy(
    m: torch.Tensor, mask: torch.Tensor, material: MagneticMaterial, cell_nm: float
) -> torch.Tensor:
    """Sum of :func:`energy_terms`, J."""
    return sum(energy_terms(m, mask, material, cell_nm).values(), m.new_zeros(()))


@dataclass(frozen=True)
class Relaxation:
    """Result of :func:`relax`: unit magnetisation [3, Z, Y, X] (0 outside the mask) and the
    total energy (J) before the first step and after every step."""

    magnetisation: torch.Tensor
    energy_j: list[float]


def _unit(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return v / torch.clamp(torch.linalg.vector_norm(v, dim=0, keepdim=True), min=1e-12) * mask


def relax(
    m: torch.Tensor,
    mask: torch.Tensor,
    material: MagneticMaterial,
    cell_nm: float,
    *,
    steps: int = 200,
    learning_rate: float = 0.02,
) -> Relaxation:
    """Descend the micromagnetic energy from ``m`` [3, Z, Y, X] for ``steps`` Adam steps.

    The unit-length constraint is kept by optimising an unnormalised field v with
    m = v / |v|; deterministic (no random numbers).  A few hundred steps reach a
    nearby local minimum (the state keeps its topology unless it is unstable in
    ``material``); it is not an LLG time evolution.  ``learning_rate`` is the
    largest change of a direction per step, roughly in rad.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    inside = mask.to(torch.bool)
    work_dtype = torch.float64
    v = _unit(m.detach().to(work_dtype), inside).clone().requires_grad_(True)
    scale = 0.5 * MU0_H_PER_M * material.ms_a_per_m**2 * (cell_nm * NM) ** 3  # K_m d^3, J
    optimiser = torch.optim.Adam([v], lr=learning_rate)
    energies = []
    for _ in range(steps):
        optimiser.zero_grad()
        energy = total_energy(_unit(v, inside), inside, material, cell_nm)
        energies.append(float(energy.detach()))
        (energy / scale).backward()
        optimiser.step()
    with torch.no_grad():
        final = _unit(v, inside)
        energies.append(float(total_energy(final, inside, material, cell_nm)))
    return Relaxation(final.to(m.dtype), energies)
