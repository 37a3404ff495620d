"""Tilt projector: adjointness, a known phase gradient, the signs of both tilts."""

from __future__ import annotations

import math

import pytest
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.projector import backproject, induction_from_phase, project, tilt_phase


def _centred_grid(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    axis = torch.arange(size, dtype=torch.float64) - size // 2
    return torch.meshgrid(axis, axis, axis, indexing="ij")  # z, y, x


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("size", [16, 17])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backproject_is_the_adjoint_of_project(axis: str, size: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    volume = torch.randn((2, size, size, size), generator=generator, dtype=torch.float64)
    angles = [-70.0, -25.0, 0.0, 10.0, 55.0, 90.0]
    images = torch.randn((2, len(angles), size, size), generator=generator, dtype=torch.float64)
    forward = (project(volume, angles, axis, 3.0) * images).sum()
    adjoint = (volume * backproject(images, angles, axis, 3.0)).sum()
    assert forward.item() == pytest.approx(adjoint.item(), rel=1e-10)


def test_projection_at_zero_tilt_is_the_sum_along_z() -> None:
    volume = torch.rand((13, 13, 13), dtype=torch.float64)
    for axis in ("x", "y"):
        torch.testing.assert_close(project(volume, [0.0], axis, 2.0)[0], 2.0 * volume.sum(0))


@pytest.mark.parametrize(("axis", "expected_shift"), [("x", (-4, 0)), ("y", (0, 4))])
def test_positive_tilt_moves_a_feature_above_the_centre_as_documented(axis, expected_shift) -> None:
    # +30 deg about x turns +y toward +z, so a point at z = +8 lands at y = -8 sin 30 = -4;
    # +30 deg about y turns +z toward +x, so it lands at x = +4.
    size, centre = 33, 16
    volume = torch.zeros((size, size, size))
    volume[centre + 8, centre, centre] = 1.0
    image = project(volume, [30.0], axis, 1.0)[0]
    row, column = divmod(int(image.argmax()), size)
    assert (row - centre, column - centre) == expected_shift


@pytest.mark.parametrize("size", [32, 31])
@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("angle", [30.0, -30.0, 60.0, -75.0])
def test_an_off_centre_ball_lands_where_the_tilt_axis_convention_puts_it(size, axis, angle):
    # The tilt axes pass through voxel N // 2 for even and odd N alike: a ball at
    # (z, w) relative to that voxel projects to w' = cos(a) w - sigma sin(a) z
    # (sigma = +1 about x, w = y; sigma = -1 about y, w = x).  A half-voxel error in
    # the centre would move the centroid by |1 - cos(a)| / 2 or sin(a) / 2 voxel.
    centre = size // 2
    offset = {"z": 6.0, "y": 3.0, "x": -2.5}
    z, y, x = _centred_grid(size)
    ball = torch.exp(
        -((z - offset["z"]) ** 2 + (y - offset["y"]) ** 2 + (x - offset["x"]) ** 2) / 4.5
    )
    image = project(ball, [angle], axis, 1.0)[0]
    pixels = torch.arange(size, dtype=torch.float64) - centre
    row = (image.sum(1) * pixels).sum() / image.sum()
    column = (image.sum(0) * pixels).sum() / image.sum()
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    if axis == "x":
        expected = (c * offset["y"] - s * offset["z"], offset["x"])
    else:
        expected = (offset["y"], c * offset["x"] + s * offset["z"])
    assert row.item() == pytest.approx(expected[0], abs=0.02)
    assert column.item() == pytest.approx(expected[1], abs=0.02)


def test_uniformly_magnetised_disc_has_the_known_phase_gradient() -> None:
    # A disc magnetised in-plane is, in projection, a 2D cylinder: B_int = mu0 M t / 2
    # inside (demagnetising factor 1/2), so (Phi_0/pi) d phi/dy = -mu0 M t / 2.
    size, radius, voxel_nm = 32, 10, 2.0
    z, y, x = _centred_grid(size)
    disc = ((x**2 + y**2) <= radius**2) & (z.abs() <= 1)  # 3 voxels thick
    field = torch.zeros((3, size, size, size), dtype=torch.float64)
    ms = 8e5
    field[0] = MU0_H_PER_M * ms * disc
    phase = tilt_phase(field, [0.0], "x", voxel_nm)[0]
    b_x, b_y = induction_from_phase(phase, voxel_nm)
    centre = (x[0] ** 2 + y[0] ** 2) < (radius - 3) ** 2
    expected = MU0_H_PER_M * ms * 3 * voxel_nm / 2  # T nm
    ratio = b_x[centre] / expected
    # 2x padding of the detector leaves periodic images ~ (R / 2N)^2 away: a few %
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.1)
    assert ratio.std().item() < 0.06
    assert b_y[centre].abs().max().item() < 0.05 * expected


@pytest.mark.parametrize("angle", [20.0, 30.0, -45.0])
def test_field_rotates_with_the_sample(angle: float) -> None:
    # A sphere looks the same at every tilt; its moment rotates with it:
    # about x, B_z turns into -sin(a) B_y; about y, B_z turns into +sin(b) B_x.
    size = 32
    z, y, x = _centred_grid(size)
    sphere = ((x**2 + y**2 + z**2) <= 64).double()
    unit = {c: torch.zeros((3, size, size, size), dtype=torch.float64) for c in "xyz"}
    for i, c in enumerate("xyz"):
        unit[c][i] = sphere
    s = math.sin(math.radians(angle))
    along_x = tilt_phase(unit["z"], [angle], "x", 2.0)[0]
    reference_x = -s * tilt_phase(unit["y"], [0.0], "x", 2.0)[0]
    along_y = tilt_phase(unit["z"], [angle], "y", 2.0)[0]
    reference_y = s * tilt_phase(unit["x"], [0.0], "y", 2.0)[0]
    for got, want in ((along_x, reference_x), (along_y, reference_y)):
        assert ((got - want).norm() / want.norm()).item() < 0.02
    # B_x is invariant under rotation about x
    tilted = tilt_phase(unit["x"], [angle], "x", 2.0)[0]
    flat = tilt_phase(unit["x"], [0.0], "x", 2.0)[0]
    assert ((tilted - flat).norm() / flat.norm()).item() < 0.02


def test_non_cubic_volume_is_refused() -> None:
    with pytest.raises(ValueError, match="cubic"):
        project(torch.zeros((8, 8, 9)), [0.0], "x", 1.0)
    with pytest.raises(ValueError, match="tilt axis"):
        project(torch.zeros((8, 8, 8)), [0.0], "z", 1.0)


@pytest.mark.parametrize("chirality", [1.0, -1.0])
def test_untilted_phase_matches_the_2d_film_phase_of_the_engine(chirality: float) -> None:
    # The tomography phase and the SIPRAD engine's film phase share one sign convention:
    # a flux-closed vortex disc (no net moment, so periodic and padded boxes agree).
    from lorentz_live.physics import film_magnetic_phase

    size, voxel_nm, ms = 32, 4.0, 8e5
    axis = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    disc = ((x**2 + y**2) <= 64).double()
    psi = torch.atan2(y, x)
    m = chirality * torch.stack([-torch.sin(psi), torch.cos(psi), torch.zeros_like(psi)]) * disc
    film = film_magnetic_phase(m, ms, 3 * voxel_nm, voxel_nm)
    volume = torch.zeros((3, size, size, size), dtype=torch.float64)
    volume[:, size // 2 - 1 : size // 2 + 2] = MU0_H_PER_M * ms * m[:, None]
    phase = tilt_phase(volume, [0.0], "x", voxel_nm)[0]
    difference = (phase - phase.mean()) - (film - film.mean())
    assert (difference.norm() / (film - film.mean()).norm()).item() < 0.02
