"""What the live engine exchanges with its reconstruction methods.

A method (Wiener-SITIE, warm-started SIPRAD, the amortised network) is anything
with a ``method`` name and a ``reconstruct(frame, image)`` that returns an
:class:`Estimate`; :class:`lorentz_live.live.engine.LiveEngine` turns estimates
into published :class:`~lorentz_live.live.engine.LiveResult` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from lorentz_live.physics import MicroscopeParams


@dataclass(frozen=True)
class LiveFrame:
    """One camera frame as the engine sees it (the wire's frame, decoded).

    image : [H, W] intensities (any real dtype).  params : imaging conditions.
    seq : the source's frame counter.  timestamp_ns : camera time (UTC, ns).
    metadata : the rest of the frame header (temperature, field, ...), passed through.
    average : the instant method's drift-registered running mean of the frames
        up to this one (mean-normalised [H, W]), set by the engine for the
        refiner when it has one (``LiveConfig.refine_input``); None otherwise.
    """

    image: np.ndarray
    params: MicroscopeParams
    seq: int
    timestamp_ns: int
    metadata: dict[str, Any] = field(default_factory=dict)
    average: torch.Tensor | None = None


@dataclass
class Estimate:
    """One method's answer for one frame; arrays float32 [H, W] on the CPU.

    phi_m : magnetic phase, rad.  image_fit : forward-model image of it
    (mean-normalised).  loss : per-iteration image misfit (empty for one-pass
    methods).  warm : the method continued from its previous frame;
    ``restart_reason`` says why not.  drift_px : (dy, dx) shift measured from the
    method's previous frame, px.  average : the running mean of the frames the
    answer was computed from (mean-normalised [H, W]; instant methods), or None.
    kept_iteration : index in ``loss`` of the iterate returned (SIPRAD's held-out stop
    keeps an earlier one); None = the last.
    """

    phi_m: torch.Tensor
    image_fit: torch.Tensor
    loss: list[float]
    iterations: int
    stop_reason: str
    warm: bool = True
    restart_reason: str | None = None
    drift_px: tuple[float, float] = (0.0, 0.0)
    average: torch.Tensor | None = None
    kept_iteration: int | None = None


class Reconstructor(Protocol):
    """A live reconstruction method.

    ``reconstruct`` gets a frame and its validated float32 image [H, W] and
    returns an :class:`Estimate`, or raises :class:`lorentz_live.errors.InputError`
    for a frame it cannot use (its state then stays as it was).
    ``request_restart`` makes the next frame start from scratch (any thread).
    """

    method: str

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate: ...

    def request_restart(self, reason: str) -> None: ...


def params_change(old: MicroscopeParams | None, new: MicroscopeParams) -> str | None:
    """Why a change of imaging conditions forces a restart, or None if equal."""
    if old is None or old == new:
        return None
    changed = [
        f"{key} changed {value} -> {new.to_dict()[key]}"
        for key, value in old.to_dict().items()
        if new.to_dict()[key] != value
    ]
    return "; ".join(changed) or "microscope parameters changed"
