"""MagNet inference: VFET result -> 3D U-Net -> divergence-free B_out, at any box size.

The shipped weights (``weights/magnet32.pt``, model card docs/magnet-model-card.md)
were trained on 32^3 boxes; other sizes are resampled to the model's box and back
(trilinear).  Fields are divided by :func:`normalisation` before the network and
multiplied back after it, so the model works in tesla at any field strength.
"""

from __future__ import annotations

from pathlib import Path

import torch

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
def magnet(b_in: torch.Tensor, model: UNet3D, model_size: int) -> torch.Tensor:
    """B_out (T) [3, N, N, N] from the VFET result ``b_in`` (T) [3, N, N, N], any N."""
    size = b_in.shape[-1]
    scale = normalisation(b_in)
    dtype = next(model.parameters()).dtype
    x = _resample(b_in / scale, model_size).to(dtype)
    y = model(x[None])[0]
    return (_resample(y, size) * scale).to(b_in.dtype)
