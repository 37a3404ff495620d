"""Drift measurement by phase correlation."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.physics import (
    MicroscopeParams,
    film_magnetic_phase,
    simulate_image,
    stripe_domains,
)
from lorentz_live.physics.registration import estimate_shift, fourier_shift


@pytest.fixture
def image() -> torch.Tensor:
    # a labyrinth: a lattice would make shifts by a lattice vector indistinguishable
    texture = stripe_domains((64, 80), 4.0, 70.0, disorder=1.0, seed=2)
    return simulate_image(
        film_magnetic_phase(texture, 2e5, 50.0, 4.0), MicroscopeParams(defocus_nm=-3e5)
    )


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, -5.0), (-2.4, 1.7), (10.0, 20.0)])
def test_recovers_known_shift_of_periodic_image(
    image: torch.Tensor, shift: tuple[float, float]
) -> None:
    dy, dx = estimate_shift(image, fourier_shift(image, shift), window=False)
    assert dy == pytest.approx(shift[0], abs=0.1)
    assert dx == pytest.approx(shift[1], abs=0.1)


@pytest.mark.parametrize("shift", [(1.0, -2.0), (-2.4, 1.7), (0.5, 0.0)])
def test_windowed_estimate_for_camera_frames(
    image: torch.Tensor, shift: tuple[float, float]
) -> None:
    """Frame-to-frame drift is small; the Hann window costs at most a few tenths of a pixel."""
    dy, dx = estimate_shift(image, fourier_shift(image, shift))
    assert dy == pytest.approx(shift[0], abs=0.3)
    assert dx == pytest.approx(shift[1], abs=0.3)


def test_recovers_shift_through_noise(image: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = fourier_shift(image, (4.0, -3.0)) + 0.4 * torch.randn(image.shape, generator=generator)
    dy, dx = estimate_shift(image, noisy)
    assert (round(dy), round(dx)) == (4, -3)


def test_shape_mismatch_is_an_error(image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="one shape"):
        estimate_shift(image, image[:32])
