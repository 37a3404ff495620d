"""Texture census on simulated maps with known bubbles: count, size, handedness, order, period."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lorentz_live.analysis import texture_census
from lorentz_live.analysis.census import census_header
from lorentz_live.physics import (
    BLOCH_CCW,
    Bubble,
    MicroscopeParams,
    bubble_texture,
    film_magnetic_phase,
    hexagonal_lattice,
    simulate_image,
    sitie_phase,
    stripe_domains,
)

PIXEL_NM = 4.0
SHAPE = (128, 128)


def lattice_phase(bubbles: list[Bubble], shape=SHAPE) -> np.ndarray:
    texture = bubble_texture(shape, PIXEL_NM, bubbles, wall_width_nm=8.0)
    return film_magnetic_phase(texture, 2.0e5, 60.0, PIXEL_NM).numpy()


def match(found, truth, shape=SHAPE) -> list[tuple[object, Bubble]]:
    """Pairs (found, true bubble) closer than half a radius (periodic distance)."""
    pairs = []
    for bubble in found:
        best, best_d = None, np.inf
        for true in truth:
            dy = (bubble.y_px - true.y_nm / PIXEL_NM + shape[0] / 2) % shape[0] - shape[0] / 2
            dx = (bubble.x_px - true.x_nm / PIXEL_NM + shape[1] / 2) % shape[1] - shape[1] / 2
            if np.hypot(dy, dx) < best_d:
                best, best_d = true, np.hypot(dy, dx)
        if best_d < 0.5 * best.radius_nm / PIXEL_NM:
            pairs.append((bubble, best))
    return pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lattice_count_size_and_handedness(seed: int) -> None:
    """Margins from benchmarks/census.py over 5 seeds: count within 1, every sense right."""
    truth = hexagonal_lattice(
        SHAPE, PIXEL_NM, 110.0, 32.0, jitter_nm=4.0, helicity="random", seed=seed
    )
    census = texture_census(lattice_phase(truth), PIXEL_NM, periodic=True)
    assert abs(census.count - len(truth)) <= 1
    pairs = match(census.bubbles, truth)
    assert len(pairs) >= len(truth) - 1
    for found, true in pairs:  # ccw (+pi/2) circulates counter-clockwise
        assert found.handedness == (1 if true.helicity_rad > 0 else -1)
    assert census.diameter_mean_nm == pytest.approx(64.0, rel=0.06)
    assert census.diameter_std_nm < 5.0
    assert census.hexatic_order > 0.8
    assert census.phase == "bubbles"


@pytest.mark.parametrize(("helicity", "sense"), [("ccw", 1.0), ("cw", -1.0)])
def test_one_sense_lattice_has_handedness_plus_or_minus_one(helicity: str, sense: float) -> None:
    truth = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 30.0, helicity=helicity, seed=5)
    census = texture_census(lattice_phase(truth), PIXEL_NM, periodic=True)
    assert census.count == len(truth)
    assert census.handedness == sense
    assert census.hexatic_order > 0.95 and census.hexatic_global > 0.95


def test_size_follows_the_bubbles() -> None:
    small = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 20.0, seed=1)
    large = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 40.0, seed=1)
    d_small = texture_census(lattice_phase(small), PIXEL_NM, periodic=True).diameter_mean_nm
    d_large = texture_census(lattice_phase(large), PIXEL_NM, periodic=True).diameter_mean_nm
    assert d_small == pytest.approx(40.0, rel=0.1)
    assert d_large == pytest.approx(80.0, rel=0.1)


def test_random_positions_have_low_hexatic_order() -> None:
    rng = np.random.default_rng(3)
    bubbles: list[Bubble] = []
    while len(bubbles) < 20:  # non-overlapping, otherwise random
        y, x = rng.uniform(0, 512, 2)
        if all(np.hypot(y - b.y_nm, x - b.x_nm) > 75 for b in bubbles):
            bubbles.append(Bubble(y, x, 25.0, BLOCH_CCW))
    census = texture_census(lattice_phase(bubbles), PIXEL_NM, periodic=True)
    assert abs(census.count - 20) <= 2
    assert census.hexatic_order < 0.7


@pytest.mark.parametrize("period_nm", [80.0, 128.0])
def test_stripes_give_their_period_and_no_bubbles(period_nm: float) -> None:
    texture = stripe_domains(SHAPE, PIXEL_NM, period_nm)
    phase = film_magnetic_phase(texture, 2.0e5, 60.0, PIXEL_NM).numpy()
    census = texture_census(phase, PIXEL_NM, periodic=True)
    assert census.count == 0 and census.phase == "stripes"
    tiled = SHAPE[1] * PIXEL_NM / round(SHAPE[1] * PIXEL_NM / period_nm)
    assert census.period_nm == pytest.approx(tiled, rel=0.03)


def test_noise_has_no_bubbles_and_empty_maps_are_none() -> None:
    rng = np.random.default_rng(0)
    assert texture_census(rng.normal(0.0, 0.01, SHAPE), PIXEL_NM).count == 0
    empty = texture_census(np.zeros(SHAPE), PIXEL_NM)
    assert (empty.count, empty.phase, empty.period_nm) == (0, "none", None)


def test_noisy_sitie_reconstruction_keeps_count_and_senses() -> None:
    truth = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 32.0, helicity="random", seed=4)
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-5.0e5)
    image = simulate_image(torch.from_numpy(lattice_phase(truth)), params)
    image = image + 0.25 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    phase = sitie_phase(image, params, sigma_px=1.5).numpy()
    census = texture_census(phase, PIXEL_NM)  # not periodic: as in the engine
    pairs = match(census.bubbles, truth)
    assert len(pairs) >= 0.7 * len(truth)
    assert all(f.handedness == (1 if t.helicity_rad > 0 else -1) for f, t in pairs)


def test_flipped_defocus_sign_flips_every_handedness() -> None:
    """Reconstructing with the wrong defocus sign reverses the chirality the census reports."""
    truth = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 32.0, helicity="ccw", seed=2)
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-5.0e5)
    image = simulate_image(torch.from_numpy(lattice_phase(truth)), params)
    right = texture_census(sitie_phase(image, params).numpy(), PIXEL_NM, periodic=True)
    wrong_params = params.replace(defocus_nm=5.0e5)
    wrong = texture_census(sitie_phase(image, wrong_params).numpy(), PIXEL_NM, periodic=True)
    assert right.handedness == 1.0 and wrong.handedness == -1.0


def test_bad_maps_are_refused_and_the_header_never_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        texture_census(np.full(SHAPE, np.nan), PIXEL_NM)
    assert census_header(np.zeros((4, 4)), PIXEL_NM)["phase"] == "error"
    header = census_header(np.zeros(SHAPE), PIXEL_NM)
    assert header["count"] == 0 and set(header) >= {"handedness", "hexatic_order", "period_nm"}


def test_large_maps_are_binned_for_the_header() -> None:
    truth = hexagonal_lattice(SHAPE, PIXEL_NM, 110.0, 32.0, helicity="random", seed=6)
    tiled = np.tile(lattice_phase(truth), (5, 5))  # 640 px, 750 bubbles
    header = census_header(tiled, PIXEL_NM)
    assert header["binned"] == 2
    assert 0.8 * 750 < header["count"] <= 750
    assert header["diameter_mean_nm"] == pytest.approx(64.0, rel=0.1)
