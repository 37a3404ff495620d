"""One-parameter calibration of the phase scale against the image misfit.

The image contrast of a magnetic phase grows with its amplitude, so the factor
alpha that makes the forward model of alpha phi_m fit the image best is fixed by
all pixels at once, and noise averages out; correlations do not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: Golden-section search bounds on alpha and its tolerance.
SCALE_RANGE = (0.5, 2.0)
SCALE_TOLERANCE = 5.0e-3
_INVERSE_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def fit_scale(
    misfit: Callable[[float], float],
    low: float = SCALE_RANGE[0],
    high: float = SCALE_RANGE[1],
    tolerance: float = SCALE_TOLERANCE,
) -> float:
    """Minimiser of a unimodal ``misfit(alpha)`` on [low, high] by golden-section search.

    Returns 1 when alpha = 1 is no worse than the minimum found (no change
    without evidence).
    """
    a, b = low, high
    c, d = b - _INVERSE_PHI * (b - a), a + _INVERSE_PHI * (b - a)
    fc, fd = misfit(c), misfit(d)
    while b - a > tolerance:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _INVERSE_PHI * (b - a)
            fc = misfit(c)
        else:
            a, c, fc = c, d, fd
            d = a + _INVERSE_PHI * (b - a)
            fd = misfit(d)
    best = 0.5 * (a + b)
    return best if misfit(best) < misfit(1.0) else 1.0
