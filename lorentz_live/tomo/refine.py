"""Data-consistency refinement of a 3D induction against the measured tilt series.

Minimises 0.5 sum over both series of |phi(B) - phi_meas|^2 (each image with its
mean removed: the phase offset of a real image is arbitrary) over
divergence-free B, starting from the MagNet output, by conjugate gradients on
the normal equations (CGLS) restricted to divergence-free fields.  The updates
lie in the range of the projector's adjoint, so the refinement corrects what
the data measure and leaves the missing wedge to the network; stopping early
keeps it from fitting the noise (semi-convergence).
"""

from __future__ import annotations

import torch

from lorentz_live.tomo.fields import solenoidal_part
from lorentz_live.tomo.projector import tilt_phase

#: Iterations used by ``lorentz-live tomo`` and ``run --tomo-out`` unless told otherwise.
#: On the first 22 (11) test samples of benchmarks/tomo.py, median NRMSE (%) after
#: 10 / 20 / 30 / 40 / 60 steps: +-45 deg noise-free 21.0 / 19.7 / 18.9 / 18.5 (20.6 at
#: 60, on 11), with 2 % noise 22.7 / 22.0 / 21.8 / 22.6 (24.9 at 60); +-60 deg
#: noise-free 16.7 / 16.0 / 15.5 / 15.4, 2 % 19.2 / 18.4 / 18.8 / 20.0.  30 is close to
#: the best of both; docs/benchmarks.md (section tomo) has every tilt limit.
DEFAULT_ITERATIONS = 30

Series = list[tuple[torch.Tensor, list[float], str]]


def _zero_mean(phase: torch.Tensor) -> torch.Tensor:
    return phase - phase.mean(dim=(-2, -1), keepdim=True)


def _forward(induction_t: torch.Tensor, series: Series, voxel_size_nm: float) -> list[torch.Tensor]:
    """Zero-mean model phases of ``induction_t`` for every series (the linear operator A)."""
    return [_zero_mean(tilt_phase(induction_t, a, x, voxel_size_nm)) for _, a, x in series]


def _adjoint(images: list[torch.Tensor], like: torch.Tensor, series: Series, voxel_size_nm: float):
    """A^T applied to per-series images, projected onto divergence-free fields."""
    probe = torch.zeros_like(like, requires_grad=True)
    outputs = _forward(probe, series, voxel_size_nm)
    (gradient,) = torch.autograd.grad(outputs, probe, grad_outputs=images)
    return solenoidal_part(gradient)


def phase_misfit(induction_t: torch.Tensor, series: Series, voxel_size_nm: float) -> torch.Tensor:
    """0.5 sum |phi(B) - phi_meas|^2 (rad^2) over ``series`` = [(phases, angles_deg, axis)]."""
    model = _forward(induction_t, series, voxel_size_nm)
    terms = [
        0.5 * ((m - _zero_mean(p)) ** 2).sum() for m, (p, _, _) in zip(model, series, strict=True)
    ]
    return torch.stack(terms).sum()


def refine(
    induction_t: torch.Tensor,
    series: Series,
    voxel_size_nm: float,
    iterations: int = DEFAULT_ITERATIONS,
) -> torch.Tensor:
    """``iterations`` CGLS steps on :func:`phase_misfit` from ``induction_t`` (T) [3, N, N, N].

    Returns a divergence-free field of the same shape.
    """
    with torch.no_grad():
        b = solenoidal_part(induction_t.detach())
    measured = [_zero_mean(p) for p, _, _ in series]
    with torch.no_grad():
        residual = [
            y - m for y, m in zip(measured, _forward(b, series, voxel_size_nm), strict=True)
        ]
    gradient = _adjoint(residual, b, series, voxel_size_nm)
    direction = gradient
    norm_sq = (gradient**2).sum()
    for _ in range(iterations):
        if norm_sq <= 0:
            break
        with torch.no_grad():
            image = _forward(direction, series, voxel_size_nm)
            curvature = sum((q**2).sum() for q in image)
            if curvature <= 0:
                break
            step = norm_sq / curvature
            b = b + step * direction
            residual = [r - step * q for r, q in zip(residual, image, strict=True)]
        gradient = _adjoint(residual, b, series, voxel_size_nm)
        new_norm_sq = (gradient**2).sum()
        direction = gradient + (new_norm_sq / norm_sq) * direction
        norm_sq = new_norm_sq
    return b.detach()
