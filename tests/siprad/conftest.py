"""Fixtures for the SIPRAD tests: small simulated bubble images with known phase."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from lorentz_live.physics import (
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    bubble_texture,
    contaminant_thickness,
    electrostatic_phase,
    film_magnetic_phase,
    hexagonal_lattice,
    simulate_image,
)
from lorentz_live.siprad import NetworkConfig, SipradConfig

PIXEL_NM = 4.0


@dataclass(frozen=True)
class Case:
    """A simulated measurement: image, truth and microscope parameters."""

    image: torch.Tensor
    phase_m: torch.Tensor
    params: MicroscopeParams
    mask: torch.Tensor | None = None


def bubble_phase(shape: tuple[int, int], seed: int = 3) -> torch.Tensor:
    """phi_m (rad) of a jittered Bloch-bubble lattice, CGT-like film (Ms 2e5 A/m, 100 nm)."""
    bubbles = hexagonal_lattice(
        shape, PIXEL_NM, 100.0, 30.0, jitter_nm=4.0, helicity="random", seed=seed
    )
    return film_magnetic_phase(bubble_texture(shape, PIXEL_NM, bubbles), 2.0e5, 100.0, PIXEL_NM)


def add_noise(image: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Gaussian noise of std ``fraction`` x mean intensity."""
    gen = torch.Generator().manual_seed(seed)
    return image + fraction * image.mean() * torch.randn(image.shape, generator=gen)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread: on a loaded 2-core machine more threads oversubscribe (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def noisy_bubbles() -> Case:
    """64 px bubble lattice at -2 mm defocus with 50 % Gaussian noise."""
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-2.0e6)
    phase = bubble_phase((64, 64))
    return Case(add_noise(simulate_image(phase, params), 0.5, 11), phase, params)


@pytest.fixture(scope="session")
def contaminated_bubbles() -> Case:
    """64 px bubble lattice at -0.5 mm with two contaminant particles and 10 % noise."""
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-0.5e6)
    phase_m = bubble_phase((64, 64), seed=5)
    thickness = contaminant_thickness(
        (64, 64), PIXEL_NM, count=2, radius_nm=(30.0, 45.0), height_nm=60.0, seed=2
    )
    material = Material()
    phase = phase_m + electrostatic_phase(thickness, material, params.kv)
    amplitude = amplitude_from_thickness(thickness, material)
    image = add_noise(simulate_image(phase, params, amplitude), 0.1, 12)
    return Case(image, phase_m, params, thickness > 1.0)


@pytest.fixture
def fast_config() -> SipradConfig:
    """Small and short: 64 px tests finish in seconds.  The fixtures are periodic
    simulations, so the periodic boundary (the default "pad" is for real images)."""
    return SipradConfig(
        network=NetworkConfig(width=8, depth=3, max_width=32),
        boundary="periodic",
        pretrain_iterations=100,
        max_iterations=300,
        seed=1,
    )
