"""MagNet inference: VFET result -> 3D U-Net -> divergence-free B_out, at any box size.

The shipped weights (``weights/magnet32.pt``, model card docs/magnet-model-card.md)
were trained on 32^3 boxes; other sizes are resampled to the model's box and back
(trilinear).  Fields are divided by :func:`normalisation` before the network and
multiplied back after it, so the model works in tesla at any field strength.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lorentz_live.tomo.symmetry import ALL, inverse, transform_field
from lorentz_live.tomo.unet import UNet3D

WEIGHTS = Path(__file__).resolve().parent / "weights" / "magnet32.pt"


#: Quantile of |B| over the box used as the field scale (robust to noise spikes).
SCALE_QUANTILE = 0.995


def normalisation(b_in: torch.Tensor) -> torch.Tensor:
    """Field scale (T) of ``b_in`` [3, N, N, N]: the :data:`SCALE_QUANTILE` quantile of |B|."""
    magnitude = torch.linalg.vector_norm(b_in.float(), dim=0).reshape(-1)
    return torch.quantile(magnitude, SCALE_QUANTILE).clamp_min(1e-12).to(b_in.dtype)


def load_model(path: str | Path = WEIGHTS) -> tuple[UNet3D, int]:
    """(model in eval mode, its box size in voxels) from a checkpoint written by training."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=False)
    model = UNet3D(checkpoint["base_channels"], checkpoint["levels"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, int(checkpoint["size"])


def _resample(field: torch.Tensor, size: int) -> torch.Tensor:
    if field.shape[-1] == size:
        return field
    return torch.nn.functional.interpolate(
        field[None], size=(size, size, size), mode="trilinear", align_corners=False
    )[0]


@torch.no_grad()
def magnet(
    b_in: torch.Tensor, model: UNet3D, model_size: int, symmetries: tuple[int, ...] = ALL
) -> torch.Tensor:
    """B_out (T) [3, N, N, N] from the VFET result ``b_in`` (T) [3, N, N, N], any N.

    symmetries : transforms of :mod:`lorentz_live.tomo.symmetry` averaged over
        (test-time augmentation): the network sees each transformed input, its
        output is transformed back, and the outputs are averaged.  The default,
        all 16, costs 16 network passes and lowered MagNet's median NRMSE at
        +-60 deg (docs/benchmarks.md, tomo section); ``(0,)``: one plain pass.
    """
    if not symmetries:
        raise ValueError("symmetries must name at least one transform")
    size = b_in.shape[-1]
    scale = normalisation(b_in)
    dtype = next(model.parameters()).dtype
    total = torch.zeros_like(b_in)
    for index in symmetries:
        x = _resample(transform_field(b_in / scale, index), model_size).to(dtype)
        y = _resample(model(x[None])[0], size).to(b_in.dtype)
        total += transform_field(y, inverse(index))
    return total * (scale / len(symmetries))
