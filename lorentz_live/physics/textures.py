"""Synthetic magnetisation textures for simulation and tests.

Every texture is a unit-vector field [3, H, W] = (m_x, m_y, m_z), arrays [y, x],
periodic over the field of view (so the FFT forward model sees no edges).
Lengths are in nm, angles in rad.  Helicity gamma sets the in-plane direction
at azimuth alpha around a bubble: m_inplane ~ (cos(alpha + gamma), sin(alpha + gamma)).
gamma = +pi/2 is a counter-clockwise Bloch bubble (x right, y increasing with
the row index), gamma = 0 an outward Neel bubble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

BLOCH_CCW = math.pi / 2
BLOCH_CW = -math.pi / 2
NEEL_OUT = 0.0
NEEL_IN = math.pi


@dataclass(frozen=True)
class Bubble:
    """One bubble: centre (nm), radius (nm), helicity gamma (rad)."""

    y_nm: float
    x_nm: float
    radius_nm: float
    helicity_rad: float = BLOCH_CCW


def _periodic_offsets(
    shape: tuple[int, int], pixel_size_nm: float, y_nm: float, x_nm: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-image (dy, dx) in nm from a point to every pixel."""
    height, width = shape
    size_y, size_x = height * pixel_size_nm, width * pixel_size_nm
    y = torch.arange(height, dtype=dtype)[:, None] * pixel_size_nm
    x = torch.arange(width, dtype=dtype)[None, :] * pixel_size_nm
    dy = torch.remainder(y - y_nm + size_y / 2, size_y) - size_y / 2
    dx = torch.remainder(x - x_nm + size_x / 2, size_x) - size_x / 2
    return dy.expand(height, width), dx.expand(height, width)


def bubble_texture(
    shape: tuple[int, int],
    pixel_size_nm: float,
    bubbles: list[Bubble],
    *,
    wall_width_nm: float = 10.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Bubbles (core m_z = -1) in a background m_z = +1, each pixel set by its nearest bubble.

    Polar angle theta(r) = 2 atan(exp((R - r) / w)): a 180 degree wall of width
    ``wall_width_nm`` at r = R.  Bubbles should not overlap.
    """
    nearest = torch.full(shape, float("inf"), dtype=dtype)
    theta = torch.zeros(shape, dtype=dtype)
    azimuth = torch.zeros(shape, dtype=dtype)
    for bubble in bubbles:
        dy, dx = _periodic_offsets(shape, pixel_size_nm, bubble.y_nm, bubble.x_nm, dtype)
        r = torch.sqrt(dy**2 + dx**2)
        # nearest by distance to the wall relative to size, so small bubbles keep their walls
        closer = (r / bubble.radius_nm) < nearest
        nearest = torch.where(closer, r / bubble.radius_nm, nearest)
        theta = torch.where(
            closer, 2.0 * torch.atan(torch.exp((bubble.radius_nm - r) / wall_width_nm)), theta
        )
        azimuth = torch.where(closer, torch.atan2(dy, dx) + bubble.helicity_rad, azimuth)
    if not bubbles:
        return torch.stack([torch.zeros(shape, dtype=dtype)] * 2 + [torch.ones(shape, dtype=dtype)])
    sin_theta = torch.sin(theta)
    return torch.stack(
        [sin_theta * torch.cos(azimuth), sin_theta * torch.sin(azimuth), torch.cos(theta)]
    )


def hexagonal_lattice(
    shape: tuple[int, int],
    pixel_size_nm: float,
    spacing_nm: float,
    radius_nm: float,
    *,
    jitter_nm: float = 0.0,
    vacancy_fraction: float = 0.0,
    helicity: str | float = "ccw",
    seed: int = 0,
) -> list[Bubble]:
    """Bubbles on a hexagonal lattice that tiles the periodic field of view.

    Row and column counts are rounded so the lattice is periodic (spacing
    adjusted by at most a few %).  ``jitter_nm``: Gaussian position noise (std);
    ``vacancy_fraction``: share of sites left empty; ``helicity``: "ccw", "cw",
    "random" (Bloch, either sense, as in CGT) or an angle gamma in rad.
    """
    rng = np.random.default_rng(seed)
    height_nm, width_nm = shape[0] * pixel_size_nm, shape[1] * pixel_size_nm
    columns = max(1, round(width_nm / spacing_nm))
    rows = max(2, 2 * round(height_nm / (spacing_nm * math.sqrt(3.0))))
    step_x, step_y = width_nm / columns, height_nm / rows
    bubbles = []
    for row in range(rows):
        for column in range(columns):
            if rng.random() < vacancy_fraction:
                continue
            dy, dx = rng.normal(0.0, jitter_nm, size=2) if jitter_nm > 0 else (0.0, 0.0)
            x = (column + 0.5 * (row % 2)) * step_x + dx
            y = row * step_y + dy
            bubbles.append(Bubble(y % height_nm, x % width_nm, radius_nm, _helicity(helicity, rng)))
    return bubbles


def _helicity(helicity: str | float, rng: np.random.Generator) -> float:
    if isinstance(helicity, (int, float)):
        return float(helicity)
    choices = {"ccw": BLOCH_CCW, "cw": BLOCH_CW, "neel": NEEL_OUT}
    if helicity == "random":
        return BLOCH_CCW if rng.random() < 0.5 else BLOCH_CW
    if helicity not in choices:
        raise ValueError(
            f"helicity must be 'ccw', 'cw', 'neel', 'random' or an angle, got {helicity!r}"
        )
    return choices[helicity]


def stripe_domains(
    shape: tuple[int, int],
    pixel_size_nm: float,
    period_nm: float,
    *,
    wall_width_nm: float = 10.0,
    disorder: float = 0.0,
    chirality: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Up/down stripe or labyrinth domains separated by Bloch walls, [3, H, W].

    ``disorder`` = 0 gives straight stripes along y (period rounded to tile the
    width); 1 gives a labyrinth from band-pass filtered noise at the same period.
    The wall profile is m_z = tanh(s / w) with s the signed distance to the wall,
    and the in-plane wall moment points along the wall (z x n) times ``chirality``.
    """
    height, width = shape
    rng = np.random.default_rng(seed)
    k_y = torch.fft.fftfreq(height, d=pixel_size_nm, dtype=torch.float64)[:, None]
    k_x = torch.fft.fftfreq(width, d=pixel_size_nm, dtype=torch.float64)[None, :]
    periods = max(1, round(width * pixel_size_nm / period_nm))
    x = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    field = torch.cos(2.0 * math.pi * periods * x / width)
    if disorder > 0:
        k0 = 1.0 / period_nm
        k_mag = torch.sqrt(k_y**2 + k_x**2)
        band = torch.exp(-0.5 * ((k_mag - k0) / (0.15 * k0)) ** 2)
        noise = torch.from_numpy(rng.standard_normal(shape))
        labyrinth = torch.fft.ifft2(torch.fft.fft2(noise) * band).real
        labyrinth = labyrinth / labyrinth.std() * math.sqrt(0.5)
        field = (1.0 - disorder) * field + disorder * labyrinth
    field_k = torch.fft.fft2(field)
    grad_y = torch.fft.ifft2(2j * math.pi * k_y * field_k).real
    grad_x = torch.fft.ifft2(2j * math.pi * k_x * field_k).real
    grad_norm = torch.sqrt(grad_y**2 + grad_x**2).clamp_min(1e-12)
    signed_distance = field / grad_norm
    m_z = torch.tanh(signed_distance / wall_width_nm)
    in_plane = torch.sqrt(torch.clamp(1.0 - m_z**2, min=0.0)) * chirality
    m_x = -in_plane * grad_y / grad_norm
    m_y = in_plane * grad_x / grad_norm
    return torch.stack([m_x, m_y, m_z]).to(dtype)
