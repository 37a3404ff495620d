"""Small shared test utilities (importable as ``tests.helpers``)."""

from __future__ import annotations

import torch


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two arrays (the accuracy metric of the SIPRAD paper)."""
    a = a.double().flatten() - a.double().mean()
    b = b.double().flatten() - b.double().mean()
    return float((a @ b) / torch.sqrt((a @ a) * (b @ b)))
