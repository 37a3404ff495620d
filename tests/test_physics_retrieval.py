"""SITIE and three-image TIE recover known phases; colour wheel and textures behave."""

from __future__ import annotations

import math

import pytest
import torch

from lorentz_live.errors import InputError
from lorentz_live.physics import (
    MicroscopeParams,
    bubble_texture,
    colour_wheel_legend,
    colour_wheel_rgb,
    contaminant_thickness,
    film_magnetic_phase,
    hexagonal_lattice,
    integrated_induction,
    simulate_image,
    sitie_phase,
    stripe_domains,
    tie_phase,
)
from tests.helpers import correlation

SHAPE = (72, 56)  # non-square, catches transposed axes


@pytest.fixture
def lattice_phase() -> torch.Tensor:
    bubbles = hexagonal_lattice(SHAPE, 4.0, spacing_nm=90.0, radius_nm=25.0, jitter_nm=4.0, seed=7)
    texture = bubble_texture(SHAPE, 4.0, bubbles, wall_width_nm=6.0, dtype=torch.float64)
    return film_magnetic_phase(texture, 2.0e5, 40.0, 4.0)


def test_sitie_recovers_phase_noise_free_at_small_defocus(
    lattice_phase: torch.Tensor, device
) -> None:
    params = MicroscopeParams(defocus_nm=-2.0e4, pixel_size_nm=4.0)
    phase = lattice_phase.to(device)
    image = simulate_image(phase, params)
    recovered = sitie_phase(image, params)
    assert recovered.shape == SHAPE
    assert correlation(recovered.cpu(), lattice_phase) > 0.99
    b_true = integrated_induction(lattice_phase, 4.0)
    b_rec = integrated_induction(recovered.cpu(), 4.0)
    assert correlation(b_rec[0], b_true[0]) > 0.98
    assert correlation(b_rec[1], b_true[1]) > 0.98


def test_sitie_with_flipped_defocus_sign_anticorrelates(lattice_phase: torch.Tensor) -> None:
    params = MicroscopeParams(defocus_nm=-2.0e4)
    image = simulate_image(lattice_phase, params)
    assert correlation(sitie_phase(image, params.replace(defocus_nm=2.0e4)), lattice_phase) < -0.99


def test_sitie_regularisation_and_symmetrisation_keep_shape_and_correlation(lattice_phase) -> None:
    params = MicroscopeParams(defocus_nm=-2.0e4)
    image = simulate_image(lattice_phase, params)
    for kwargs in ({"qc_per_nm": 1e-3}, {"sigma_px": 1.0}, {"symmetrize": True}):
        recovered = sitie_phase(image, params, **kwargs)
        assert recovered.shape == SHAPE
        b_true, b_rec = (
            integrated_induction(lattice_phase, 4.0),
            integrated_induction(recovered, 4.0),
        )
        assert correlation(b_rec[0], b_true[0]) > 0.9, kwargs


def test_sitie_refuses_zero_or_nanometre_scale_defocus(lattice_phase: torch.Tensor) -> None:
    image = simulate_image(lattice_phase, MicroscopeParams(defocus_nm=-2.0e4))
    with pytest.raises(InputError, match="too small"):
        sitie_phase(image, MicroscopeParams(defocus_nm=0.0))
    with pytest.raises(InputError, match="-1 mm is -1e6"):
        sitie_phase(image, MicroscopeParams(defocus_nm=-1.0))


def test_three_image_tie_recovers_phase(lattice_phase: torch.Tensor) -> None:
    params = MicroscopeParams(defocus_nm=2.0e4)
    under = simulate_image(lattice_phase, params.replace(defocus_nm=-2.0e4))
    infocus = simulate_image(lattice_phase, params.replace(defocus_nm=0.0))
    over = simulate_image(lattice_phase, params.replace(defocus_nm=2.0e4))
    assert correlation(tie_phase(under, infocus, over, params), lattice_phase) > 0.99


def test_tie_handles_non_uniform_infocus_intensity(lattice_phase: torch.Tensor) -> None:
    """With an absorbing particle the in-focus image is not flat; TIE divides by it."""
    amplitude = torch.exp(
        -contaminant_thickness(SHAPE, 4.0, count=2, seed=1, dtype=torch.float64) / 200.0
    )
    params = MicroscopeParams(defocus_nm=1.0e4)
    images = [
        simulate_image(lattice_phase, params.replace(defocus_nm=d), amplitude)
        for d in (-1e4, 0.0, 1e4)
    ]
    assert correlation(tie_phase(*images, params), lattice_phase) > 0.97


def test_colour_wheel_maps_directions_to_hues() -> None:
    directions = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 2])
    b_x, b_y = torch.cos(directions)[None], torch.sin(directions)[None]
    rgb = colour_wheel_rgb(b_x, b_y, max_magnitude=1.0)[0]
    torch.testing.assert_close(rgb[0], torch.tensor([1.0, 0.0, 0.0]))  # +x red
    torch.testing.assert_close(rgb[2], torch.tensor([0.0, 1.0, 1.0]))  # -x cyan
    assert rgb[1, 1] > rgb[1, 2]  # +y towards green
    assert rgb[3, 2] > rgb[3, 1]  # -y towards blue/violet
    dark = colour_wheel_rgb(torch.zeros(1, 1), torch.zeros(1, 1), max_magnitude=1.0)
    assert dark.abs().max() == 0


def test_colour_wheel_brightness_scales_with_magnitude() -> None:
    b_x = torch.tensor([[0.25, 0.5, 1.0, 2.0]])
    rgb = colour_wheel_rgb(b_x, torch.zeros_like(b_x), max_magnitude=1.0)
    torch.testing.assert_close(rgb[0, :, 0], torch.tensor([0.25, 0.5, 1.0, 1.0]))


def test_legend_agrees_with_maps() -> None:
    legend = colour_wheel_legend(65)
    assert legend.shape == (65, 65, 3)
    torch.testing.assert_close(legend[32, 64], torch.tensor([1.0, 0.0, 0.0]))  # +x, rim: red
    torch.testing.assert_close(legend[32, 0], torch.tensor([0.0, 1.0, 1.0]))  # -x: cyan
    assert legend[32, 32].max() < 0.05  # centre: zero field, black
    assert legend[0, 0].max() == 0  # outside the disc


def test_textures_are_unit_vectors_and_periodic() -> None:
    for texture in (
        stripe_domains((48, 64), 4.0, 80.0, disorder=0.6, seed=1),
        bubble_texture((48, 64), 4.0, hexagonal_lattice((48, 64), 4.0, 70.0, 20.0, seed=2)),
    ):
        norm = torch.linalg.vector_norm(texture, dim=0)
        torch.testing.assert_close(norm, torch.ones_like(norm), atol=1e-5, rtol=0)
    straight = stripe_domains((32, 64), 4.0, 64.0)
    assert straight[2].std(dim=0).max() < 1e-6  # straight stripes along y
    assert (straight[2, 0, :] > 0).any() and (straight[2, 0, :] < 0).any()


def test_lattice_vacancies_and_seeds() -> None:
    full = hexagonal_lattice((128, 128), 4.0, 100.0, 30.0, seed=3)
    sparse = hexagonal_lattice((128, 128), 4.0, 100.0, 30.0, vacancy_fraction=0.5, seed=3)
    assert 0.2 * len(full) < len(sparse) < 0.8 * len(full)
    assert hexagonal_lattice(
        (128, 128), 4.0, 100.0, 30.0, jitter_nm=5, seed=4
    ) == hexagonal_lattice((128, 128), 4.0, 100.0, 30.0, jitter_nm=5, seed=4)
