"""MagNet's 3D U-Net (paper Fig. 1d, in PyTorch): B_in (3 channels) -> B_out.

Two 3x3x3 convolutions (+ ReLU) per level, max pooling down, transposed
convolutions up with skip concatenation, as in the paper; it predicts a
correction added to its input (residual) and the result is projected onto
divergence-free fields, so B_out has div B = 0 (spectrally, on the box).
"""

from __future__ import annotations

import torch
from torch import nn

from lorentz_live.tomo.fields import solenoidal_part


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(channels_in, channels_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv3d(channels_out, channels_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet3D(nn.Module):
    """3D U-Net on [batch, 3, N, N, N] with ``levels`` poolings (N divisible by 2**levels).

    ``base`` channels at full resolution, doubled per level.
    """

    def __init__(self, base: int = 16, levels: int = 3) -> None:
        super().__init__()
        self.base, self.levels = base, levels
        widths = [base * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList()
        channels = 3
        for width in widths[:-1]:
            self.down.append(_block(channels, width))
            channels = width
        self.bottom = _block(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose3d(width * 2, width, 2, stride=2))
            self.merge.append(_block(width * 2, width))
        self.head = nn.Conv3d(base, 3, 1)
        nn.init.zeros_(self.head.weight)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)

    def forward(self, b_in: torch.Tensor) -> torch.Tensor:
        """Normalised B_in [batch, 3, N, N, N] -> divergence-free B_out, same shape."""
        skips = []
        x = b_in
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool3d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return solenoidal_part(b_in + self.head(x))
