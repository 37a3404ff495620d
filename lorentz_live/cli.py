"""``lorentz-live`` command line: forward simulation and single-image reconstruction.

Every user error ends in one line on stderr naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lorentz_live.errors import InputError
from lorentz_live.io.images import load_image, output_path
from lorentz_live.io.ovf import read_ovf
from lorentz_live.physics import (
    Material,
    MicroscopeParams,
    integrated_induction,
    simulate_image,
    sitie_phase,
    specimen_from_magnetisation,
)

PROG = "lorentz-live"
#: --amplitude help: what was measured (docs/accuracy.md, `make bench-accuracy`).
AMPLITUDE_HELP = (
    "siprad: sample amplitude. none: uniform; threshold: fixed two-valued map from the "
    "image; learn: a second DIP (paper); exclude: thresholded contaminants, widened by a "
    "Fresnel length, are left out of the fit. Measured on a contaminated bubble lattice "
    "(docs/accuracy.md; phase / B correlation): exclude 0.73 / 0.77, learn 0.57 / 0.47, "
    "threshold 0.28 / 0.14, none 0.29 / 0.34, hand-tuned SITIE 0.48 / 0.59. None reaches "
    "the 0.85 target; patterned films were not measured."
)
MAGNETISATION_SUFFIXES = (".ovf", ".omf")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def _load_params(path: str) -> tuple[MicroscopeParams, dict]:
    params = MicroscopeParams.from_json(path)
    return params, json.loads(Path(path).read_text())


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        required=True,
        metavar="P.json",
        help="microscope parameters: a JSON object with any of "
        + ", ".join(MicroscopeParams.parameter_keys()),
    )


def _forward(args: argparse.Namespace) -> None:
    params, given = _load_params(args.params)
    source = Path(args.input)
    amplitude = None
    if source.suffix.lower() in MAGNETISATION_SUFFIXES:
        field = read_ovf(source)
        in_a_per_m = field.units.lower() == "a/m"
        if not in_a_per_m and args.ms is None:
            units = field.units or "none"
            raise InputError(
                f"{source} holds unit magnetisation (units {units!r}); give --ms in A/m"
            )
        if in_a_per_m and args.ms is not None:
            raise InputError(f"{source} is already in A/m; drop --ms")
        cell_nm = field.cell_size_m[2] * 1e9
        if "pixel_size_nm" in given and not np.isclose(given["pixel_size_nm"], cell_nm, rtol=1e-6):
            raise InputError(
                f"pixel_size_nm = {given['pixel_size_nm']:g} in {args.params} differs from the "
                f"{cell_nm:g} nm cells of {source}; drop it or make them agree"
            )
        params = params.replace(pixel_size_nm=cell_nm)
        material = Material(args.mip_v, args.xi0_nm)
        specimen = specimen_from_magnetisation(
            field.values, field.cell_size_m, kv=params.kv, ms_a_per_m=args.ms, material=material
        )
        phase, amplitude = specimen.phase, specimen.amplitude
    else:
        phase = torch.from_numpy(load_image(source, what="phase"))
    if args.amplitude is not None:
        amplitude = torch.from_numpy(load_image(args.amplitude, what="amplitude"))
        if amplitude.shape != phase.shape:
            raise InputError(
                f"amplitude shape {tuple(amplitude.shape)} != phase shape {tuple(phase.shape)}"
            )
    out = output_path(args.out, (".npy",))
    image = simulate_image(phase, params, amplitude)
    if args.dose is not None:
        if args.dose <= 0:
            raise InputError(f"--dose must be > 0 electrons per pixel, got {args.dose:g}")
        generator = torch.Generator().manual_seed(args.seed)
        image = torch.poisson(image.double() * args.dose, generator=generator).float()
        image = image / image.mean()
    np.save(out, image.numpy().astype(np.float32))
    print(f"wrote {out}: {tuple(image.shape)} image (mean 1) at defocus {params.defocus_nm:g} nm")


class _ProgressBar:
    """One self-overwriting line on a terminal; nothing when stderr is piped."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, iteration: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.2 and iteration < total):
            return
        self._last = now
        filled = int(30 * iteration / max(total, 1))
        bar = "#" * filled + "." * (30 - filled)
        print(
            f"\r{self.label} [{bar}] {iteration}/{total} loss {loss:.3e}", end="", file=sys.stderr
        )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def _add_sample_options(parser: argparse.ArgumentParser) -> None:
    """SIPRAD's sample model: amplitude, contaminant material, edges, final smoothing."""
    parser.add_argument(
        "--amplitude",
        choices=("none", "threshold", "learn", "exclude"),
        default="none",
        help=AMPLITUDE_HELP,
    )
    parser.add_argument(
        "--threshold", type=float, help="siprad: amplitude threshold, x mean intensity"
    )
    parser.add_argument(
        "--mean-inner-potential",
        type=float,
        metavar="V",
        help=f"siprad: contaminant mean inner potential V0, volts "
        f"(default {Material().mean_inner_potential_v:g})",
    )
    parser.add_argument(
        "--absorption-length",
        type=float,
        metavar="NM",
        help=f"siprad: contaminant absorption length xi0, nm "
        f"(default {Material().absorption_length_nm:g})",
    )
    parser.add_argument(
        "--boundary",
        choices=("pad", "periodic"),
        help="siprad: image edges: 'pad' (default) models a larger field, for "
        "non-periodic (real) micrographs; 'periodic' for periodic simulations",
    )
    parser.add_argument(
        "--smoothing",
        choices=("none", "resolution", "fixed"),
        help="siprad: final smoothing of phi_m: none, at the noise-limited resolution, "
        "or the paper's 2 px (lowers |B| in narrow walls)",
    )


def _material(args: argparse.Namespace) -> Material:
    values = {
        "mean_inner_potential_v": ("--mean-inner-potential", args.mean_inner_potential),
        "absorption_length_nm": ("--absorption-length", args.absorption_length),
    }
    changes = {}
    for field, (flag, value) in values.items():
        if value is None:
            continue
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"{flag} must be a positive number, got {value:g}")
        changes[field] = value
    return Material(**changes)


def _siprad_config(args: argparse.Namespace, base=None):
    from lorentz_live.siprad import SipradConfig

    changes = {"amplitude": args.amplitude, "seed": args.seed, "material": _material(args)}
    for name in ("boundary", "smoothing"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {args.iterations}")
        changes["max_iterations"] = args.iterations
    if args.threshold is not None:
        changes["threshold"] = args.threshold
    return (base or SipradConfig()).replace(**changes)


def _reconstruct(args: argparse.Namespace) -> None:
    params, _ = _load_params(args.params)
    params.require_reconstruction_defocus()
    image = torch.from_numpy(load_image(args.image))
    if float(image.mean()) <= 0:
        raise InputError(f"image {args.image}: mean intensity is not positive")
    out = output_path(args.out, (".npz",))
    arrays: dict[str, np.ndarray] = {}
    if args.method == "sitie":
        if float(image.min()) < 0:
            raise InputError(
                f"image {args.image}: negative intensities; SITIE needs an intensity image"
            )
        phase = sitie_phase(
            image.double(),
            params,
            qc_per_nm=args.qc,
            sigma_px=args.sigma,
            symmetrize=args.symmetrize,
        ).float()
        b_x, b_y = integrated_induction(phase, params.pixel_size_nm)
    else:
        from lorentz_live.siprad import SipradReconstructor

        reconstructor = SipradReconstructor(_siprad_config(args), device=_device(args.device))
        bar = _ProgressBar("siprad")
        try:
            result = reconstructor.reconstruct(image, params, progress=bar)
        finally:
            bar.close()
        phase, b_x, b_y = result.phi_m, result.b_x, result.b_y
        arrays["image_fit"] = result.image_fit.numpy()
        arrays["loss"] = np.asarray(result.loss, dtype=np.float32)
        if result.amplitude is not None:
            arrays["amplitude"] = result.amplitude.numpy()
            arrays["phase_e"] = result.phase_e.numpy()
        arrays["resolution_nm"] = np.float32(result.resolution_nm)
        arrays["smoothing_sigma_px"] = np.float32(result.smoothing_sigma_px)
        arrays["phi_m_raw"] = result.phi_m_raw.numpy()
        misfit = result.loss[-1] if result.loss else float("nan")
        print(
            f"siprad: {result.iterations} iterations, stopped by {result.stop_reason}, "
            f"{result.seconds:.1f} s, final misfit {misfit:.3e}, "
            f"resolution {result.resolution_nm:.1f} nm"
        )
    np.savez(
        out,
        phi_m=phase.numpy(),
        b_x=b_x.numpy(),
        b_y=b_y.numpy(),
        params=json.dumps(params.to_dict()),
        method=args.method,
        **arrays,
    )
    print(f"wrote {out}: phi_m (rad), b_x, b_y (T nm) by {args.method}")


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: no CUDA device is available (is a CUDA build of torch installed?)"
        )
    return name


def _run(args: argparse.Namespace) -> None:
    import logging

    import zmq

    from lorentz_live.live import LiveConfig, LiveEngine
    from lorentz_live.live.runner import LiveRunner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    checked = (
        ("--frames", args.frames),
        ("--warm-iterations", args.warm_iterations),
        ("--threads", args.threads),
    )
    for name, value in checked:
        if value is not None and value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    if args.budget is not None and not args.budget > 0:
        raise InputError(f"--budget must be > 0 s, got {args.budget:g}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    siprad = _siprad_config(args, LiveConfig().siprad)
    config = LiveConfig(
        siprad=siprad,
        warm_max_iterations=args.warm_iterations or LiveConfig.warm_max_iterations,
        time_budget_s=args.budget,
        instant=args.instant,
        device=_device(args.device),
    )
    stats = Path(args.stats) if args.stats else None
    if stats is not None and not stats.parent.exists():
        raise InputError(f"--stats folder does not exist: {stats.parent}")
    runner = LiveRunner(
        LiveEngine(config),
        args.source,
        results_bind=args.results,
        stats=stats,
        max_frames=args.frames,
        idle_timeout_s=args.idle_timeout,
        status=sys.stderr,
    )
    try:
        summary = runner.run()
    except zmq.ZMQError as exc:
        raise InputError(f"cannot open sockets ({args.source}, {args.results}): {exc}") from None
    except KeyboardInterrupt:
        runner.stop()
        summary = runner.summary
    print(
        f"{summary.frames} frames in {summary.wall_s:.1f} s ({summary.fps:.2f} fps), "
        f"{summary.refined} refined by SIPRAD, "
        f"answer latency p50 {summary.latency_percentile(50):.3f} s "
        f"p99 {summary.latency_percentile(99):.3f} s, "
        f"dropped {summary.dropped}, bad {summary.bad_frames}, rejected {summary.rejected}, "
        f"cold starts {summary.cold_starts}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    forward = commands.add_parser("forward", help="simulate a mean-normalised LTEM image")
    forward.add_argument(
        "input", help="phase map in rad (.npy, .tif) or magnetisation (.ovf, .omf)"
    )
    _add_params(forward)
    forward.add_argument(
        "--amplitude", metavar="A.npy", help="amplitude map (default: 1, or from the OVF mask)"
    )
    forward.add_argument("--out", required=True, metavar="IMAGE.npy")
    forward.add_argument(
        "--ms", type=float, help="saturation magnetisation, A/m, for unit-vector OVF files"
    )
    forward.add_argument(
        "--mip-v",
        type=float,
        default=Material.mean_inner_potential_v,
        help="mean inner potential, V",
    )
    forward.add_argument(
        "--xi0-nm", type=float, default=Material.absorption_length_nm, help="absorption length, nm"
    )
    forward.add_argument(
        "--dose", type=float, help="add Poisson noise at this many electrons per pixel"
    )
    forward.add_argument("--seed", type=int, default=0, help="seed of the noise")
    forward.set_defaults(handler=_forward)

    reconstruct = commands.add_parser(
        "reconstruct", help="phase and induction from one defocused image"
    )
    reconstruct.add_argument(
        "image", help="image file (.npy, .npz key 'image', .tif, .mrc, .dm3/.dm4)"
    )
    _add_params(reconstruct)
    reconstruct.add_argument("--out", required=True, metavar="RESULT.npz")
    reconstruct.add_argument("--method", choices=("siprad", "sitie"), default="siprad")
    reconstruct.add_argument("--iterations", type=int, help="siprad: maximum iterations")
    _add_sample_options(reconstruct)
    reconstruct.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    reconstruct.add_argument(
        "--seed", type=int, default=0, help="siprad: network and input-noise seed"
    )
    reconstruct.add_argument(
        "--qc", type=float, default=0.0, help="sitie: Tikhonov frequency, 1/nm"
    )
    reconstruct.add_argument(
        "--sigma", type=float, default=0.0, help="sitie: Gaussian pre-smoothing, px"
    )
    reconstruct.add_argument(
        "--symmetrize",
        action="store_true",
        help="mirror-pad before the FFT solve (non-periodic images)",
    )
    reconstruct.set_defaults(handler=_reconstruct)

    run = commands.add_parser("run", help="live: reconstruct the frames of a bridge, warm-started")
    run.add_argument("--source", default="tcp://127.0.0.1:5555", help="the bridge's live endpoint")
    run.add_argument(
        "--results", metavar="ENDPOINT", help="publish results here, e.g. tcp://127.0.0.1:5556"
    )
    run.add_argument("--frames", type=int, help="stop after this many answered frames")
    run.add_argument("--stats", metavar="FILE.jsonl", help="one JSON line per result")
    run.add_argument(
        "--instant",
        choices=("sitie", "amortised"),
        default="sitie",
        help="method answering every frame at once (SIPRAD refines the newest)",
    )
    run.add_argument(
        "--budget", type=float, help="time budget per frame, s (default: until converged)"
    )
    run.add_argument("--warm-iterations", type=int, help="iteration cap of a warm-started frame")
    run.add_argument("--iterations", type=int, help="iteration cap of a cold start")
    run.add_argument("--idle-timeout", type=float, help="stop after this long without a frame, s")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    _add_sample_options(run)
    run.set_defaults(handler=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lorentz-live``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.handler(args)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
