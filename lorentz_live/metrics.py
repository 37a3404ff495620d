"""Accuracy of a reconstruction against a known phase (SIPRAD paper, Fig. 3).

Accuracy is the Pearson correlation with the truth on the [N/16 : -N/16] crop
(the edges are left out, as in the paper); B accuracy is the mean of the B_x and
B_y correlations.
"""

from __future__ import annotations

import torch

from lorentz_live.physics import integrated_induction


def correlation(a: torch.Tensor, b: torch.Tensor, *, crop: bool = True) -> float:
    """Pearson correlation of two [H, W] maps (0 if either is constant)."""
    if crop:
        height, width = a.shape[-2:]
        cy, cx = height // 16, width // 16
        a, b = a[..., cy : height - cy, cx : width - cx], b[..., cy : height - cy, cx : width - cx]
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    norm = torch.sqrt((a @ a) * (b @ b))
    return float((a @ b) / norm) if norm > 0 else 0.0


def phase_and_b_accuracy(
    phase: torch.Tensor, truth: torch.Tensor, pixel_size_nm: float, *, crop: bool = True
) -> tuple[float, float]:
    """(phase correlation, mean B_x / B_y correlation) of ``phase`` against ``truth`` (rad)."""
    b, t = integrated_induction(phase, pixel_size_nm), integrated_induction(truth, pixel_size_nm)
    b_accuracy = 0.5 * (correlation(b[0], t[0], crop=crop) + correlation(b[1], t[1], crop=crop))
    return correlation(phase, truth, crop=crop), b_accuracy


def magnitude_ratio(
    phase: torch.Tensor, truth: torch.Tensor, pixel_size_nm: float, *, crop: bool = True
) -> float:
    """Median of |B| / |B_true| over the pixels where |B_true| > half its maximum.

    The quantitative test of a reconstruction (|B| is Ms t): 1 is exact.  Phases
    [H, W] in rad, on the [N/16 : -N/16] crop unless ``crop`` is False.
    """
    b_x, b_y = integrated_induction(phase, pixel_size_nm)
    t_x, t_y = integrated_induction(truth, pixel_size_nm)
    found, true = torch.hypot(b_x, b_y), torch.hypot(t_x, t_y)
    if crop:
        height, width = found.shape[-2:]
        cy, cx = height // 16, width // 16
        found = found[..., cy : height - cy, cx : width - cx]
        true = true[..., cy : height - cy, cx : width - cx]
    strong = true > 0.5 * true.max()
    if not bool(strong.any()):
        return float("nan")
    return float((found[strong] / true[strong]).median())
