"""Data-consistency refinement of a 3D induction against the measured tilt series.

The measured phase of a tilt integrates the induction along the whole beam path,
stray field outside the reconstructed box included; the phase of the box's B
alone misses that part (for the library's ground truth up to ~4 % of the
phase's energy, enough to pull a fit 1-6 % NRMSE away from the truth).  So the
refinement works on an effective source u = mu0 M_eff (T) in the box: its phase
is :func:`lorentz_live.tomo.projector.tilt_phase` of u (exact for a compact
source, as for the data) and its induction in the box is
:func:`field_of_source` (stray field from a 2x zero-padded box).  Starting from
the source of the MagNet output (:func:`source_of_field`), conjugate gradients on the normal
equations (CGLS) minimise 0.5 sum |phi(u) - phi_meas|^2 (each image with its
mean removed: the phase offset of a real image is arbitrary).  The updates lie
in the range of the projector's adjoint, so the data correct what they measure
and the missing wedge stays the network's.  Noise-free the error keeps falling
for 150 steps; with noise the fit starts to chase it after a few tens of steps,
so :func:`plan_for` stops early on series whose estimated phase noise is high
(a discrepancy-principle stop was tried: the misfit stays far above the noise
level until long after the error is lowest), and fits the box's B as its own
source there (the earlier model: worse noise-free, better at 2 % noise).  The result B(u) is
divergence free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.fields import induction_from_magnetisation, solenoidal_part
from lorentz_live.tomo.projector import tilt_phase

#: Iterations of ``lorentz-live tomo`` on noise-free-looking series (:func:`plan_for`), source
#: model.  Noise-free, more steps keep lowering the NRMSE (validation samples 880+ of the
#: library, MagNet start, median % at 30 / 60 / 100 / 150 steps: +-60 deg 15.6 / 14.9 /
#: 14.5 / 14.2, +-75 deg 13.2 / 12.2 / 11.5 / 10.8).  The trend goes on beyond 150 (test
#: split, +-60 deg, symmetry-averaged MagNet start, median % at 150 / 200 / 250 / 300 steps:
#: samples 0-21 13.6 / 13.3 / 13.1 / 13.0, samples 33-54 15.2 / 14.8 / 14.4 / 14.2).
DEFAULT_ITERATIONS = 300
#: Iterations when the phases look noisy, box model.  With 2 % noise both models chase the
#: noise after ~20 steps; there the box model does better (validation, median %, box 20 /
#: box 30 / source 20 steps: +-30 deg 21.9 / 22.6 / 23.9, +-45 deg 19.6 / 20.8 / 20.6,
#: +-75 deg 17.4 / 17.6 / 17.6; source model at +-60 deg: 19.5 at 30 steps, 40.8 at 150).
NOISY_ITERATIONS = 20
#: Estimated phase noise (:func:`phase_noise` / peak |phase|) above which a series counts as
#: noisy: 0.02-0.56 % on noise-free library series, >= 1.0 % with 1 % noise.
NOISE_THRESHOLD = 0.008
#: CG steps that find the source of the starting field.
SOURCE_ITERATIONS = 20

Series = list[tuple[torch.Tensor, list[float], str]]


def _zero_mean(phase: torch.Tensor) -> torch.Tensor:
    return phase - phase.mean(dim=(-2, -1), keepdim=True)


def field_of_source(source_t: torch.Tensor) -> torch.Tensor:
    """Induction (T) [3, N, N, N] in the box of the source u = mu0 M_eff (T) [3, N, N, N]."""
    return induction_from_magnetisation(source_t / MU0_H_PER_M)


def _forward(source_t: torch.Tensor, series: Series, voxel_size_nm: float) -> list[torch.Tensor]:
    """Zero-mean phases (rad) of the source for every series (the linear operator A)."""
    return [_zero_mean(tilt_phase(source_t, a, x, voxel_size_nm)) for _, a, x in series]


def _adjoint(images: list[torch.Tensor], like: torch.Tensor, series: Series, voxel_size_nm: float):
    """A^T applied to per-series images (rad) -> source-shaped gradient."""
    probe = torch.zeros_like(like, requires_grad=True)
    outputs = _forward(probe, series, voxel_size_nm)
    (gradient,) = torch.autograd.grad(outputs, probe, grad_outputs=images)
    return gradient.detach()


def _conjugate_gradients(
    apply: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """``steps`` CG iterations on apply(x) = rhs (apply symmetric positive semi-definite)."""
    x = start
    residual = rhs - apply(x)
    direction = residual
    norm_sq = (residual**2).sum()
    for _ in range(steps):
        if norm_sq <= 0:
            break
        image = apply(direction)
        curvature = (direction * image).sum()
        if curvature <= 0:
            break
        step = norm_sq / curvature
        x = x + step * direction
        residual = residual - step * image
        new_norm_sq = (residual**2).sum()
        direction = residual + (new_norm_sq / norm_sq) * direction
        norm_sq = new_norm_sq
    return x


@torch.no_grad()
def source_of_field(induction_t: torch.Tensor, iterations: int = SOURCE_ITERATIONS) -> torch.Tensor:
    """Least-squares source u (T) with :func:`field_of_source` (u) ~ ``induction_t`` (T)."""
    return _conjugate_gradients(
        lambda u: field_of_source(field_of_source(u)),
        field_of_source(induction_t),
        induction_t.clone(),
        iterations,
    )


def phase_misfit(source_t: torch.Tensor, series: Series, voxel_size_nm: float) -> torch.Tensor:
    """0.5 sum |phi(u) - phi_meas|^2 (rad^2) of a source u (T) over ``series``
    = [(phases, angles_deg, axis)]."""
    model = _forward(source_t, series, voxel_size_nm)
    terms = [
        0.5 * ((m - _zero_mean(p)) ** 2).sum() for m, (p, _, _) in zip(model, series, strict=True)
    ]
    return torch.stack(terms).sum()


def phase_noise(phase: torch.Tensor) -> float:
    """Robust estimate (rad) of white phase noise in images [..., H, W]: the median absolute
    fourth difference along x and y / (0.6745 sqrt 70) (smooth phases contribute little)."""
    parts = []
    for dim in (-1, -2):
        parts.append(torch.diff(phase, n=4, dim=dim).reshape(-1))
    return float(torch.cat(parts).abs().median()) / (0.6745 * math.sqrt(70.0))


MODELS = ("source", "box")


def plan_for(series: Series) -> tuple[str, int]:
    """(model, iterations) of :func:`refine`: ("box", :data:`NOISY_ITERATIONS`) if any series'
    estimated noise exceeds :data:`NOISE_THRESHOLD` x its peak |phase|, else
    ("source", :data:`DEFAULT_ITERATIONS`)."""
    for phases, _, _ in series:
        peak = float(phases.abs().amax())
        if peak > 0 and phase_noise(phases) > NOISE_THRESHOLD * peak:
            return "box", NOISY_ITERATIONS
    return "source", DEFAULT_ITERATIONS


def _cgls(
    induction_t: torch.Tensor, series: Series, voxel_size_nm: float, model: str
) -> Iterator[torch.Tensor]:
    """CGLS on A u = y: yields u before the first step and after each.  ``model`` "source":
    u is the source (T) of ``induction_t``; "box": u is the divergence-free part of
    ``induction_t`` taken as its own source, updates kept divergence free."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    box = model == "box"
    start = induction_t.detach()
    source = solenoidal_part(start) if box else source_of_field(start)
    measured = [_zero_mean(p.to(source.dtype)) for p, _, _ in series]

    def adjoint(residual: list[torch.Tensor]) -> torch.Tensor:
        gradient = _adjoint(residual, source, series, voxel_size_nm)
        return solenoidal_part(gradient) if box else gradient

    with torch.no_grad():
        residual = [
            y - m for y, m in zip(measured, _forward(source, series, voxel_size_nm), strict=True)
        ]
    gradient = adjoint(residual)
    direction = gradient
    norm_sq = (gradient**2).sum()
    while True:
        yield source
        if norm_sq <= 0:
            return
        with torch.no_grad():
            image = _forward(direction, series, voxel_size_nm)
        curvature = sum((q**2).sum() for q in image)
        if curvature <= 0:
            return
        step = norm_sq / curvature
        source = source + step * direction
        residual = [r - step * q for r, q in zip(residual, image, strict=True)]
        gradient = adjoint(residual)
        new_norm_sq = (gradient**2).sum()
        direction = gradient + (new_norm_sq / norm_sq) * direction
        norm_sq = new_norm_sq


def refine_source(
    induction_t: torch.Tensor,
    series: Series,
    voxel_size_nm: float,
    iterations: int = DEFAULT_ITERATIONS,
) -> torch.Tensor:
    """Source u (T) [3, N, N, N] after ``iterations`` CGLS steps of the source model from the
    source of ``induction_t`` (T) (see the module docstring)."""
    result = induction_t
    for step, source in enumerate(_cgls(induction_t, series, voxel_size_nm, "source")):
        result = source
        if step >= iterations:
            break
    return result.detach()


def refine(
    induction_t: torch.Tensor,
    series: Series,
    voxel_size_nm: float,
    iterations: int | None = None,
    model: str | None = None,
) -> torch.Tensor:
    """Refined induction (T) [3, N, N, N], divergence free on the box.

    ``model`` "source" (:func:`refine_source`, the induction of the fitted source) or "box"
    (the box's B fitted as its own source); ``iterations`` CGLS steps; None picks each from
    :func:`plan_for`.  ``iterations`` = 0 returns the divergence-free part of ``induction_t``.
    """
    planned_model, planned_iterations = plan_for(series)
    model = model or planned_model
    iterations = planned_iterations if iterations is None else iterations
    if iterations <= 0:
        return solenoidal_part(induction_t.detach())
    if model == "source":
        source = refine_source(induction_t, series, voxel_size_nm, iterations)
        with torch.no_grad():
            return solenoidal_part(field_of_source(source))
    result = induction_t
    for step, field in enumerate(_cgls(induction_t, series, voxel_size_nm, model)):
        result = field
        if step >= iterations:
            break
    return result.detach()
