"""Micromagnetic energy terms and relaxation (lorentz_live.tomo.micromagnetics)."""

from __future__ import annotations

import math

import pytest
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.micromagnetics import MagneticMaterial, energy_terms, relax

A = 1.0e-11  # J/m
D = 3.0e-3  # J/m^2
CELL_NM = 2.0


def _helix_along_x(count: int, step_rad: float) -> tuple[torch.Tensor, torch.Tensor]:
    """m rotating from +y toward +z by ``step_rad`` per cell along x (right-handed for > 0)."""
    x = torch.arange(count, dtype=torch.float64)
    m = torch.stack([0 * x, torch.cos(step_rad * x), torch.sin(step_rad * x)])[:, None, None, :]
    return m, torch.ones(1, 1, count, dtype=torch.bool)


def _cycloid_along_x(count: int, step_rad: float) -> tuple[torch.Tensor, torch.Tensor]:
    """m rotating in the x-z plane: (sin, 0, cos) of ``step_rad`` per cell along x."""
    x = torch.arange(count, dtype=torch.float64)
    m = torch.stack([torch.sin(step_rad * x), 0 * x, torch.cos(step_rad * x)])[:, None, None, :]
    return m, torch.ones(1, 1, count, dtype=torch.bool)


@pytest.mark.parametrize("step", [0.1, -0.3])
def test_exchange_and_dmi_energies_of_spirals_match_their_discrete_formulas(step: float) -> None:
    count, d = 20, CELL_NM * 1e-9
    pairs = count - 1
    material = MagneticMaterial(
        ms_a_per_m=5e5, exchange_j_per_m=A, dmi_bulk_j_per_m2=D, dmi_interfacial_j_per_m2=D,
        demag=False,
    )  # fmt: skip
    helix = energy_terms(*_helix_along_x(count, step), material, CELL_NM)
    assert float(helix["exchange"]) == pytest.approx(A * d * pairs * 2 * (1 - math.cos(step)))
    # D m . curl m = -D q for this helix: a right-handed one (step > 0) lowers the energy
    assert float(helix["dmi_bulk"]) == pytest.approx(-D * d**2 * pairs * math.sin(step))
    assert float(helix["dmi_interfacial"]) == pytest.approx(0.0, abs=1e-30)
    cycloid = energy_terms(*_cycloid_along_x(count, step), material, CELL_NM)
    # D [m_z div m - (m . grad) m_z] = +D q for this cycloid
    assert float(cycloid["dmi_interfacial"]) == pytest.approx(D * d**2 * pairs * math.sin(step))
    assert float(cycloid["dmi_bulk"]) == pytest.approx(0.0, abs=1e-30)


@pytest.mark.parametrize("start_fraction", [0.5, 1.6])
def test_relaxed_bulk_dmi_helix_takes_the_period_set_by_a_and_d(start_fraction: float) -> None:
    material = MagneticMaterial(
        ms_a_per_m=5e5, exchange_j_per_m=A, dmi_bulk_j_per_m2=D, demag=False
    )
    optimum = math.atan(D * CELL_NM * 1e-9 / (2 * A))  # -> period 4 pi A / D for small cells
    count = 32
    result = relax(*_helix_along_x(count, start_fraction * optimum), material, CELL_NM, steps=800)
    m = result.magnetisation[:, 0, 0, :]
    angle = torch.atan2(m[2], m[1])
    steps = torch.remainder(angle[1:] - angle[:-1] + math.pi, 2 * math.pi) - math.pi
    middle = steps[count // 4 : 3 * count // 4]
    assert float(middle.mean()) == pytest.approx(optimum, rel=0.02)  # right-handed, > 0
    assert result.energy_j[-1] < result.energy_j[0]


def _demag_factor(mask: torch.Tensor, component: int) -> float:
    ms = 4e5
    m = torch.zeros(3, *mask.shape, dtype=torch.float64)
    m[component] = 1.0
    energy = energy_terms(m * mask, mask, MagneticMaterial(ms_a_per_m=ms), 5.0)["demag"]
    volume = float(mask.sum()) * (5e-9) ** 3
    return float(energy) / (0.5 * MU0_H_PER_M * ms**2 * volume)


def test_demagnetising_factors_of_a_cube_are_one_third_and_a_film_prefers_in_plane() -> None:
    cube = torch.zeros(12, 12, 12, dtype=torch.bool)
    cube[3:9, 3:9, 3:9] = True
    for component in range(3):
        assert _demag_factor(cube, component) == pytest.approx(1.0 / 3.0, rel=1e-6)
    film = torch.zeros(4, 32, 32, dtype=torch.bool)
    film[1:3, 2:30, 2:30] = True
    n_x, n_y, n_z = (_demag_factor(film, c) for c in range(3))
    assert n_x == pytest.approx(n_y, rel=1e-6)
    assert n_x + n_y + n_z == pytest.approx(1.0, rel=1e-6)
    assert n_z > 0.6  # shape anisotropy of a thin film
    assert n_x < 0.2


def test_zeeman_and_anisotropy_pull_the_magnetisation_along_field_and_axis() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(4, 4, 4, dtype=torch.bool)
    start = torch.randn(3, 4, 4, 4, generator=gen, dtype=torch.float64)
    field = MagneticMaterial(ms_a_per_m=4e5, field_a_per_m=(4e6, 0.0, 0.0), demag=False)
    aligned = relax(start, mask, field, 5.0, steps=150, learning_rate=0.05).magnetisation
    assert float(aligned[0].min()) > 0.99
    easy_y = MagneticMaterial(
        ms_a_per_m=4e5, anisotropy_j_per_m3=1e6, anisotropy_axis=(0.0, 1.0, 0.0), demag=False
    )
    tilted = torch.zeros(3, 4, 4, 4, dtype=torch.float64)
    tilted[0], tilted[1] = math.sin(1.2), math.cos(1.2)  # 69 deg from the easy axis
    along = relax(tilted, mask, easy_y, 5.0, steps=150, learning_rate=0.05).magnetisation
    assert float(along[1].min()) > 0.99


def test_relaxing_a_vortex_disc_lowers_its_energy_and_keeps_circulation_and_polarity() -> None:
    size = 16
    axis = torch.arange(size, dtype=torch.float64) - size / 2 + 0.5
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    rho, psi = torch.sqrt(x**2 + y**2), torch.atan2(y, x)
    mask = (rho < 7) & (z.abs() < 3)
    m_z = torch.where(rho < 2.0, (4.0 - rho**2) / (4.0 + rho**2), 0.0)  # Usov core, p = +1
    in_plane = torch.sqrt(1 - m_z**2)
    m = torch.stack([-in_plane * torch.sin(psi), in_plane * torch.cos(psi), m_z]) * mask
    material = MagneticMaterial(ms_a_per_m=8e5, exchange_j_per_m=1.3e-11)
    result = relax(m, mask, material, 5.0, steps=60)
    relaxed = result.magnetisation
    assert result.energy_j[-1] < 0.97 * result.energy_j[0]
    norms = torch.linalg.vector_norm(relaxed, dim=0)
    assert torch.allclose(norms[mask], torch.ones(()).double(), atol=1e-9)
    assert float(norms[~mask].abs().max()) == 0.0
    circulation = (-relaxed[0] * torch.sin(psi) + relaxed[1] * torch.cos(psi))[mask].mean()
    assert float(circulation) > 0.9
    assert float(relaxed[2][mask & (rho < 1.0)].mean()) > 0.8


def test_bad_material_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="ms_a_per_m"):
        MagneticMaterial(ms_a_per_m=0.0)
    with pytest.raises(ValueError, match="anisotropy_axis"):
        MagneticMaterial(ms_a_per_m=1e5, anisotropy_axis=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="m must be"):
        energy_terms(
            torch.zeros(3, 4, 4, 4), torch.ones(4, 4, 5, dtype=torch.bool),
            MagneticMaterial(ms_a_per_m=1e5), 5.0,
        )  # fmt: skip
    with pytest.raises(ValueError, match="steps"):
        relax(torch.zeros(3, 2, 2, 2), torch.ones(2, 2, 2), MagneticMaterial(ms_a_per_m=1e5), 5.0,
              steps=-1)  # fmt: skip


def test_relaxed_library_sample_has_lower_energy_same_ms_and_is_reproducible() -> None:
    from lorentz_live.tomo.textures import generate_sample

    analytic = generate_sample("skyrmion_tube", 16, 7, dtype=torch.float64)
    relaxed = generate_sample("skyrmion_tube", 16, 7, dtype=torch.float64, relax_steps=15)
    again = generate_sample("skyrmion_tube", 16, 7, dtype=torch.float64, relax_steps=15)
    assert torch.equal(relaxed.magnetisation_a_per_m, again.magnetisation_a_per_m)
    mask = analytic.mask
    ms = torch.linalg.vector_norm(analytic.magnetisation_a_per_m, dim=0)[mask]
    relaxed_ms = torch.linalg.vector_norm(relaxed.magnetisation_a_per_m, dim=0)[mask]
    assert torch.allclose(relaxed_ms, ms, rtol=1e-6)
    m0 = analytic.magnetisation_a_per_m / ms.max()
    m1 = relaxed.magnetisation_a_per_m / ms.max()
    material = relaxed.relaxed_in
    assert analytic.relaxed_in is None and material is not None
    assert material.ms_a_per_m == pytest.approx(float(ms.max()))
    assert material.dmi_bulk_j_per_m2 != 0.0  # a chiral class gets DMI of its own handedness
    assert float(energy_terms(m0, mask, material, 5.0)["dmi_bulk"]) < 0.0
    energy = lambda m: float(sum(energy_terms(m, mask, material, 5.0).values()))  # noqa: E731
    assert energy(m1) < energy(m0)
