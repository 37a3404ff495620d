"""Data-consistency refinement of a 3D induction against the measured tilt series.

Minimises sum over both series of |phi(B) - phi_meas|^2 (each image with its mean
removed: the phase offset of a real image is arbitrary) over divergence-free B,
starting from the MagNet output: steepest descent with the gradient projected
onto divergence-free fields and the exact step of the quadratic misfit.  The
gradient lies in the range of the projector's adjoint, so the refinement only
corrects what the data measure and leaves the missing wedge to the network.
"""

from __future__ import annotations

import torch

from lorentz_live.tomo.fields import solenoidal_part
from lorentz_live.tomo.projector import tilt_phase


def _zero_mean(phase: torch.Tensor) -> torch.Tensor:
    return phase - phase.mean(dim=(-2, -1), keepdim=True)


def phase_misfit(
    induction_t: torch.Tensor,
    series: list[tuple[torch.Tensor, list[float], str]],
    voxel_size_nm: float,
) -> torch.Tensor:
    """0.5 sum |phi(B) - phi_meas|^2 (rad^2) over ``series`` = [(phases, angles_deg, axis)]."""
    total = induction_t.new_zeros(())
    for phases, angles, axis in series:
        model = tilt_phase(induction_t, angles, axis, voxel_size_nm)
        total = total + 0.5 * ((_zero_mean(model) - _zero_mean(phases)) ** 2).sum()
    return total


def refine(
    induction_t: torch.Tensor,
    series: list[tuple[torch.Tensor, list[float], str]],
    voxel_size_nm: float,
    iterations: int = 5,
) -> torch.Tensor:
    """``iterations`` projected steepest-descent steps on :func:`phase_misfit` from ``induction_t``.

    ``induction_t`` (T) [3, N, N, N]; returns a divergence-free field of the same shape.
    """
    b = solenoidal_part(induction_t.detach())
    for _ in range(iterations):
        b.requires_grad_(True)
        misfit = phase_misfit(b, series, voxel_size_nm)
        (gradient,) = torch.autograd.grad(misfit, b)
        b = b.detach()
        direction = solenoidal_part(gradient)
        norm_sq = (direction * gradient).sum()
        if norm_sq <= 0:
            break
        # the misfit is quadratic: its curvature along the direction is |A d|^2
        curvature = 2.0 * phase_misfit(
            direction, [(torch.zeros_like(p), a, x) for p, a, x in series], voxel_size_nm
        )
        if curvature <= 0:
            break
        b = b - (norm_sq / curvature) * direction
    return b.detach()
