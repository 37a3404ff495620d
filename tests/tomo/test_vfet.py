"""Conventional VFET: direct Fourier reconstruction, B_z from div B = 0, full-series recovery."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.tomo.dataset import (
    FULL_ANGLES_DEG,
    LIBRARY_VOXEL_NM,
    limit_indices,
    sample_series,
)
from lorentz_live.tomo.fields import nrmse, spectral_divergence
from lorentz_live.tomo.projector import project
from lorentz_live.tomo.vfet import (
    BZ_FUNCTIONS,
    bz_fourier,
    bz_hybrid,
    bz_real_space,
    direct_fourier_reconstruction,
    lowpass,
    vfet,
)


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("offset", [(3.0, -2.0, 4.0), (-5.0, 1.0, 0.0), (0.0, 4.0, -3.0)])
def test_direct_fourier_reconstruction_inverts_a_complete_series(axis, offset) -> None:
    size = 24
    axis_values = torch.arange(size, dtype=torch.float64) - size // 2
    z, y, x = torch.meshgrid(axis_values, axis_values, axis_values, indexing="ij")
    dz, dy, dx = offset
    volume = torch.exp(-((x - dx) ** 2 + (y - dy) ** 2 + (z - dz) ** 2) / 8.0)
    projections = project(volume, FULL_ANGLES_DEG, axis, 5.0)
    result = direct_fourier_reconstruction(projections, FULL_ANGLES_DEG, axis, 5.0)
    assert ((result - volume).norm() / volume.norm()).item() < 0.08  # measured 4-6.5 %


def test_missing_wedge_degrades_the_reconstruction() -> None:
    series = sample_series("skyrmion_tube", 24, 3)
    errors = []
    for limit in (90, 45):
        keep = limit_indices(limit)
        angles = [FULL_ANGLES_DEG[i] for i in keep]
        b = vfet(series.phase_x[keep], angles, series.phase_y[keep], angles, LIBRARY_VOXEL_NM)
        errors.append(nrmse(b, series.induction_t, series.mask).item())
    assert errors[1] > errors[0] + 0.05


@pytest.mark.parametrize(("kind", "seed"), [("neel_vortex", 0), ("neel_vortex", 1), ("hopfion", 2)])
def test_vfet_of_a_complete_noise_free_series_recovers_b(kind: str, seed: int) -> None:
    series = sample_series(kind, 24, seed)
    b = vfet(
        series.phase_x,
        FULL_ANGLES_DEG,
        series.phase_y,
        FULL_ANGLES_DEG,
        LIBRARY_VOXEL_NM,
        window=None,
    )
    assert nrmse(b, series.induction_t, series.mask).item() < 0.10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hybrid_bz_beats_the_fourier_form_on_skyrmion_tubes(seed: int) -> None:
    # B_z = -(k_x B_x + k_y B_y) / k_z is undefined on k_z = 0, the z-average of B_z
    # that carries a tube's core field; the real-space integral supplies it.
    series = sample_series("skyrmion_tube", 24, seed)
    b, mask = series.induction_t.double(), series.mask
    errors = {
        name: nrmse(torch.stack([b[0], b[1], f(b[0], b[1])]), b, mask).item()
        for name, f in BZ_FUNCTIONS.items()
    }
    assert errors["fourier"] > 0.12
    assert errors["hybrid"] < 0.6 * errors["fourier"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bz_makes_the_field_divergence_free(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    # odd size: no Nyquist plane (treated like k = 0 there, see fields._frequencies)
    b_x, b_y = torch.randn((2, 15, 15, 15), generator=generator, dtype=torch.float64)
    lateral = spectral_divergence(torch.stack([b_x, b_y, torch.zeros_like(b_x)]))
    # only the z-average of div_xy B is beyond reach (flux through the top and bottom faces)
    leftover = lateral.mean(dim=0, keepdim=True).expand_as(lateral)
    for function in (bz_fourier, bz_hybrid):
        field = torch.stack([b_x, b_y, function(b_x, b_y)])
        torch.testing.assert_close(spectral_divergence(field), leftover)
    # real space: B_z[k] - B_z[k-1] = -(div_xy[k] + div_xy[k-1]) / 2 (trapezoid rule)
    b_z = bz_real_space(b_x, b_y)
    torch.testing.assert_close(b_z[1:] - b_z[:-1], -0.5 * (lateral[1:] + lateral[:-1]))


def test_lowpass_keeps_low_frequencies_and_removes_the_corners() -> None:
    size = 32
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    smooth = torch.cos(2 * torch.pi * 2 * x.double() / size)
    torch.testing.assert_close(lowpass(smooth, (0.5, 0.9)), smooth, rtol=0, atol=1e-12)
    checker = ((-1.0) ** (x + y)).double()  # frequency (0.5, 0.5): radius sqrt(2) Nyquist
    assert lowpass(checker, (0.5, 0.9)).abs().max() < 1e-12
    with pytest.raises(ValueError, match="window"):
        lowpass(smooth, (0.9, 0.5))


def test_unknown_bz_method_is_refused() -> None:
    phase = torch.zeros((3, 8, 8))
    with pytest.raises(ValueError, match="bz_method"):
        vfet(phase, [-5, 0, 5], phase, [-5, 0, 5], 1.0, bz_method="magic")
