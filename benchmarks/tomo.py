"""Tomography benchmark: conventional VFET vs MagNet on the test split of the texture library.

Run by ``make bench-tomo``.  Writes the "tomo" section of docs/benchmarks.md:
median NRMSE (MagNet paper eq. 3, voxels inside the material) of VFET, MagNet
and MagNet + data-consistency refinement at tilt limits 30/45/60/75/90 deg,
noise-free and with 2 % phase noise; the B_z methods of VFET (with the ideal
B_x, B_y and from the series); and inference times at 64^3 and 100^3.

Usage::

    python benchmarks/tomo.py                  # shipped weights, full test split
    python benchmarks/tomo.py --weights out/tomo/magnet32.pt --samples 44 --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from lorentz_live.tomo.dataset import (  # noqa: E402
    FULL_ANGLES_DEG,
    LIBRARY_VOXEL_NM,
    add_phase_noise,
    build_series,
    limit_indices,
)
from lorentz_live.tomo.fields import nrmse  # noqa: E402
from lorentz_live.tomo.magnet import WEIGHTS, load_model, magnet  # noqa: E402
from lorentz_live.tomo.projector import induction_from_phase  # noqa: E402
from lorentz_live.tomo.refine import refine  # noqa: E402
from lorentz_live.tomo.vfet import BZ_FUNCTIONS, direct_fourier_reconstruction  # noqa: E402

LIMITS_DEG = (30, 45, 60, 75, 90)
NOISE_LEVELS = (0.0, 0.02)
PAPER_MAGNET = {30: 29.0, 45: 19.2, 60: 14.2, 75: 10.7, 90: 9.5}
PAPER_VFET = {30: 49.6, 45: 36.3, 60: 27.6, 75: 15.0, 90: 5.2}


def _median_pct(values: list[float]) -> float:
    return 100.0 * statistics.median(values)


def _time_inference(size: int, model, model_size: int, repeats: int) -> tuple[float, float]:
    """Median seconds of VFET and of MagNet for a +-60 deg series on a ``size``^3 box."""
    angles = [a for a in FULL_ANGLES_DEG if abs(a) <= 60]
    generator = torch.Generator().manual_seed(0)
    phase = torch.randn((len(angles), size, size), generator=generator)
    from lorentz_live.tomo.vfet import vfet

    vfet_times, magnet_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        b_in = vfet(phase, angles, phase, angles, LIBRARY_VOXEL_NM)
        middle = time.perf_counter()
        magnet(b_in, model, model_size)
        end = time.perf_counter()
        vfet_times.append(middle - start)
        magnet_times.append(end - middle)
    return statistics.median(vfet_times), statistics.median(magnet_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--library-count", type=int, default=880)
    parser.add_argument("--library-seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=int, help="use only the first SAMPLES test samples")
    parser.add_argument(
        "--refine-samples", type=int, default=22, help="test samples also refined (slow)"
    )
    parser.add_argument("--refine-iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats")
    parser.add_argument("--cache", default=str(REPO / "out" / "tomo"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    cache = Path(args.cache) / f"test_series_{args.library_count}_{args.size}.pt"
    if cache.exists():
        series = torch.load(cache, weights_only=False)
    else:
        series = build_series(args.library_count, args.size, args.library_seed, "test")
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(series, cache)
    if args.samples:
        series = series[: args.samples]
    model, model_size = load_model(args.weights)
    generator = torch.Generator().manual_seed(1234)

    rows = []
    bz_rows = []
    for limit in LIMITS_DEG:
        keep = limit_indices(limit)
        angles = [FULL_ANGLES_DEG[i] for i in keep]
        for noise in NOISE_LEVELS:
            scores = {"vfet": [], "magnet": [], "vfet+refine": [], "magnet+refine": []}
            bz_scores = {name: [] for name in BZ_FUNCTIONS}
            for index, sample in enumerate(series):
                phase_x = add_phase_noise(sample.phase_x[keep], noise, generator)
                phase_y = add_phase_noise(sample.phase_y[keep], noise, generator)
                proj_bx, _ = induction_from_phase(phase_x, LIBRARY_VOXEL_NM)
                _, proj_by = induction_from_phase(phase_y, LIBRARY_VOXEL_NM)
                b_x = direct_fourier_reconstruction(proj_bx, angles, "x", LIBRARY_VOXEL_NM)
                b_y = direct_fourier_reconstruction(proj_by, angles, "y", LIBRARY_VOXEL_NM)
                for name, function in BZ_FUNCTIONS.items():
                    candidate = torch.stack([b_x, b_y, function(b_x, b_y)])
                    bz_scores[name].append(float(nrmse(candidate, sample.induction_t, sample.mask)))
                from lorentz_live.tomo.vfet import DEFAULT_BZ_METHOD

                b_vfet = torch.stack([b_x, b_y, BZ_FUNCTIONS[DEFAULT_BZ_METHOD](b_x, b_y)])
                b_out = magnet(b_vfet, model, model_size)
                scores["vfet"].append(float(nrmse(b_vfet, sample.induction_t, sample.mask)))
                scores["magnet"].append(float(nrmse(b_out, sample.induction_t, sample.mask)))
                if index < args.refine_samples and args.refine_iterations > 0:
                    measured = [(phase_x, angles, "x"), (phase_y, angles, "y")]
                    for name, start in (("vfet+refine", b_vfet), ("magnet+refine", b_out)):
                        refined = refine(start, measured, LIBRARY_VOXEL_NM, args.refine_iterations)
                        scores[name].append(float(nrmse(refined, sample.induction_t, sample.mask)))
            refined_pairs = list(zip(scores["magnet"], scores["magnet+refine"], strict=False))
            row = {
                "limit": limit,
                "noise": noise,
                **{name: _median_pct(v) if v else float("nan") for name, v in scores.items()},
                "magnet_sub": _median_pct([a for a, _ in refined_pairs])
                if refined_pairs
                else float("nan"),
                "vfet_sub": _median_pct(scores["vfet"][: len(refined_pairs)])
                if refined_pairs
                else float("nan"),
                "wins": sum(m < v for m, v in zip(scores["magnet"], scores["vfet"], strict=True)),
                "count": len(series),
            }
            rows.append(row)
            bz_rows.append(
                {
                    "limit": limit,
                    "noise": noise,
                    **{k: _median_pct(v) for k, v in bz_scores.items()},
                }
            )
            print(row, flush=True)

    ideal = {name: [] for name in BZ_FUNCTIONS}
    for sample in series:
        b = sample.induction_t
        for name, function in BZ_FUNCTIONS.items():
            candidate = torch.stack([b[0], b[1], function(b[0], b[1])])
            ideal[name].append(float(nrmse(candidate, b, sample.mask)))

    timings = {size: _time_inference(size, model, model_size, args.repeats) for size in (64, 100)}
    body = _report(rows, bz_rows, ideal, timings, args, len(series))
    print(body)
    if not args.no_write:
        from _report import write_section

        command = "make bench-tomo  (python benchmarks/tomo.py)"
        write_section("tomo", "3D reconstruction: VFET vs MagNet", body, command)


def _report(rows, bz_rows, ideal, timings, args, count) -> str:
    lines = [
        f"Test split of the texture library (`library({args.library_count}, {args.size}, seed={args.library_seed}, 'test')`: "
        f"{count} samples, 11 classes, {args.size}^3 voxels), weights `{Path(args.weights).name}`. "
        "Median NRMSE in % (MagNet paper eq. 3, voxels inside the material); tilt step 5 deg, "
        "x and y series; noise = Gaussian, std = 2 % of the series' peak |phase|. "
        f"'+refine' = {args.refine_iterations} data-consistency steps, on the first "
        f"{args.refine_samples} test samples only (columns 'sub' are the same subset without it). "
        "'wins' = samples where MagNet beats VFET.",
        "",
        "| limit | noise | VFET | MagNet | MagNet wins | paper VFET | paper MagNet | VFET sub | VFET+refine sub | MagNet sub | MagNet+refine sub |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper_v = f"{PAPER_VFET[r['limit']]:.1f}" if r["noise"] == 0 else "-"
        paper_m = f"{PAPER_MAGNET[r['limit']]:.1f}" if r["noise"] == 0 else "-"
        lines.append(
            f"| ±{r['limit']}° | {100 * r['noise']:.0f} % | {r['vfet']:.1f} | {r['magnet']:.1f} | "
            f"{r['wins']}/{r['count']} | {paper_v} | {paper_m} | {r['vfet_sub']:.1f} | "
            f"{r['vfet+refine']:.1f} | {r['magnet_sub']:.1f} | {r['magnet+refine']:.1f} |"
        )
    names = list(ideal)
    lines += [
        "",
        "B_z from div B = 0 (median NRMSE in %, VFET B_x and B_y with each B_z method; "
        "'ideal' uses the true B_x, B_y):",
        "",
        "| case | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| ideal B_x, B_y | " + " | ".join(f"{_median_pct(ideal[n]):.1f}" for n in names) + " |",
    ]
    for r in bz_rows:
        lines.append(
            f"| ±{r['limit']}°, {100 * r['noise']:.0f} % | "
            + " | ".join(f"{r[n]:.1f}" for n in names)
            + " |"
        )
    lines += [
        "",
        "Inference time on this CPU (1 torch thread, ±60° series, median of "
        f"{args.repeats}): MagNet resamples to its {args.size}^3 box and back.",
        "",
        "| box | VFET | MagNet | total |",
        "|---|---|---|---|",
    ]
    for size, (t_vfet, t_net) in timings.items():
        lines.append(f"| {size}^3 | {t_vfet:.2f} s | {t_net:.2f} s | {t_vfet + t_net:.2f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
