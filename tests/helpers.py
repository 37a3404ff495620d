"""Small shared test utilities (importable as ``tests.helpers``)."""

from __future__ import annotations

import torch

from lorentz_live import metrics


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation over the whole image (test fields are periodic: no edges to drop)."""
    return metrics.correlation(a, b, crop=False)
