"""B from M with stray field, divergence, the NRMSE metric."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.fields import (
    induction_from_magnetisation,
    nrmse,
    solenoidal_part,
    spectral_divergence,
)


def test_uniformly_magnetised_sphere_has_b_two_thirds_mu0_m_inside() -> None:
    size = 32
    axis = torch.arange(size, dtype=torch.float64) - size // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    sphere = (x**2 + y**2 + z**2) <= 7.5**2
    magnetisation = torch.zeros((3, size, size, size), dtype=torch.float64)
    magnetisation[2] = 1e6 * sphere
    b = induction_from_magnetisation(magnetisation, padding_factor=2)
    core = (x**2 + y**2 + z**2) <= 3**2
    expected = 2.0 / 3.0 * MU0_H_PER_M * 1e6
    assert b[2][core].mean().item() == pytest.approx(expected, rel=0.04)
    assert b[0][core].abs().max().item() < 0.04 * expected  # staircase of the voxel sphere
    # outside along the axis the dipole field points along M, beside it against M
    assert b[2][size // 2 + 11, size // 2, size // 2] > 0
    assert b[2][size // 2, size // 2, size // 2 + 11] < 0


def test_padding_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="padding"):
        induction_from_magnetisation(torch.zeros((3, 4, 4, 4)), padding_factor=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solenoidal_part_is_divergence_free_and_idempotent(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    field = torch.randn((3, 12, 10, 14), generator=generator, dtype=torch.float64)
    projected = solenoidal_part(field)
    assert spectral_divergence(projected).abs().max() < 1e-10
    assert spectral_divergence(field).abs().max() > 0.1
    torch.testing.assert_close(solenoidal_part(projected), projected)


def test_nrmse_is_the_papers_eq3_inside_the_mask() -> None:
    truth = torch.zeros((3, 4, 4, 4))
    truth[0, 1:3, 1:3, 1:3] = 2.0
    mask = torch.zeros((4, 4, 4), dtype=torch.bool)
    mask[1:3, 1:3, 1:3] = True
    estimate = truth.clone()
    estimate[0, 1, 1, 1] = 1.0  # one of 8 material voxels off by 1, max |B|^2 = 4
    assert nrmse(estimate, truth, mask).item() == pytest.approx((1 / (8 * 4)) ** 0.5)
    estimate[1, 0, 0, 0] = 100.0  # outside the material: ignored
    assert nrmse(estimate, truth, mask).item() == pytest.approx((1 / (8 * 4)) ** 0.5)
