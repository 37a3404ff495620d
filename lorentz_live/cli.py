"""``lorentz-live`` command line: forward simulation and single-image reconstruction.

Every user error ends in one line on stderr naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
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
from lorentz_live.record.cli import add_commands as add_record_commands
from lorentz_live.record.cli import record_results
from lorentz_live.tomo.refine import DEFAULT_ITERATIONS as REFINE_ITERATIONS
from lorentz_live.tomo.refine import NOISY_ITERATIONS as REFINE_NOISY_ITERATIONS

PROG = "lorentz-live"
#: Phase-correlation targets of the amplitude cases (issue 13).
AMPLITUDE_TARGETS = {"contaminated": 0.85, "patterned": 0.8}
#: Share of the pixels ``--stop held-out`` leaves out of the fit.
CLI_HOLDOUT_FRACTION = 0.2
#: Labels of the amplitude cases in the help text.
AMPLITUDE_CASE_NAMES = {
    "contaminated": "a contaminated bubble lattice",
    "patterned": "patterned 10 nm islands in vacuum",
}


def amplitude_help() -> str:
    """--amplitude help with the figures benchmarks/accuracy.py wrote to lorentz_live.measured."""
    try:
        from lorentz_live.measured import AMPLITUDE, AMPLITUDE_SEEDS
    except ImportError:  # a checkout whose benchmark has not run yet
        AMPLITUDE, AMPLITUDE_SEEDS = {}, 0
    text = [
        "siprad: sample amplitude. none: uniform; threshold: fixed two-valued map from the "
        "image; learn: a second DIP (paper); exclude: thresholded contaminants, widened by a "
        "Fresnel length, are left out of the fit; thickness: one thickness map, from the "
        "low-passed image and the material constants, sets both the amplitude and phi_e "
        "(give --island-thickness for a patterned film)."
    ]
    if not AMPLITUDE:
        text.append("Not measured (python benchmarks/accuracy.py --only amplitude).")
    else:
        text.append(
            f"Measured (docs/accuracy.md, phase / B correlation, mean of {AMPLITUDE_SEEDS} seeds):"
        )
    for case, figures in AMPLITUDE.items():
        siprad = {
            k: v for k, v in figures.items() if k not in ("sitie", "tuned") and "true" not in k
        }
        best = max(siprad, key=lambda k: siprad[k][0] + siprad[k][1])
        oracle = next((v for k, v in figures.items() if "true" in k), None)
        listed = ", ".join(f"{k}: {p:.2f} / {b:.2f}" for k, (p, b) in siprad.items())
        target = AMPLITUDE_TARGETS.get(case)
        met = target is not None and siprad[best][0] >= target
        text.append(
            f"{AMPLITUDE_CASE_NAMES.get(case, case)}: {listed}; plain SITIE "
            f"{figures['sitie'][0]:.2f} / {figures['sitie'][1]:.2f}, hand-tuned SITIE "
            f"{figures['tuned'][0]:.2f} / {figures['tuned'][1]:.2f}"
            + (f"; with the true thickness {oracle[0]:.2f} / {oracle[1]:.2f}" if oracle else "")
            + f". Recommended (best mean of phase and B): {best}"
            + (
                ""
                if target is None
                else f" ({'meets' if met else 'below'} the {target:g} phase target)."
            )
        )
    return " ".join(text)


MAGNETISATION_SUFFIXES = (".ovf", ".omf")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def _load_params(path: str) -> tuple[MicroscopeParams, dict]:
    params = MicroscopeParams.from_json(path)  # one-line errors for any file content
    return params, json.loads(Path(path).read_bytes().decode("utf-8"))


#: Largest --seed (torch generators take 64-bit seeds; SIPRAD adds small offsets).
MAX_SEED = 2**63 - 2**16


def _number(name: str, value: float | None, *, low: float = 0.0, strict: bool = False) -> None:
    """Refuse a NaN, infinite or out-of-range numeric option (None = not given)."""
    if value is None:
        return
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        relation = ">" if strict else ">="
        raise InputError(f"{name} must be {relation} {low:g} and finite, got {value}")


def _seed(value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        raise InputError(f"--seed must be in 0 .. 2**63 - 2**16, got {value}")


def _output(path: str, suffixes: tuple[str, ...], overwrite: bool) -> Path:
    """The output path, checked before any computation: suffix, folder, not a folder, no clobber."""
    out = output_path(path, suffixes)
    if out.is_dir():
        raise InputError(f"output {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise InputError(f"output {out} exists; pass --overwrite to replace it")
    folder = out.parent if str(out.parent) else Path(".")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"cannot write into {folder}: {exc.strerror}") from None
    return out


def _save(write, out: Path) -> None:
    """Run ``write()``; an OS error becomes one line naming the output."""
    try:
        write()
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        required=True,
        metavar="P.json",
        help="microscope parameters: a JSON object with any of "
        + ", ".join(MicroscopeParams.parameter_keys()),
    )


def _forward(args: argparse.Namespace) -> None:
    _number("--dose", args.dose, strict=True)
    _number("--ms", args.ms, strict=True)
    _number("--mip-v", args.mip_v)
    _number("--xi0-nm", args.xi0_nm, strict=True)
    _seed(args.seed)
    out = _output(args.out, (".npy",), args.overwrite)
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
        if float(amplitude.min()) < 0 or not float(amplitude.max()) > 0:
            raise InputError(
                f"amplitude {args.amplitude}: needs values >= 0 and some > 0 "
                f"(got {float(amplitude.min()):g} .. {float(amplitude.max()):g})"
            )
    image = simulate_image(phase, params, amplitude)
    if not bool(torch.isfinite(image).all()) or not float(image.mean()) > 0:
        raise InputError("the simulated image is not finite; check the phase and amplitude")
    if args.dose is not None:
        generator = torch.Generator().manual_seed(args.seed)
        image = torch.poisson(image.double() * args.dose, generator=generator).float()
        image = image / image.mean()
    _save(lambda: np.save(out, image.numpy().astype(np.float32)), out)
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
        choices=("none", "threshold", "learn", "exclude", "thickness"),
        default="none",
        help=amplitude_help(),
    )
    parser.add_argument(
        "--island-thickness",
        type=float,
        metavar="NM",
        help="siprad, --amplitude thickness: the sample is islands of this thickness, nm, "
        "in vacuum (a patterned film); the thickness map is then 0 or NM "
        "(default: a continuous map, e.g. contamination on a film)",
    )
    parser.add_argument(
        "--phase-model",
        choices=("phase", "magnetisation"),
        help="siprad: what the network outputs: phase (default), or magnetisation: an "
        "in-plane moment on the material only (zero in vacuum; the thickness map's "
        "islands), whose film phase is phi_m; for patterned films with "
        "--amplitude thickness --island-thickness",
    )
    parser.add_argument(
        "--thickness-floor",
        type=float,
        metavar="NM",
        help="siprad, --amplitude thickness (continuous map): estimated thickness below "
        "NM counts as clean film (t = 0, not fitted; default 0: every pixel fitted)",
    )
    parser.add_argument(
        "--thickness-start",
        choices=("pretrained", "exclude"),
        help="siprad, --amplitude thickness: fit the estimated thickness map against the "
        "pre-trained SITIE phase (default) or against a first pass with --amplitude "
        "exclude, which then warm-starts the thickness pass (about twice the time)",
    )
    parser.add_argument(
        "--thickness-joint",
        action="store_true",
        default=None,
        help="siprad, --amplitude thickness: go on fitting the estimated thickness map "
        "together with phi_m in the main loop (default: held fixed there)",
    )
    parser.add_argument(
        "--threshold", type=float, help="siprad: amplitude threshold, x mean intensity"
    )
    parser.add_argument(
        "--mean-inner-potential",
        type=float,
        metavar="V",
        help=f"siprad: mean inner potential V0, volts, of what varies in thickness "
        f"(contamination, or the islands of a patterned film; "
        f"default {Material().mean_inner_potential_v:g})",
    )
    parser.add_argument(
        "--absorption-length",
        type=float,
        metavar="NM",
        help=f"siprad: absorption length xi0, nm: amplitude exp(-t / xi0) "
        f"(default {Material().absorption_length_nm:g})",
    )
    parser.add_argument(
        "--boundary",
        choices=("pad", "periodic"),
        help="siprad: image edges: 'pad' (default) models a larger field, for "
        "non-periodic (real) micrographs; 'periodic' for periodic simulations",
    )
    parser.add_argument(
        "--stop",
        choices=("discrepancy", "plateau", "held-out", "none"),
        help="siprad: stopping rule (default discrepancy); held-out leaves "
        f"{CLI_HOLDOUT_FRACTION:.0%} of the pixels out of the fit and keeps the iterate "
        "that predicts them best (printed final misfit: that iterate's)",
    )
    parser.add_argument(
        "--smoothing",
        choices=("none", "resolution", "fixed"),
        help="siprad: final smoothing of phi_m: none, at the noise-limited resolution, "
        "or the paper's 2 px (lowers |B| in narrow walls)",
    )


def _material(args: argparse.Namespace) -> Material:
    values = {
        "mean_inner_potential_v": (
            "--mean-inner-potential",
            getattr(args, "mean_inner_potential", None),
        ),
        "absorption_length_nm": ("--absorption-length", getattr(args, "absorption_length", None)),
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

    _seed(args.seed)
    changes = {"amplitude": args.amplitude, "seed": args.seed, "material": _material(args)}
    for name in ("boundary", "smoothing", "stop", "thickness_start"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if changes.get("stop") == "held-out" and (base or SipradConfig()).holdout_fraction <= 0:
        changes["holdout_fraction"] = CLI_HOLDOUT_FRACTION
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {args.iterations}")
        changes["max_iterations"] = args.iterations
    if args.threshold is not None:
        _number("--threshold", args.threshold, strict=True)
        changes["threshold"] = args.threshold
    if getattr(args, "thickness_joint", None):
        changes["thickness_joint"] = True
    if getattr(args, "phase_model", None) is not None:
        changes["phase_model"] = args.phase_model
    if getattr(args, "thickness_floor", None) is not None:
        _number("--thickness-floor", args.thickness_floor)
        changes["thickness_floor_nm"] = args.thickness_floor
    if getattr(args, "ensemble", None) is not None:
        if args.ensemble < 1:
            raise InputError(f"--ensemble must be >= 1, got {args.ensemble}")
        changes["ensemble"] = args.ensemble
    if getattr(args, "island_thickness", None) is not None:
        _number("--island-thickness", args.island_thickness, strict=True)
        changes["island_thickness_nm"] = args.island_thickness
    return (base or SipradConfig()).replace(**changes)


def _reconstruct(args: argparse.Namespace) -> None:
    _number("--qc", args.qc)
    _number("--sigma", args.sigma)
    config = _siprad_config(args) if args.method == "siprad" else None
    threads = _cpu_threads(args.threads)
    out = _output(args.out, (".npz",), args.overwrite)
    params, _ = _load_params(args.params)
    params.require_reconstruction_defocus()
    image = torch.from_numpy(load_image(args.image))
    if not float(image.double().mean()) > 0:
        raise InputError(f"image {args.image}: mean intensity is not positive")
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

        torch.set_num_threads(threads)
        reconstructor = SipradReconstructor(config, device=_device(args.device))
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
        if result.kept_iteration is not None:
            arrays["kept_iteration"] = np.int32(result.kept_iteration)
        misfit = result.final_misfit  # the kept iterate's (held-out: not the last)
        stopped = (
            f"reached the iteration cap ({result.iterations}) before converging"
            if result.stop_reason == "max_iterations"
            else f"stopped by {result.stop_reason}"
        )
        print(
            f"siprad: {result.iterations} iterations, {stopped}, "
            f"{result.seconds:.1f} s on {threads} CPU thread{'s' if threads > 1 else ''}, "
            f"final misfit {misfit:.3e}, "
            f"resolution {result.resolution_nm:.1f} nm"
        )
    _save(
        lambda: np.savez(
            out,
            phi_m=phase.numpy(),
            b_x=b_x.numpy(),
            b_y=b_y.numpy(),
            params=json.dumps(params.to_dict()),
            method=args.method,
            **arrays,
        ),
        out,
    )
    print(f"wrote {out}: phi_m (rad), b_x, b_y (T nm) by {args.method}")


def _cpu_threads(requested: int | None) -> int:
    """--threads, checked; default: torch's (every physical core unless OMP_NUM_THREADS
    says otherwise)."""
    if requested is None:
        return torch.get_num_threads()
    if requested < 1:
        raise InputError(f"--threads must be >= 1, got {requested}")
    return requested


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: no CUDA device is available (is a CUDA build of torch installed?)"
        )
    return name


def _instant_average(value: float | None, default: float) -> float:
    """--instant-average, checked (``default`` when not given)."""
    if value is None:
        return default
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise InputError(f"--instant-average must be in (0, 1], got {value}")
    return value


def _run(args: argparse.Namespace) -> None:
    import zmq

    from lorentz_live.live import LiveConfig, LiveEngine
    from lorentz_live.live.guards import GuardConfig
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
    _number("--budget", args.budget, strict=True)
    _number("--cold-budget", args.cold_budget, strict=True)
    _number("--idle-timeout", args.idle_timeout, strict=True)
    if args.max_side is not None and args.max_side < 8:
        raise InputError(f"--max-side must be >= 8 px, got {args.max_side}")
    options = _run_sockets(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    siprad = _siprad_config(args, LiveConfig().siprad)
    config = LiveConfig(
        siprad=siprad,
        warm_max_iterations=args.warm_iterations or LiveConfig.warm_max_iterations,
        time_budget_s=args.budget,
        cold_budget_s=LiveConfig.cold_budget_s if args.cold_budget is None else args.cold_budget,
        instant=args.instant,
        instant_average=_instant_average(args.instant_average, LiveConfig.instant_average),
        device=_device(args.device),
    )
    stats = Path(args.stats) if args.stats else None
    if stats is not None and not stats.parent.exists():
        raise InputError(f"--stats folder does not exist: {stats.parent}")
    engine = LiveEngine(config)
    guard = GuardConfig(max_side_px=args.max_side or GuardConfig.max_side_px)
    server = _control_server(args, engine)
    tomo, tomo_status = _tomo_collector(args.tomo_out) if args.tomo_out else (None, None)
    runner = LiveRunner(
        engine,
        args.source,
        results_bind=args.results,
        stats=stats,
        max_frames=args.frames,
        idle_timeout_s=args.idle_timeout,
        status=sys.stderr,
        control=server.control if server else None,
        guard=guard,
        tomo=tomo,
        header_extras=(lambda: {"tomo": tomo_status.header()}) if tomo_status else None,
        **options,
    )
    pusher = record_results(
        engine,
        args.record_results,
        config,
        lambda: runner.summary,
        curve_secret_key=options["publisher_options"].get("curve_secret_key"),
    )
    try:
        summary = runner.run()
    except zmq.ZMQError as exc:
        raise InputError(f"cannot open sockets ({args.source}, {args.results}): {exc}") from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the runner has closed its sockets
        runner.stop()
        summary = runner.summary
        summary.ended_by = "interrupted"
        args.interrupted = True
    finally:
        if server is not None:
            server.close()
        if pusher is not None:
            pusher.close()
    if tomo is not None:
        tomo.wait()
    print(
        f"{summary.frames} frames in {summary.wall_s:.1f} s ({summary.fps:.2f} fps), "
        f"{summary.refined} refined by SIPRAD, "
        f"answer latency p50 {summary.latency_percentile(50):.3f} s "
        f"p99 {summary.latency_percentile(99):.3f} s, "
        f"dropped {summary.dropped}, bad {summary.bad_frames}{_reasons(summary.bad_reasons)}, "
        f"rejected {summary.rejected}{_reasons(summary.rejected_reasons)}, "
        f"capped {summary.capped}, cold starts {summary.cold_starts} ({summary.ended_by})",
        flush=True,
    )


def _control_server(args: argparse.Namespace, engine):
    """The control socket of ``run --control EP`` (None without it)."""
    if not args.control:
        return None
    import zmq
    import zmq.auth

    from lorentz_live.live.control import ControlServer, EngineControl

    secret = None
    if args.control_curve_secret:
        try:
            _, secret = zmq.auth.load_certificate(args.control_curve_secret)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read CURVE key {args.control_curve_secret}: {exc}") from None
        if secret is None:
            raise InputError(f"{args.control_curve_secret} holds no CURVE secret key")
    try:
        return ControlServer(args.control, EngineControl(engine), curve_secret_key=secret)
    except zmq.ZMQError as exc:
        raise InputError(f"cannot bind the control socket {args.control}: {exc}") from None


def _gui(args: argparse.Namespace) -> None:
    """``lorentz-live gui``: the viewer lives in the ``gui`` package (extra ``gui``).

    Imported by name at run time: the layer contract keeps ``lorentz_live``
    free of static imports of the ``gui`` package above it.
    """
    import importlib

    try:
        app = importlib.import_module("gui.app")
    except ImportError as exc:
        raise InputError(
            f"the viewer needs the gui extra (pip install 'lorentz-live[gui]'): {exc}"
        ) from None
    code = app.run_viewer(args)
    if code:
        raise SystemExit(code)


def _tomo_collector(folder: str):
    """Collector that writes every reconstructed tilt-series pair to ``folder``, and the
    :class:`TomoStatus` announcing its progress and volumes on the results stream."""
    from lorentz_live.io.tilt_series import save_tomogram
    from lorentz_live.live.tomo_status import TomoStatus
    from lorentz_live.tomo.collect import TiltSeriesCollector

    out = Path(folder)
    if not out.is_dir():
        raise InputError(f"--tomo-out folder does not exist: {out}")

    def write(result, info: dict) -> None:
        path = out / f"tomo_{info['series_x']}_{info['series_y']}.npz"
        save_tomogram(path, result.b.numpy(), result.b_vfet.numpy(), info["voxel_size_nm"])
        status.written(path, info)
        print(f"wrote {path}: tomogram of {info['tilts_x']} + {info['tilts_y']} tilts", flush=True)

    collector = TiltSeriesCollector(write)
    status = TomoStatus(collector.progress)
    return collector, status


def _tomo(args: argparse.Namespace) -> None:
    from lorentz_live.io.tilt_series import load_tilt_series, save_tomogram
    from lorentz_live.tomo.magnet import load_model
    from lorentz_live.tomo.reconstruct import reconstruct_tilt_series

    if args.refine is not None and args.refine < 0:
        raise InputError(f"--refine must be >= 0 iterations, got {args.refine}")
    series = load_tilt_series(args.series)
    out = output_path(args.out, (".npz",))
    if args.weights is not None and not Path(args.weights).is_file():
        raise InputError(f"--weights {args.weights}: no such file")
    model = load_model(args.weights) if args.weights else load_model()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = reconstruct_tilt_series(
        torch.from_numpy(series.phase_x),
        series.angles_x_deg.tolist(),
        torch.from_numpy(series.phase_y),
        series.angles_y_deg.tolist(),
        series.pixel_size_nm,
        model=model,
        refine_iterations=args.refine,
    )
    save_tomogram(out, result.b.numpy(), result.b_vfet.numpy(), result.voxel_size_nm)
    size = result.b.shape[-1]
    print(
        f"wrote {out}: b and b_vfet (3, {size}, {size}, {size}) in T from "
        f"{len(series.angles_x_deg)} x-tilts and {len(series.angles_y_deg)} y-tilts "
        f"on {result.voxel_size_nm:g} nm voxels in {time.perf_counter() - start:.1f} s"
    )


def _tomo_train(args: argparse.Namespace) -> None:
    from lorentz_live.tomo.train import TrainConfig, train

    if args.minutes <= 0:
        raise InputError(f"--minutes must be > 0, got {args.minutes:g}")
    if args.size % 8 or args.size < 16:
        raise InputError(f"--size must be a multiple of 8 and >= 16, got {args.size}")
    if args.library_count < 10:
        raise InputError(f"--library-count must be >= 10, got {args.library_count}")
    if args.relax_steps < 0:
        raise InputError(f"--relax-steps must be >= 0, got {args.relax_steps}")
    out = output_path(args.out, (".pt",))
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        size=args.size,
        library_count=args.library_count,
        library_seed=args.library_seed,
        base_channels=args.base_channels,
        minutes=args.minutes,
        max_steps=args.steps,
        noise_fraction=args.noise_fraction,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        learning_rate=args.learning_rate,
        augment=not args.no_augment,
        relax_steps=args.relax_steps,
    )
    if args.resume is not None and not Path(args.resume).is_file():
        raise InputError(f"--resume {args.resume}: no such file")
    cache = Path(args.cache) if args.cache else None
    resume = Path(args.resume) if args.resume else None
    try:
        train(config, out, cache=cache, resume=resume, log=lambda line: print(line, flush=True))
    except ValueError as error:
        raise InputError(str(error)) from None
    print(f"wrote {out}")


def _run_sockets(args: argparse.Namespace) -> dict:
    """Endpoints checked, exposure warned about, CURVE keys read: the runner's socket options."""
    from acquisition_bridge.curve import KeyFileError, read_key
    from acquisition_bridge.endpoints import EndpointError, check_endpoint, warn_if_exposed

    try:
        check_endpoint(args.source, what="--source")
        if args.results is not None:
            check_endpoint(args.results, what="--results")
            warn_if_exposed(
                args.results, encrypted=args.results_curve_secret is not None, what="results"
            )
        subscriber: dict = {}
        publisher: dict = {}
        if args.curve_server_key is not None:
            subscriber["curve_server_key"] = read_key(args.curve_server_key, secret=False)
            if args.curve_client_key is not None:
                subscriber["curve_client_keys"] = (
                    read_key(args.curve_client_key, secret=False),
                    read_key(args.curve_client_key, secret=True),
                )
        elif args.curve_client_key is not None:
            raise InputError("--curve-client-key needs --curve-server-key")
        if args.results_curve_secret is not None:
            if args.results is None and args.record_results is None:
                raise InputError("--results-curve-secret needs --results or --record-results")
            publisher["curve_secret_key"] = read_key(args.results_curve_secret, secret=True)
    except (EndpointError, KeyFileError) as exc:
        raise InputError(str(exc)) from None
    return {"subscriber_options": subscriber, "publisher_options": publisher}


def _reasons(counts: dict[str, int]) -> str:
    shown = [f"{key} {value}" for key, value in counts.items() if value]
    return f" ({', '.join(shown)})" if shown else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_forward_command(commands)

    reconstruct = commands.add_parser(
        "reconstruct", help="phase and induction from one defocused image"
    )
    reconstruct.add_argument(
        "image", help="image file (.npy, .npz key 'image', .tif, .mrc, .dm3/.dm4)"
    )
    _add_params(reconstruct)
    reconstruct.add_argument("--out", required=True, metavar="RESULT.npz")
    reconstruct.add_argument("--overwrite", action="store_true", help="replace an existing --out")
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
    reconstruct.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="siprad: average the phase of K cold starts with different network seeds "
        "(K times the time; measured in docs/benchmarks.md, SIPRAD DIP ensemble)",
    )
    reconstruct.add_argument(
        "--threads",
        type=int,
        help="siprad: torch CPU threads (default: torch's, all physical cores unless "
        "OMP_NUM_THREADS is set)",
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
        "--instant-average",
        type=float,
        metavar="W",
        help="weight of the newest frame in the drift-registered running mean the instant "
        "method works on, in (0, 1]; 1 = each frame alone (default: LiveConfig.instant_average)",
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
    run.add_argument(
        "--control",
        metavar="ENDPOINT",
        help="serve operator commands here (docs/protocol.md), e.g. tcp://127.0.0.1:5557",
    )
    run.add_argument(
        "--control-curve-secret",
        metavar="FILE",
        help="CURVE secret key file (lorentz-bridge keygen); needed off loopback",
    )
    run.add_argument(
        "--cold-budget",
        type=float,
        help="time cap of a SIPRAD cold start's fit after pre-training (pre-trained "
        "weights are cached, and used for new conditions too), s; later frames continue "
        "the fit (default 2.5, LiveConfig.cold_budget_s)",
    )
    run.add_argument(
        "--max-side",
        type=int,
        help="largest frame side reconstructed, px; larger frames are binned "
        "(default 512, lorentz_live.live.guards.GuardConfig)",
    )
    run.add_argument(
        "--curve-server-key", metavar="FILE", help="the bridge's CURVE public key (keygen)"
    )
    run.add_argument(
        "--curve-client-key",
        metavar="FILE",
        help="this client's CURVE key pair (a keygen .key_secret file; default: a fresh pair)",
    )
    run.add_argument(
        "--results-curve-secret",
        metavar="FILE",
        help="encrypt the results stream and --record-results with this CURVE secret key",
    )
    run.add_argument(
        "--record-results", metavar="EP", help="lossless PUSH of every result for a recorder"
    )
    run.add_argument("--tomo-out", metavar="DIR", help="reconstruct tilt series in 3D into DIR")
    run.set_defaults(handler=_run)
    add_record_commands(commands)
    _add_tomo_commands(commands)
    _add_gui_command(commands)
    return parser


def _add_gui_command(commands) -> None:
    """`gui` subcommand: the operator viewer (package ``gui``, extra ``gui``)."""
    gui = commands.add_parser("gui", help="the operator viewer (needs the gui extra)")
    gui.add_argument("--source", default="tcp://127.0.0.1:5555", help="the bridge's live endpoint")
    gui.add_argument("--results", default="tcp://127.0.0.1:5556", help="the engine's results")
    gui.add_argument("--control", default="tcp://127.0.0.1:5557", help="the engine's control")
    gui.add_argument("--screenshot", metavar="FILE.png", help="save the window, then exit")
    gui.add_argument(
        "--exit-after",
        type=float,
        metavar="S",
        help="close after S seconds (with --screenshot: shot first)",
    )
    gui.add_argument("--control-curve-key", metavar="FILE", help="the engine's CURVE public key")
    gui.set_defaults(handler=_gui)


def _add_forward_command(commands) -> None:
    """`forward` subcommand: simulate an image."""
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
    forward.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    forward.set_defaults(handler=_forward)


def _add_tomo_commands(commands) -> None:
    """`tomo` and `tomo-train` subcommands."""
    tomo = commands.add_parser("tomo", help="3D induction from x and y tilt series (VFET + MagNet)")
    tomo.add_argument(
        "series", help="tilt series .npz (phase_x, angles_x_deg, ...) or a recorded session folder"
    )
    tomo.add_argument("--out", required=True, metavar="B.npz")
    tomo.add_argument("--weights", metavar="W.pt", help="MagNet checkpoint (default: shipped)")
    tomo.add_argument(
        "--refine",
        type=int,
        default=None,
        help=f"data-consistency iterations after MagNet (0: none; default {REFINE_ITERATIONS}, "
        f"{REFINE_NOISY_ITERATIONS} when the phases look noisy)",
    )
    tomo.add_argument("--threads", type=int, help="torch CPU threads")
    tomo.set_defaults(handler=_tomo)

    tomo_train = commands.add_parser("tomo-train", help="train MagNet on the texture library")
    tomo_train.add_argument("--out", required=True, metavar="W.pt")
    tomo_train.add_argument("--minutes", type=float, default=60.0, help="time budget")
    tomo_train.add_argument("--steps", type=int, default=1_000_000, help="step cap")
    tomo_train.add_argument("--size", type=int, default=32, help="box, voxels")
    tomo_train.add_argument("--library-count", type=int, default=880)
    tomo_train.add_argument("--library-seed", type=int, default=1)
    tomo_train.add_argument("--base-channels", type=int, default=16)
    tomo_train.add_argument("--noise-fraction", type=float, default=0.5)
    tomo_train.add_argument("--checkpoint-every", type=int, default=250)
    tomo_train.add_argument("--cache", metavar="SERIES.pt", help="cache of the training series")
    tomo_train.add_argument("--seed", type=int, default=0)
    tomo_train.add_argument("--learning-rate", type=float, default=1e-3, help="peak (cosine)")
    tomo_train.add_argument("--resume", metavar="W.pt", help="continue from this checkpoint")
    tomo_train.add_argument(
        "--no-augment", action="store_true", help="no x/y-swap and z-mirror augmentation"
    )
    tomo_train.add_argument(
        "--relax-steps",
        type=int,
        default=0,
        help="micromagnetic energy-descent steps per training texture (0: analytic textures)",
    )
    tomo_train.add_argument("--threads", type=int, help="torch CPU threads")
    tomo_train.set_defaults(handler=_tomo_train)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lorentz-live``; returns the exit code."""
    if argv is None:
        # as a program, SIGTERM (a process manager, `kill`) ends like Ctrl-C: with a summary
        _terminate_like_interrupt()
    program = argv is None
    try:
        args = build_parser().parse_args(argv)
        args.handler(args)
        if program and getattr(args, "interrupted", False):
            _exit_now()
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def _exit_now() -> None:
    """End an interrupted ``run`` at once: its sockets and files are closed, output flushed.

    Skips the interpreter's teardown, which with torch loaded took 3 to 4.5 s on a
    loaded 2-core machine (tests/faults: SIGTERM must end the engine within 2 s).
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _terminate_like_interrupt() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
