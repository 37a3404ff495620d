"""Fixtures for the live-engine tests: a short simulated movie with ground truth."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from lorentz_live.live import LiveConfig, LiveFrame
from lorentz_live.live.engine import LIVE_SIPRAD
from lorentz_live.metrics import phase_and_b_accuracy
from lorentz_live.physics import (
    Bubble,
    MicroscopeParams,
    bubble_texture,
    film_magnetic_phase,
    hexagonal_lattice,
    simulate_image,
)
from lorentz_live.siprad import NetworkConfig

PIXEL_NM = 4.0
SHAPE = (64, 64)
PARAMS = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-1.0e6)


@dataclass(frozen=True)
class MovieFrame:
    image: np.ndarray
    phase: torch.Tensor


def movie(
    count: int, *, noise: float = 0.5, params: MicroscopeParams = PARAMS, seed: int = 0
) -> list[MovieFrame]:
    """A bubble lattice drifting 1 nm per frame in y and x, ``noise`` x mean Gaussian noise."""
    base = hexagonal_lattice(SHAPE, PIXEL_NM, 100.0, 30.0, jitter_nm=4.0, helicity="random", seed=3)
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for index in range(count):
        bubbles = [
            Bubble(b.y_nm + index, b.x_nm + index, b.radius_nm, b.helicity_rad) for b in base
        ]
        phase = film_magnetic_phase(
            bubble_texture(SHAPE, PIXEL_NM, bubbles), 2.0e5, 100.0, PIXEL_NM
        )
        clean = simulate_image(phase, params)
        image = clean + noise * torch.randn(SHAPE, generator=generator)
        frames.append(MovieFrame(image.numpy(), phase))
    return frames


def b_correlation(phase: torch.Tensor, truth: torch.Tensor) -> float:
    """Correlation of the induction of ``phase`` with that of ``truth`` (whole field)."""
    return phase_and_b_accuracy(phase, truth, PIXEL_NM, crop=False)[1]


def as_frame(frame: MovieFrame, seq: int, params: MicroscopeParams = PARAMS) -> LiveFrame:
    return LiveFrame(frame.image, params, seq, time.time_ns(), {"temperature_k": 30.0})


@pytest.fixture(scope="session")
def live_config() -> LiveConfig:
    """Small network and short runs so a 64 px movie takes seconds; no wall-time
    budgets, so results do not depend on the machine's speed.  Boundary,
    smoothing and scale fit are the live loop's defaults (``LIVE_SIPRAD``)."""
    siprad = LIVE_SIPRAD.replace(
        network=NetworkConfig(width=8, depth=3, max_width=32),
        pretrain_iterations=100,
        max_iterations=300,
        seed=1,
    )
    return LiveConfig(siprad=siprad, cold_budget_s=None, pretrained_cache="memory")
