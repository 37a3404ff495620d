"""Simulated tilt series for the camera bridge: ``lorentz-bridge simulate-tilt``.

A texture of the tomography library (``lorentz_live.tomo.textures``) in an N^3
box (voxel = camera pixel) is tilted about x from -limit to +limit in ``step``
increments, then about y; each frame is the defocused LTEM image of the tilted
sample (``lorentz_live.physics.simulate_image``), its header says
``series_role`` tilt_x / tilt_y, ``series_id`` and ``tilt_x_deg`` / ``tilt_y_deg``,
so the bridge sends series_start / series_end around each series.  By default the
phase is the magnetic one only (as after separating phi_e with a reversed
series); ``electrostatic`` adds phi_e and absorption of the tilted thickness.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acquisition_bridge.protocol import Frame
from acquisition_bridge.sources import EndOfSource, Pacer, Source, SourceError
from lorentz_live.physics import (
    MU0_H_PER_M,
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    electrostatic_phase,
    simulate_image,
)
from lorentz_live.tomo.projector import project, tilt_phase
from lorentz_live.tomo.textures import CLASSES, generate_sample


class TiltSeriesSource(Source):
    """Bridge source publishing an x then a y tilt series of one library texture."""

    name = "simulate-tilt"
    description = "simulated x and y tilt series of a 3D magnetic texture (lorentz_live)"

    def __init__(
        self,
        *,
        size_px: int = 64,
        texture: str = "skyrmion_tube",
        limit_deg: float = 60.0,
        step_deg: float = 5.0,
        params: MicroscopeParams | None = None,
        dose_e_per_px: float = 0.0,
        electrostatic: bool = False,
        seed: int = 0,
        fps: float | None = 2.0,
        truth: Path | None = None,
    ) -> None:
        if texture not in CLASSES:
            raise SourceError(f"unknown texture {texture!r}; known: {', '.join(CLASSES)}")
        if not 0 < limit_deg <= 90 or not 0 < step_deg <= limit_deg:
            raise SourceError(f"need 0 < step <= limit <= 90 deg, got {step_deg}, {limit_deg}")
        if size_px < 16:
            raise SourceError(f"--size must be >= 16 px, got {size_px}")
        self.size_px, self.texture, self.seed = size_px, texture, seed
        self.params = params or MicroscopeParams(pixel_size_nm=5.0, defocus_nm=-0.5e6)
        self.dose_e_per_px, self.electrostatic = dose_e_per_px, electrostatic
        count = round(limit_deg / step_deg)
        angles = [step_deg * i for i in range(-count, count + 1)]
        self.plan = [("x", a) for a in angles] + [("y", a) for a in angles]
        self.truth_path = truth
        self._pacer = Pacer(fps)
        self._rng = np.random.default_rng(seed)
        self._index = 0
        self._mu0_m: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=64, help="frame size = box edge, px")
        parser.add_argument("--texture", choices=CLASSES, default="skyrmion_tube")
        parser.add_argument("--limit-deg", type=float, default=60.0, help="tilt range +-, deg")
        parser.add_argument("--step-deg", type=float, default=5.0)
        parser.add_argument("--pixel-size-nm", type=float, default=5.0)
        parser.add_argument("--defocus-nm", type=float, default=-0.5e6)
        parser.add_argument("--kv", type=float, default=200.0)
        parser.add_argument("--dose", type=float, default=0.0, help="e/px (0: noise-free)")
        parser.add_argument("--electrostatic", action="store_true", help="add phi_e, absorption")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--truth", type=Path, help="write the true B and mask (.npz)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TiltSeriesSource:
        params = MicroscopeParams(
            kv=args.kv, pixel_size_nm=args.pixel_size_nm, defocus_nm=args.defocus_nm
        )
        fps = 2.0 if args.fps is None else args.fps
        return cls(
            size_px=args.size,
            texture=args.texture,
            limit_deg=args.limit_deg,
            step_deg=args.step_deg,
            params=params,
            dose_e_per_px=args.dose,
            electrostatic=args.electrostatic,
            seed=args.seed,
            fps=fps,
            truth=args.truth,
        )

    def __enter__(self) -> TiltSeriesSource:
        sample = generate_sample(self.texture, self.size_px, self.seed)
        self._mu0_m = MU0_H_PER_M * sample.magnetisation_a_per_m
        self._mask = sample.mask.float()
        if self.truth_path is not None:
            np.savez(
                self.truth_path,
                b=sample.induction_t.numpy(),
                mask=sample.mask.numpy(),
                pixel_size_nm=self.params.pixel_size_nm,
            )
        return self

    def metadata(self, axis: str, angle_deg: float) -> dict[str, Any]:
        """Header keys of the frame at ``angle_deg`` about ``axis``."""
        return {
            **self.params.to_dict(),
            "series_id": f"tilt-{axis}-{self.texture}-seed{self.seed}",
            "series_role": f"tilt_{axis}",
            "series_tilts": len(self.plan) // 2,
            "tilt_x_deg": angle_deg if axis == "x" else 0.0,
            "tilt_y_deg": angle_deg if axis == "y" else 0.0,
            "extra": {"simulated": True, "texture": self.texture, "frame_index": self._index},
        }

    def image(self, axis: str, angle_deg: float) -> np.ndarray:
        """Mean-normalised defocused image of the sample tilted by ``angle_deg`` about ``axis``."""
        if self._mu0_m is None or self._mask is None:
            raise RuntimeError("use the source as a context manager")
        pixel = self.params.pixel_size_nm
        phase = tilt_phase(self._mu0_m, [angle_deg], axis, pixel)[0]
        amplitude = None
        if self.electrostatic:
            thickness = project(self._mask, [angle_deg], axis, pixel)[0]
            material = Material()
            phase = phase + electrostatic_phase(thickness, material, self.params.kv)
            amplitude = amplitude_from_thickness(thickness, material)
        intensity = simulate_image(phase, self.params, amplitude).numpy()
        if self.dose_e_per_px > 0:
            counts = self._rng.poisson(self.dose_e_per_px * np.clip(intensity, 0.0, None))
            return np.minimum(counts, np.iinfo(np.uint16).max).astype("<u2")
        return intensity.astype("<f4")

    def read(self, timeout_s: float) -> Frame | None:
        if self._index >= len(self.plan):
            raise EndOfSource
        if not self._pacer.wait(timeout_s):
            return None
        axis, angle = self.plan[self._index]
        frame = Frame(self.image(axis, angle), self.metadata(axis, angle))
        self._index += 1
        return frame
