"""In-situ field-cooling movie: the bridge's ``simulate`` source (a plug-in).

A film is cooled through its Curie temperature in a perpendicular field, then
the field is raised at the lowest temperature.  While it cools, the
magnetisation grows as Ms(T) = Ms0 sqrt(1 - (T/Tc)^2) and bubbles nucleate on
the sites of a hexagonal lattice; while the field rises they shrink and
annihilate.  The lattice drifts, every bubble jiggles (an Ornstein-Uhlenbeck
walk whose rms grows as sqrt(T/Tc)), the stage may drift (carrying everything,
contaminants included) and the image gets Poisson shot noise at a chosen dose.

Each frame is made by the physics core: texture -> phi_m (+ phi_e and
amplitude of contaminants) -> defocused image.  The ground-truth phi_m of each
frame can be written to HDF5 (``--truth FILE.h5``): dataset ``phi_m`` [n, H, W]
(rad, float32, row i = the frame with seq i of a fresh bridge) with
``temperature_k``, ``field_mt``, ``bubbles``, ``ms_a_per_m`` and
``stage_shift_nm`` [n, 2] (y, x) beside it, and the microscope keys and
settings as attributes.

Registered as entry point ``simulate`` of the group ``acquisition_bridge.sources``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acquisition_bridge.protocol import Frame
from acquisition_bridge.sources import Pacer, Source, SourceError
from lorentz_live.errors import InputError
from lorentz_live.physics import (
    Bubble,
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    bubble_texture,
    contaminant_thickness,
    electrostatic_phase,
    film_magnetic_phase,
    forward_image,
    hexagonal_lattice,
    transfer_function,
)
from lorentz_live.physics.registration import fourier_shift

DEFAULT_PARAMS = MicroscopeParams(kv=200.0, pixel_size_nm=4.0, defocus_nm=-1.0e6)


@dataclass(frozen=True)
class FieldCoolingSettings:
    """Everything that defines a field-cooling movie; lengths in nm, per frame where noted.

    The ramp takes ``ramp_frames`` frames: in the first half T falls from
    ``temperature_start_k`` to ``temperature_end_k`` at ``field_start_mt``, in
    the second half the field rises to ``field_end_mt``; after it the state
    holds (still jiggling and drifting).  Bubbles vanish entirely at
    ``collapse_field_mt``.  ``dose_e_per_px`` = 0 gives noise-free float32
    images, otherwise uint16 electron counts.
    """

    size_px: int = 128
    params: MicroscopeParams = DEFAULT_PARAMS
    ramp_frames: int = 200
    ms_a_per_m: float = 2.0e5
    thickness_nm: float = 50.0
    curie_k: float = 280.0
    temperature_start_k: float = 300.0
    temperature_end_k: float = 100.0
    field_start_mt: float = 100.0
    field_end_mt: float = 250.0
    collapse_field_mt: float = 300.0
    spacing_nm: float = 110.0
    radius_nm: float = 35.0
    wall_width_nm: float = 8.0
    disorder_nm: float = 4.0
    jiggle_nm: float = 3.0
    jiggle_memory: float = 0.8
    lattice_drift_nm: tuple[float, float] = (0.2, 0.4)
    stage_drift_nm: tuple[float, float] = (0.0, 0.0)
    contaminants: int = 0
    dose_e_per_px: float = 200.0
    helicity: str = "random"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 16 <= self.size_px <= 4096:
            raise InputError(f"size must be 16 to 4096 px, got {self.size_px}")
        if self.ramp_frames < 2:
            raise InputError(f"the ramp needs at least 2 frames, got {self.ramp_frames}")
        if not self.dose_e_per_px >= 0 or math.isinf(self.dose_e_per_px):
            raise InputError(f"dose must be a finite number >= 0 e/px, got {self.dose_e_per_px}")
        if self.field_start_mt >= self.collapse_field_mt:
            raise InputError("field_start_mt must be below collapse_field_mt")
        if not 0 <= self.jiggle_memory < 1:
            raise InputError(f"jiggle_memory must be in [0, 1), got {self.jiggle_memory}")
        if self.curie_k <= 0 or self.temperature_end_k < 0:
            raise InputError("temperatures must be >= 0 K and the Curie temperature > 0 K")

    def conditions(self, index: int) -> tuple[float, float]:
        """(temperature_k, field_mt) of frame ``index``."""
        progress = min(index / (self.ramp_frames - 1), 1.0)
        cooling = min(2.0 * progress, 1.0)
        raising = max(2.0 * progress - 1.0, 0.0)
        temperature = self.temperature_start_k + cooling * (
            self.temperature_end_k - self.temperature_start_k
        )
        field_mt = self.field_start_mt + raising * (self.field_end_mt - self.field_start_mt)
        return temperature, field_mt

    def order(self, temperature_k: float) -> float:
        """Ms(T) / Ms0 = sqrt(1 - (T/Tc)^2) below Tc, 0 above."""
        return math.sqrt(max(0.0, 1.0 - (temperature_k / self.curie_k) ** 2))

    def field_factor(self, field_mt: float) -> float:
        """1 at the start field, falling linearly to 0 at the collapse field."""
        span = self.collapse_field_mt - self.field_start_mt
        return min(1.0, max(0.0, 1.0 - (field_mt - self.field_start_mt) / span))


@dataclass(frozen=True, eq=False)
class SimulatedFrame:
    """One frame: image (counts or intensity), phi_m (rad), conditions and bubbles."""

    index: int
    image: np.ndarray
    phi_m: np.ndarray
    temperature_k: float
    field_mt: float
    ms_a_per_m: float
    bubbles: list[Bubble]
    stage_shift_nm: tuple[float, float]


class FieldCoolingMovie:
    """Generates the frames of a field-cooling movie in order (deterministic per seed)."""

    def __init__(self, settings: FieldCoolingSettings) -> None:
        self.settings = settings
        params = settings.params
        self.shape = (settings.size_px, settings.size_px)
        self._rng = np.random.default_rng(settings.seed)
        sites = hexagonal_lattice(
            self.shape,
            params.pixel_size_nm,
            settings.spacing_nm,
            settings.radius_nm,
            helicity=settings.helicity,
            seed=settings.seed,
        )
        self._sites = np.array([(site.y_nm, site.x_nm) for site in sites])
        self._helicity = np.array([site.helicity_rad for site in sites])
        self._sites += self._rng.normal(0.0, settings.disorder_nm, self._sites.shape)
        # a site holds a bubble while the occupancy exceeds its threshold, so
        # bubbles appear one by one while cooling and vanish one by one in field
        self._threshold = self._rng.uniform(0.0, 1.0, len(sites))
        self._jiggle = np.zeros_like(self._sites)
        self._transfer = transfer_function(self.shape, params)
        self._contaminant: torch.Tensor | None = None
        if settings.contaminants > 0:
            self._contaminant = contaminant_thickness(
                self.shape, params.pixel_size_nm, count=settings.contaminants, seed=settings.seed
            )
        self._index = 0

    @property
    def size_nm(self) -> tuple[float, float]:
        pixel = self.settings.params.pixel_size_nm
        return self.shape[0] * pixel, self.shape[1] * pixel

    def next(self) -> SimulatedFrame:
        """The next frame of the movie."""
        s, index = self.settings, self._index
        params = s.params
        temperature, field_mt = s.conditions(index)
        order = s.order(temperature)
        strength = s.field_factor(field_mt)
        rms = s.jiggle_nm * math.sqrt(min(temperature / s.curie_k, 1.0))
        step = math.sqrt(1.0 - s.jiggle_memory**2) * rms
        self._jiggle = (
            s.jiggle_memory * self._jiggle + self._rng.normal(0.0, 1.0, self._jiggle.shape) * step
        )
        stage = np.array(s.stage_drift_nm) * index
        positions = (
            self._sites + self._jiggle + np.array(s.lattice_drift_nm) * index + stage
        ) % np.array(self.size_nm)
        occupied = self._threshold < min(1.0, 1.5 * order) * strength
        radius = s.radius_nm * (0.6 + 0.4 * strength)
        bubbles = [
            Bubble(float(y), float(x), radius, float(gamma))
            for (y, x), gamma in zip(positions[occupied], self._helicity[occupied], strict=True)
        ]
        texture = bubble_texture(
            self.shape, params.pixel_size_nm, bubbles, wall_width_nm=s.wall_width_nm
        )
        ms = s.ms_a_per_m * order
        phi_m = film_magnetic_phase(texture, ms, s.thickness_nm, params.pixel_size_nm)
        phase, amplitude = phi_m, None
        if self._contaminant is not None:
            thickness = fourier_shift(
                self._contaminant,
                (stage[0] / params.pixel_size_nm, stage[1] / params.pixel_size_nm),
            ).clamp_min(0.0)
            material = Material()
            phase = phi_m + electrostatic_phase(thickness, material, params.kv)
            amplitude = amplitude_from_thickness(thickness, material)
        intensity = forward_image(phase, self._transfer, amplitude).numpy()
        if s.dose_e_per_px > 0:
            counts = self._rng.poisson(s.dose_e_per_px * np.clip(intensity, 0.0, None))
            image = np.minimum(counts, np.iinfo(np.uint16).max).astype("<u2")
        else:
            image = intensity.astype("<f4")
        self._index += 1
        return SimulatedFrame(
            index,
            image,
            phi_m.numpy().astype(np.float32),
            temperature,
            field_mt,
            ms,
            bubbles,
            (float(stage[0]), float(stage[1])),
        )


class _TruthWriter:
    """Appends each frame's ground truth to an HDF5 file."""

    def __init__(self, path: Path, settings: FieldCoolingSettings, shape: tuple[int, int]) -> None:
        import h5py

        try:
            self._file = h5py.File(path, "w")
        except OSError as exc:
            raise SourceError(f"cannot create truth file {path}: {exc}") from None
        handle = self._file
        height, width = shape
        handle.create_dataset(
            "phi_m",
            (0, height, width),
            "<f4",
            maxshape=(None, height, width),
            chunks=(1, height, width),
        )
        handle["phi_m"].attrs["unit"] = "rad"
        for name, unit in (
            ("temperature_k", "K"),
            ("field_mt", "mT"),
            ("ms_a_per_m", "A/m"),
            ("bubbles", ""),
        ):
            handle.create_dataset(
                name, (0,), "<i4" if name == "bubbles" else "<f8", maxshape=(None,)
            )
            handle[name].attrs["unit"] = unit
        handle.create_dataset("stage_shift_nm", (0, 2), "<f8", maxshape=(None, 2))
        for key, value in settings.params.to_dict().items():
            handle.attrs[key] = np.nan if value is None else value
        settings_dict = dataclasses.asdict(settings)
        settings_dict.pop("params")
        handle.attrs["settings_json"] = json.dumps(settings_dict)

    def append(self, frame: SimulatedFrame) -> None:
        handle = self._file
        count = handle["phi_m"].shape[0] + 1
        for name in (
            "phi_m",
            "temperature_k",
            "field_mt",
            "ms_a_per_m",
            "bubbles",
            "stage_shift_nm",
        ):
            handle[name].resize(count, axis=0)
        handle["phi_m"][count - 1] = frame.phi_m
        handle["temperature_k"][count - 1] = frame.temperature_k
        handle["field_mt"][count - 1] = frame.field_mt
        handle["ms_a_per_m"][count - 1] = frame.ms_a_per_m
        handle["bubbles"][count - 1] = len(frame.bubbles)
        handle["stage_shift_nm"][count - 1] = frame.stage_shift_nm
        handle.flush()

    def close(self) -> None:
        self._file.close()


class SimulateSource(Source):
    """Bridge source publishing a :class:`FieldCoolingMovie` at ``fps`` (0: flat out).

    ``truth`` : HDF5 file for the ground truth of every published frame.
    Cost per frame on one core: about 15 ms at 128², 0.15 s at 256², 4.5 s at
    512² (``bubble_texture`` visits every pixel for every bubble), so ``--fps``
    is a ceiling, not a promise, above 256².
    ``threads`` : torch intra-op threads in this process while the source is open.
    One is fastest for small frames: a 128² frame takes ~16 ms with one thread
    and over 1 s with two on a busy 2-core machine (threads spin on each other).
    """

    name = "simulate"
    description = "simulated in-situ field-cooling movie of a bubble lattice (lorentz_live)"

    def __init__(
        self,
        settings: FieldCoolingSettings | None = None,
        *,
        fps: float | None = 10.0,
        truth: Path | None = None,
        threads: int = 1,
    ) -> None:
        self.threads = threads
        self._threads_before = torch.get_num_threads()
        self.settings = settings or FieldCoolingSettings()
        self.fps = fps
        self.truth_path = truth
        self._movie: FieldCoolingMovie | None = None
        self._truth: _TruthWriter | None = None
        self._pacer = Pacer(fps)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        defaults = FieldCoolingSettings()
        params = defaults.params
        parser.add_argument("--size", type=int, default=defaults.size_px, help="frame size, px")
        parser.add_argument(
            "--dose",
            type=float,
            default=defaults.dose_e_per_px,
            help="electrons per pixel (0: noise-free float32)",
        )
        parser.add_argument(
            "--defocus-nm",
            type=float,
            default=params.defocus_nm,
            help="defocus, nm (negative = underfocus)",
        )
        parser.add_argument("--pixel-size-nm", type=float, default=params.pixel_size_nm)
        parser.add_argument("--kv", type=float, default=params.kv)
        parser.add_argument(
            "--ramp-frames",
            type=int,
            help="frames of the T and B ramp (default: --frames, else 200)",
        )
        parser.add_argument(
            "--stage-drift-nm",
            type=float,
            nargs=2,
            metavar=("DY", "DX"),
            default=defaults.stage_drift_nm,
            help="stage drift per frame, nm",
        )
        parser.add_argument(
            "--contaminants", type=int, default=0, help="number of surface contaminant particles"
        )
        parser.add_argument(
            "--temperature-start-k",
            type=float,
            default=defaults.temperature_start_k,
            help=f"temperature of the first frame, K (Curie temperature {defaults.curie_k:g} K)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--threads", type=int, default=1, help="torch threads")
        parser.add_argument("--truth", type=Path, help="write the true phi_m of every frame (HDF5)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SimulateSource:
        try:
            params = DEFAULT_PARAMS.replace(
                defocus_nm=args.defocus_nm, pixel_size_nm=args.pixel_size_nm, kv=args.kv
            )
            settings = FieldCoolingSettings(
                size_px=args.size,
                params=params,
                ramp_frames=args.ramp_frames or args.frames or 200,
                temperature_start_k=args.temperature_start_k,
                stage_drift_nm=tuple(args.stage_drift_nm),
                contaminants=args.contaminants,
                dose_e_per_px=args.dose,
                seed=args.seed,
            )
        except InputError as exc:
            raise SourceError(str(exc)) from None
        if args.threads < 1:
            raise SourceError(f"--threads must be >= 1, got {args.threads}")
        fps = 10.0 if args.fps is None else args.fps
        return cls(settings, fps=fps, truth=args.truth, threads=args.threads)

    def __enter__(self) -> SimulateSource:
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self._movie = FieldCoolingMovie(self.settings)
        if self.truth_path is not None:
            self._truth = _TruthWriter(self.truth_path, self.settings, self._movie.shape)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads_before)
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    def metadata(self, frame: SimulatedFrame) -> dict[str, Any]:
        """Header keys of ``frame``: microscope keys, conditions, series and extras."""
        s = self.settings
        return {
            **s.params.to_dict(),
            "temperature_k": frame.temperature_k,
            "field_mt": frame.field_mt,
            "exposure_s": 1.0 / self.fps if self.fps else 0.1,
            "series_id": f"field-cooling-seed{s.seed}",
            "series_role": "movie",
            "extra": {
                "simulated": True,
                "frame_index": frame.index,
                "dose_e_per_px": s.dose_e_per_px,
                "ms_a_per_m": frame.ms_a_per_m,
                "thickness_nm": s.thickness_nm,
                "bubbles": len(frame.bubbles),
                "stage_shift_nm": list(frame.stage_shift_nm),
                **s.extra,
            },
        }

    def read(self, timeout_s: float) -> Frame | None:
        if self._movie is None:
            raise RuntimeError("use the source as a context manager: with SimulateSource() as s")
        if not self._pacer.wait(timeout_s):
            return None
        frame = self._movie.next()
        if self._truth is not None:
            self._truth.append(frame)
        return Frame(frame.image, self.metadata(frame))


__all__ = [
    "FieldCoolingMovie",
    "FieldCoolingSettings",
    "SimulateSource",
    "SimulatedFrame",
    "bridge_command",
    "free_loopback_endpoint",
]


def free_loopback_endpoint() -> str:
    """A ``tcp://127.0.0.1:PORT`` endpoint whose port was free a moment ago."""
    import zmq

    probe: zmq.Socket = zmq.Context.instance().socket(zmq.REP)
    try:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    finally:
        probe.close(linger=0)
    return f"tcp://127.0.0.1:{port}"


def bridge_command(bind: str, **options: Any) -> list[str]:
    """argv of ``lorentz-bridge simulate --bind BIND`` in this Python environment.

    ``options`` become flags: ``fps=2`` -> ``--fps 2``, ``quiet=True`` -> ``--quiet``.
    Waits for one subscriber and uses one torch thread unless told otherwise.
    """
    import sys

    options = {"wait_subscribers": 1, "threads": 1, "quiet": True, **options}
    argv = [str(Path(sys.executable).parent / "lorentz-bridge"), "simulate", "--bind", bind]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    return argv
