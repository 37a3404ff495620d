"""Radial spectra: Wiener gain, noise-limited cut-off, Gaussian half-transfer."""

from __future__ import annotations

import math

import pytest
import torch

from lorentz_live.physics import (
    gaussian_filter,
    gaussian_half_transfer,
    noise_limited_cutoff,
    resolution_sigma_px,
    sigma_for_cutoff,
    wiener_gain,
)


def _waves(size: int, k_cycles_per_px: float, amplitude: float) -> torch.Tensor:
    _y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return 1.0 + amplitude * torch.cos(2 * math.pi * k_cycles_per_px * x).to(torch.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cutoff_finds_the_signal_band(seed: int) -> None:
    size, noise = 128, 0.2
    gen = torch.Generator().manual_seed(seed)
    low = _waves(size, 8 / size, 0.3) + noise * torch.randn(size, size, generator=gen)
    k_c = noise_limited_cutoff(low, noise**2)
    # the 8-cycle wave passes, white noise alone does not reach gain 1/2 far above it
    assert k_c is not None
    assert 8 / size <= k_c <= 12 / size
    pure = 1.0 + noise * torch.randn(size, size, generator=gen)
    gain = wiener_gain(pure, noise**2)
    assert float(gain[1:, 1:].mean()) < 0.1
    # more noise, coarser resolution
    assert resolution_sigma_px(low, (2 * noise) ** 2) >= resolution_sigma_px(low, noise**2)


def test_gaussian_half_transfer_is_where_the_filter_halves_a_wave() -> None:
    sigma = 2.0
    k = gaussian_half_transfer(sigma)
    size = 256
    k_grid = round(k * size) / size
    wave = _waves(size, k_grid, 1.0) - 1.0
    out = gaussian_filter(wave, sigma)
    transfer = float(out[:, 64:192].abs().max() / wave[:, 64:192].abs().max())
    assert transfer == pytest.approx(math.exp(-2 * math.pi**2 * sigma**2 * k_grid**2), rel=0.02)
    assert transfer == pytest.approx(0.5, abs=0.05)
    assert sigma_for_cutoff(k) == pytest.approx(sigma)
    assert gaussian_half_transfer(0.0) == math.inf
