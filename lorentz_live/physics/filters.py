"""Small image filters in torch (differentiable, batched over leading dims)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_filter(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of the last two axes, reflect-padded at the edges.

    ``sigma_px`` in pixels; 0 returns the input unchanged.  Truncated at 4 sigma.
    """
    if sigma_px <= 0:
        return image
    radius = max(1, math.ceil(4.0 * sigma_px))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    height, width = image.shape[-2:]
    flat = image.reshape(-1, 1, height, width)
    pad_y, pad_x = min(radius, height - 1), min(radius, width - 1)
    flat = F.pad(flat, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    # zero-pad what reflection could not cover (images smaller than the kernel)
    flat = F.pad(
        flat, (radius - pad_x, radius - pad_x, radius - pad_y, radius - pad_y), mode="replicate"
    )
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(image.shape)


def mirror_pad(image: torch.Tensor) -> torch.Tensor:
    """[..., H, W] -> [..., 2H, 2W] mirrored copy that is continuous when periodic.

    Used before FFT-based solvers so that a non-periodic image has no edge jump.
    """
    top = torch.cat([image, image.flip(-1)], dim=-1)
    return torch.cat([top, top.flip(-2)], dim=-2)
