"""The accuracy metric: Pearson correlation on the [N/16 : -N/16] crop."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.metrics import (
    correlation,
    harmonic_free_correlation,
    linear_oracle,
    magnitude_ratio,
    phase_and_b_accuracy,
)
from lorentz_live.physics import MicroscopeParams, film_magnetic_phase, stripe_domains


def test_correlation_ignores_the_edges_and_scale() -> None:
    truth = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
    spoiled = 3.0 * truth + 1.0
    spoiled[:3] = -truth[:3]  # rows inside the N/16 = 4 px border
    assert correlation(spoiled, truth) == pytest.approx(1.0)
    assert correlation(spoiled, truth, crop=False) < 0.99
    assert correlation(-truth, truth) == pytest.approx(-1.0)
    assert correlation(torch.zeros(64, 48), truth) == 0.0


def test_phase_and_b_accuracy_of_the_truth_is_one() -> None:
    y = torch.arange(64.0)[:, None]
    truth = torch.sin(2 * torch.pi * y / 32) * torch.cos(2 * torch.pi * torch.arange(48.0) / 24)
    assert phase_and_b_accuracy(truth, truth, 4.0) == pytest.approx((1.0, 1.0))
    assert phase_and_b_accuracy(2 * truth + 5, truth, 4.0) == pytest.approx((1.0, 1.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_oracle_loses_the_peak_of_narrow_walls(seed: int) -> None:
    # wavy stripes (36 px period) in a CGT-like film at 2 nm/px
    def truth(wall_px: float) -> torch.Tensor:
        m = stripe_domains(
            (128, 128), 2.0, 72.0, wall_width_nm=2.0 * wall_px, disorder=0.3, seed=seed
        )
        return film_magnetic_phase(m, 2.0e5, 100.0, 2.0)

    near = MicroscopeParams(pixel_size_nm=2.0, defocus_nm=0.5e6)
    far = MicroscopeParams(pixel_size_nm=2.0, defocus_nm=2.0e6)
    narrow, wide = truth(1.0), truth(4.0)
    # no noise, +0.5 mm: the envelope passes the walls, nothing is lost
    assert magnitude_ratio(linear_oracle(wide, near, 1e-4), wide, 2.0) > 0.98
    # measured over seeds 0-2 (ratios): 1-px walls under 100 % noise 0.52-0.55,
    # 4-px walls under 25 % noise 0.96; at +2 mm the partial-coherence envelope
    # alone (no noise) leaves 1-px walls 0.58-0.59 of their peak |B|
    assert magnitude_ratio(linear_oracle(narrow, near, 1.0), narrow, 2.0) < 0.65
    assert magnitude_ratio(linear_oracle(wide, near, 0.25), wide, 2.0) > 0.9
    assert magnitude_ratio(linear_oracle(narrow, far, 1e-4), narrow, 2.0) < 0.7
    # the oracle damps what it cannot see; the phase itself still correlates (0.954)
    assert correlation(linear_oracle(narrow, near, 1.0), narrow) > 0.9


def test_harmonic_free_correlation_forgives_only_harmonic_errors() -> None:
    gen = torch.Generator().manual_seed(0)
    truth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 72, 72, generator=gen), 9, 1)[0, 0]
    y, x = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    harmonic = 0.3 * x - 0.2 * y + 0.4 * (x**2 - y**2) + 0.2 * x * y  # lap = 0
    assert correlation(truth + harmonic, truth) < 0.9
    assert harmonic_free_correlation(truth + harmonic, truth) == pytest.approx(1.0, abs=1e-9)
    # a non-harmonic error (lap != 0) is not forgiven
    bowl = 0.4 * (x**2 + y**2)
    assert harmonic_free_correlation(truth + bowl, truth) < 0.99
