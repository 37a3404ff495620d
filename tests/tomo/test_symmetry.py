"""Symmetry transforms: B stays divergence-free and VFET commutes with the training set."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.fields import induction_from_magnetisation, nrmse, solenoidal_part
from lorentz_live.tomo.projector import tilt_phase
from lorentz_live.tomo.symmetry import (
    COUNT,
    TRAINING,
    inverse,
    transform_field,
    transform_scalar,
)
from lorentz_live.tomo.textures import generate_sample
from lorentz_live.tomo.vfet import vfet

ANGLES = [float(a) for a in range(-45, 46, 5)]


def _vfet(magnetisation: torch.Tensor) -> torch.Tensor:
    mu0_m = MU0_H_PER_M * magnetisation
    phase_x = tilt_phase(mu0_m, ANGLES, "x", 5.0)
    phase_y = tilt_phase(mu0_m, ANGLES, "y", 5.0)
    return vfet(phase_x, ANGLES, phase_y, ANGLES, 5.0)


@pytest.mark.parametrize("index", range(COUNT))
def test_transforms_commute_with_b_from_m(index: int) -> None:
    # B of the transformed M = transformed B: checks the axial-vector signs of every transform
    sample = generate_sample("hopfion", 16, 2, dtype=torch.float64)
    moved = transform_field(sample.magnetisation_a_per_m, index)
    mask = transform_scalar(sample.mask, index)
    expected = transform_field(sample.induction_t, index)
    assert nrmse(induction_from_magnetisation(moved), expected, mask) < 1e-3
    wrong = expected.clone()
    wrong[0] = -wrong[0]
    if index:
        assert nrmse(induction_from_magnetisation(moved), wrong, mask) > 0.05


@pytest.mark.parametrize("index", TRAINING)
def test_vfet_commutes_with_the_training_transforms(index: int) -> None:
    sample = generate_sample("skyrmion_tube", 32, 3, dtype=torch.float64)
    direct = _vfet(transform_field(sample.magnetisation_a_per_m, index))
    moved = transform_field(_vfet(sample.magnetisation_a_per_m), index)
    mask = transform_scalar(sample.mask, index)
    # measured: < 0.15 % inside the material, < 2.5 % of the box's norm
    assert nrmse(moved, direct, mask) < 0.005
    assert (moved - direct).norm() < 0.05 * direct.norm()


def test_transformed_fields_stay_divergence_free() -> None:
    generator = torch.Generator().manual_seed(0)
    field = solenoidal_part(torch.randn((3, 8, 8, 8), generator=generator, dtype=torch.float64))
    for index in range(COUNT):
        moved = transform_field(field, index)
        assert (solenoidal_part(moved) - moved).abs().max() < 1e-10


def test_unknown_transform_is_refused() -> None:
    with pytest.raises(ValueError, match="transform index"):
        transform_field(torch.zeros((3, 4, 4, 4)), COUNT)


@pytest.mark.parametrize("index", range(COUNT))
def test_inverse_undoes_each_transform(index: int) -> None:
    field = torch.randn((3, 6, 7, 7), generator=torch.Generator().manual_seed(index))
    there = transform_field(field, index)
    torch.testing.assert_close(transform_field(there, inverse(index)), field, rtol=0, atol=0)
