"""The forward problem of SIPRAD for one (image shape, microscope) pair.

The networks model a *field* that the FFT treats as periodic; the measured image
is a window of the field's simulated image.  Two boundaries:

* ``periodic``: field = image window (wrap-around at the edges);
* ``pad``: the networks model a field ``pad`` px larger on each side; the margin
  is free, so the window needs not be periodic.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lorentz_live.physics import MicroscopeParams, forward_image, transfer_function

#: Transfer functions kept per reconstructor.
TRANSFER_CACHE = 8


class TransferCache:
    """T(k) [H, W] complex64 per (shape, params), least recently used dropped."""

    def __init__(self, device: torch.device, size: int = TRANSFER_CACHE) -> None:
        self.device = device
        self.size = size
        self._items: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def __call__(self, shape: tuple[int, int], params: MicroscopeParams) -> torch.Tensor:
        """T(k) for ``shape`` and ``params`` (computed once, then cached)."""
        key = (tuple(shape), params)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = transfer_function(tuple(shape), params, device=self.device)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


@dataclass
class ForwardProblem:
    """Pads, crops and simulates for one image shape and microscope.

    shape : measured image [H, W], pixels.  pad : model margin per side, pixels
    (``pad`` boundary).  transfer : T(k) of the simulated field.
    """

    shape: tuple[int, int]
    pad: int
    transfer: torch.Tensor

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        params: MicroscopeParams,
        boundary: str,
        pad_fraction: float,
        transfers: TransferCache,
    ) -> ForwardProblem:
        """The problem for ``boundary`` (``"periodic"`` or ``"pad"``)."""
        height, width = shape
        pad = 0
        if boundary == "pad":
            pad = max(8, math.ceil(pad_fraction * max(height, width)))
            pad = min(pad, height - 1, width - 1)
        field = (height + 2 * pad, width + 2 * pad)
        return cls((height, width), pad, transfers(field, params))

    @property
    def model_shape(self) -> tuple[int, int]:
        """Shape the networks output, pixels."""
        return (self.shape[0] + 2 * self.pad, self.shape[1] + 2 * self.pad)

    def extend(self, x: torch.Tensor) -> torch.Tensor:
        """A measured-size map [H, W] -> the model's size (reflected margin)."""
        if self.pad == 0:
            return x
        p = self.pad
        return F.pad(x[None, None], (p, p, p, p), mode="reflect")[0, 0]

    def measured(self, x: torch.Tensor) -> torch.Tensor:
        """A model-size map [..., H', W'] -> the measured window [..., H, W]."""
        height, width = self.shape
        return x[..., self.pad : self.pad + height, self.pad : self.pad + width]

    def simulate(self, phase: torch.Tensor, amplitude: torch.Tensor | None) -> torch.Tensor:
        """Mean-normalised image [H, W] of the measured window for a model-size phase (rad)."""
        fit = self.measured(forward_image(phase, self.transfer, amplitude, normalise=False))
        return fit / fit.mean()
