"""What benchmarks/live.py and benchmarks/live_amortised.py share: the issue's movie
(#12) and a wrapper that keeps SIPRAD's own result.

40 frames, 128 px, of a drifting Bloch-bubble lattice losing bubbles, as the
issue describes it: 6 nm pixels, defocus -0.6 mm (underfocus: negative in
docs/conventions.md), Gaussian noise sigma / mean = 0.3.  The field of
lorentz_live.simulator is held at 100 mT (100 K) for the first 20 frames, then
rises to 290 mT (bubbles shrink and vanish one by one: collapse at 300 mT);
stage drift (2, -1) nm/frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lorentz_live.live.interface import Estimate, LiveFrame
from lorentz_live.live.methods import SipradMethod
from lorentz_live.physics import MicroscopeParams
from lorentz_live.simulator import FieldCoolingMovie, FieldCoolingSettings, SimulatedFrame

PARAMS = MicroscopeParams(pixel_size_nm=6.0, defocus_nm=-6.0e5)
ISSUE_FRAMES = 40
ISSUE_NOISE = 0.3


def issue_movie(
    seed: int,
    frames: int = ISSUE_FRAMES,
    size: int = 128,
    noise: float = ISSUE_NOISE,
    params: MicroscopeParams = PARAMS,
) -> list[SimulatedFrame]:
    """The issue's movie (module text) for lattice seed ``seed`` (noise seed 1000 + seed).

    Images are float32 intensities: the noise-free image plus Gaussian noise
    of ``noise`` x its mean.  ``params``: the microscope of every frame (the
    texture does not depend on it).
    """
    settings = FieldCoolingSettings(
        size_px=size,
        params=params,
        ramp_frames=max(2, frames),
        temperature_start_k=100.0,
        temperature_end_k=100.0,
        field_start_mt=100.0,
        field_end_mt=290.0,
        dose_e_per_px=0.0,
        stage_drift_nm=(2.0, -1.0),
        seed=seed,
    )
    movie = FieldCoolingMovie(settings)
    rng = np.random.default_rng(1000 + seed)
    out = []
    for _ in range(frames):
        frame = movie.next()
        clean = frame.image.astype(np.float64)
        image = clean + noise * clean.mean() * rng.standard_normal(clean.shape)
        out.append(dataclasses.replace(frame, image=image.astype(np.float32)))
    return out


class Spy:
    """Wraps a refiner and keeps its last estimate: what SIPRAD made, before the
    engine's publish guard."""

    method = "siprad"

    def __init__(self, inner: SipradMethod) -> None:
        self.inner = inner
        self.last: Estimate | None = None

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate:
        self.last = self.inner.reconstruct(frame, image)
        return self.last

    def request_restart(self, reason: str) -> None:
        self.inner.request_restart(reason)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
