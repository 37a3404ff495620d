"""Integrated in-plane induction from the magnetic phase (SIPRAD eq. 4) and its
colour-wheel rendering.

(B_x, B_y) = (Phi_0 / pi) (-d phi_m / dy, d phi_m / dx), integrated along the beam,
returned in T nm (tesla times nanometre of sample).  Axes [y, x] as everywhere.
"""

from __future__ import annotations

import math

import torch

from lorentz_live.physics.constants import FLUX_QUANTUM_WB, NM


def integrated_induction(
    phase: torch.Tensor, pixel_size_nm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B_x, B_y) in T nm from phi_m in rad on pixels of ``pixel_size_nm``.

    Central differences inside, one-sided at the edges (no periodicity assumed).
    Shape [..., H, W] in and out; differentiable.
    """
    spacing_m = pixel_size_nm * NM
    dphi_dy, dphi_dx = torch.gradient(phase, spacing=spacing_m, dim=(-2, -1))
    scale = FLUX_QUANTUM_WB / math.pi / NM  # T m^2 -> T nm after multiplying by 1/m
    return -scale * dphi_dy, scale * dphi_dx


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] -> RGB [..., 3] in [0, 1] (vectorised, no branches)."""
    channel_offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device)
    k = torch.remainder(channel_offsets + hue.unsqueeze(-1) * 6.0, 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return value.unsqueeze(-1) * (1.0 - saturation.unsqueeze(-1) * ramp)


def colour_wheel_rgb(
    b_x: torch.Tensor, b_y: torch.Tensor, *, max_magnitude: float | None = None
) -> torch.Tensor:
    """RGB [..., H, W, 3] in [0, 1]: hue = direction, brightness = magnitude.

    Hue is atan2(B_y, B_x) mapped to [0, 1): +x red, +y yellow-green (hue 1/4),
    -x cyan, -y violet.  Brightness is |B| / ``max_magnitude`` clipped to 1; the
    default scale is the 99.5th percentile of |B| so one hot pixel does not
    darken the map.  Zero field is black.
    """
    magnitude = torch.sqrt(b_x**2 + b_y**2)
    if max_magnitude is None:
        flat = magnitude.reshape(*magnitude.shape[:-2], -1)
        scale = torch.quantile(flat.float(), 0.995, dim=-1).to(magnitude.dtype)[..., None, None]
    else:
        scale = torch.as_tensor(max_magnitude, dtype=magnitude.dtype, device=magnitude.device)
    value = torch.clamp(
        magnitude / torch.clamp(scale, min=torch.finfo(magnitude.dtype).tiny), 0.0, 1.0
    )
    hue = torch.remainder(torch.atan2(b_y, b_x) / (2.0 * math.pi), 1.0)
    return _hsv_to_rgb(hue, torch.ones_like(hue), value)


def colour_wheel_legend(size_px: int = 128, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Legend disc [size, size, 3]: the colour of a field pointing from the centre.

    Rendered by :func:`colour_wheel_rgb` itself on the field B = r (radius
    normalised to 1 at the rim, black outside), so legend and maps cannot disagree;
    displayed with the same axis orientation as the maps.
    """
    coords = torch.linspace(-1.0, 1.0, size_px, dtype=dtype)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    inside = (x**2 + y**2) <= 1.0
    rgb = colour_wheel_rgb(x * inside, y * inside, max_magnitude=1.0)
    return rgb
