"""The deep image prior (DIP) of SIPRAD: a small convolutional encoder-decoder.

The network maps an input map [1, C_in, H, W] to an output map [1, C_out, H, W]
of the same size.  Any H, W works: the input is reflect-padded internally to a
multiple of 2**depth (at least 2 x 2**depth) and the output cropped back, so the reference
implementation's "multiple of 16" restriction does not apply here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_SEEDED_INIT = threading.Lock()


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build torch modules reproducibly from ``seed``, also with several threads.

    Default initialisers draw from torch's global RNG; this seeds it, serialises
    the construction across threads (the live engine builds SIPRAD and the
    amortised network concurrently) and restores the global RNG afterwards.
    """
    with _SEEDED_INIT, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of one DIP.

    Parameters
    ----------
    width : channels of the first level; level i has ``width * 2**i`` channels,
        capped at ``max_width``.
    depth : number of down-sampling levels (the padding multiple is 2**depth).
    max_width : channel cap.
    skip : add encoder features to the decoder at each level (U-Net-like, additive).
        ``False`` is the reference's plain encoder-decoder.
    """

    width: int = 8
    depth: int = 4
    max_width: int = 32
    skip: bool = False


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: with a batch of one image BatchNorm's train and
    # eval modes differ and it carries running statistics; GroupNorm is stateless.
    return nn.GroupNorm(4 if channels % 4 == 0 else 1, channels)


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    # in-place activations: each follows a GroupNorm, whose backward needs its input,
    # not its output (same numbers, fewer allocations)
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, padding_mode="reflect"),
        _norm(channels_out),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, padding_mode="reflect"),
        _norm(channels_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class DeepImagePrior(nn.Module):
    """Encoder-decoder CNN used as a deep image prior.

    Parameters
    ----------
    in_channels, out_channels : channels of the input and output maps.
    config : :class:`NetworkConfig`.

    Notes
    -----
    Down-sampling by stride-2 convolutions, up-sampling by bilinear interpolation
    followed by a 3x3 convolution (no transposed convolutions, whose uneven
    overlap prints checkerboards into a phase map).  The last layer is a 1x1
    convolution without activation, so the output range is unbounded.
    Weights and activations are kept channels-last: oneDNN's CPU convolutions
    run about 30 % faster so (benchmarks/accuracy.py speed section).
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, config: NetworkConfig | None = None
    ):
        super().__init__()
        self.config = config or NetworkConfig()
        cfg = self.config
        if cfg.depth < 1 or cfg.width < 1:
            raise ValueError(f"depth and width must be >= 1, got {cfg.depth}, {cfg.width}")
        widths = [min(cfg.width * 2**level, cfg.max_width) for level in range(cfg.depth + 1)]
        self.stem = _block(in_channels, widths[0])
        self.down = nn.ModuleList()
        for level in range(cfg.depth):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(widths[level], widths[level + 1], 3, stride=2, padding=1),
                    _norm(widths[level + 1]),
                    nn.LeakyReLU(0.2, inplace=True),
                    _block(widths[level + 1], widths[level + 1]),
                )
            )
        self.up = nn.ModuleList()
        for level in reversed(range(cfg.depth)):
            self.up.append(_block(widths[level + 1], widths[level]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # channels-last weights (see Notes)
                module.weight.data = module.weight.data.contiguous(
                    memory_format=torch.channels_last
                )

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this, pixels."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C_in, H, W] -> [N, C_out, H, W], any H, W >= 1."""
        height, width = x.shape[-2:]
        # padded to a multiple of 2**depth and to at least twice that, so the
        # deepest level is >= 2 px (its reflect-padded convolutions need it)
        pad_y = max(2 * self.multiple, height + (-height) % self.multiple) - height
        pad_x = max(2 * self.multiple, width + (-width) % self.multiple) - width
        if pad_y or pad_x:
            # reflect needs pad < size; fall back to replicate for tiny inputs
            mode = "reflect" if pad_y < height and pad_x < width else "replicate"
            x = F.pad(x, (0, pad_x, 0, pad_y), mode=mode)
        features = [self.stem(x.contiguous(memory_format=torch.channels_last))]
        for layer in self.down:
            features.append(layer(features[-1]))
        out = features.pop()
        for layer in self.up:
            skip = features.pop()
            out = F.interpolate(out, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            out = layer(out)
            if self.config.skip:
                out = out + skip
        return self.head(out)[..., :height, :width]


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
