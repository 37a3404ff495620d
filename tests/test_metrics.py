"""The accuracy metric: Pearson correlation on the [N/16 : -N/16] crop."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.metrics import correlation, phase_and_b_accuracy


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
