"""Tomography benchmark: conventional VFET vs MagNet on the test split of the texture library.

Run by ``make bench-tomo``.  Writes the "tomo" section of docs/benchmarks.md:
median NRMSE (MagNet paper eq. 3, voxels inside the material) of VFET (as in
the paper, and with the default low-pass that feeds MagNet), MagNet and MagNet +
data-consistency refinement at tilt limits 30/45/60/75/90 deg, noise-free and
with 2 % phase noise; the B_z methods; inference times at 64^3 and 100^3.

Usage::

    python benchmarks/tomo.py                  # shipped weights, full test split
    python benchmarks/tomo.py --weights out/tomo/magnet32.pt --samples 44 --no-write
    python benchmarks/tomo.py --refine-samples 22   # refine (slow) on the first 22 only
    python benchmarks/tomo.py --relax-steps 100 --no-write  # micromagnetically relaxed textures
    python benchmarks/tomo.py --limits 30 45 60 --save out/tomo_a.json   # one shard per core,
    python benchmarks/tomo.py --limits 75 90 --save out/tomo_b.json      # then the report:
    python benchmarks/tomo.py --load out/tomo_a.json out/tomo_b.json

Every (limit, noise) row draws its noise from its own seeded generator, so a
sharded run gives the same table as a whole one.
"""

from __future__ import annotations

import argparse
import json
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
    limit_indices,
    sample_series,
)
from lorentz_live.tomo.fields import nrmse  # noqa: E402
from lorentz_live.tomo.magnet import WEIGHTS, load_model, magnet  # noqa: E402
from lorentz_live.tomo.projector import induction_from_phase  # noqa: E402
from lorentz_live.tomo.refine import (  # noqa: E402
    DEFAULT_ITERATIONS,
    NOISY_ITERATIONS,
    refine,
)
from lorentz_live.tomo.textures import library  # noqa: E402
from lorentz_live.tomo.vfet import (  # noqa: E402
    BZ_FUNCTIONS,
    DEFAULT_BZ_METHOD,
    DEFAULT_WINDOW,
    direct_fourier_reconstruction,
    lowpass,
    vfet,
)

LIMITS_DEG = (30, 45, 60, 75, 90)
NOISE_LEVELS = (0.0, 0.02)
PAPER_MAGNET = {30: 29.0, 45: 19.2, 60: 14.2, 75: 10.7, 90: 9.5}
PAPER_VFET = {30: 49.6, 45: 36.3, 60: 27.6, 75: 15.0, 90: 5.2}


def _pct(values: list[float]) -> float:
    return 100.0 * statistics.median(values) if values else float("nan")


def _lateral(phase_x, phase_y, angles, window):
    proj_bx = lowpass(induction_from_phase(phase_x, LIBRARY_VOXEL_NM)[0], window)
    proj_by = lowpass(induction_from_phase(phase_y, LIBRARY_VOXEL_NM)[1], window)
    b_x = direct_fourier_reconstruction(proj_bx, angles, "x", LIBRARY_VOXEL_NM)
    b_y = direct_fourier_reconstruction(proj_by, angles, "y", LIBRARY_VOXEL_NM)
    return b_x, b_y


def _evaluate(series, model, model_size, args) -> tuple[list[dict], list[dict]]:
    rows, bz_rows = [], []
    bz = BZ_FUNCTIONS[DEFAULT_BZ_METHOD]
    for limit in args.limits:
        keep = limit_indices(limit)
        angles = [FULL_ANGLES_DEG[i] for i in keep]
        for level, noise in enumerate(NOISE_LEVELS):
            generator = torch.Generator().manual_seed(1234 + 100 * level + int(limit))
            s = {k: [] for k in ("raw", "vfet", "magnet", "refined", "magnet_sub", "vfet_sub")}
            bz_scores = {name: [] for name in BZ_FUNCTIONS}
            for index, sample in enumerate(series):
                truth, mask = sample.induction_t, sample.mask
                phase_x = add_phase_noise(sample.phase_x[keep], noise, generator)
                phase_y = add_phase_noise(sample.phase_y[keep], noise, generator)
                raw_x, raw_y = _lateral(phase_x, phase_y, angles, None)
                s["raw"].append(
                    float(nrmse(torch.stack([raw_x, raw_y, bz(raw_x, raw_y)]), truth, mask))
                )
                b_x, b_y = _lateral(phase_x, phase_y, angles, DEFAULT_WINDOW)
                for name, function in BZ_FUNCTIONS.items():
                    candidate = torch.stack([b_x, b_y, function(b_x, b_y)])
                    bz_scores[name].append(float(nrmse(candidate, truth, mask)))
                b_vfet = torch.stack([b_x, b_y, bz(b_x, b_y)])
                b_out = magnet(b_vfet, model, model_size)
                s["vfet"].append(float(nrmse(b_vfet, truth, mask)))
                s["magnet"].append(float(nrmse(b_out, truth, mask)))
                if index < args.refine_samples:
                    measured = [(phase_x, angles, "x"), (phase_y, angles, "y")]
                    refined = refine(b_out, measured, LIBRARY_VOXEL_NM, args.refine_iterations)
                    s["refined"].append(float(nrmse(refined, truth, mask)))
                    s["magnet_sub"].append(s["magnet"][-1])
                    s["vfet_sub"].append(s["raw"][-1])
            wins_refined = sum(m < v for m, v in zip(s["refined"], s["vfet_sub"], strict=True))
            wins = sum(m < v for m, v in zip(s["magnet"], s["vfet"], strict=True))
            wins_raw = sum(m < v for m, v in zip(s["magnet"], s["raw"], strict=True))
            row = {"limit": limit, "noise": noise, "wins": wins, "wins_raw": wins_raw}
            row["wins_refined"], row["refined_count"] = wins_refined, len(s["refined"])
            row.update({k: _pct(v) for k, v in s.items()})
            row["count"] = len(series)
            rows.append(row)
            bz_rows.append(
                {"limit": limit, "noise": noise, **{k: _pct(v) for k, v in bz_scores.items()}}
            )
            print(row, flush=True)
    return rows, bz_rows


def _time_inference(
    size: int, model, model_size: int, repeats: int, iterations: int
) -> tuple[float, float, float]:
    """Median seconds of VFET, of MagNet and of ``iterations`` refinement steps for a
    +-60 deg series on a ``size``^3 box, after one untimed run that builds the cached
    projection matrices."""
    angles = [a for a in FULL_ANGLES_DEG if abs(a) <= 60]
    phase = torch.randn((len(angles), size, size), generator=torch.Generator().manual_seed(0))
    measured = [(phase, angles, "x"), (phase, angles, "y")]
    # random phases look noisy: time the noise-free default (source model) explicitly
    warm = vfet(phase, angles, phase, angles, LIBRARY_VOXEL_NM)
    refine(warm, measured, LIBRARY_VOXEL_NM, 1, "source")
    times: list[list[float]] = [[], [], []]
    for _ in range(repeats):
        start = time.perf_counter()
        b_in = vfet(phase, angles, phase, angles, LIBRARY_VOXEL_NM)
        middle = time.perf_counter()
        b_out = magnet(b_in, model, model_size)
        end = time.perf_counter()
        refine(b_out, measured, LIBRARY_VOXEL_NM, iterations, "source")
        times[0].append(middle - start)
        times[1].append(end - middle)
        times[2].append(time.perf_counter() - end)
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(times[2])


def _report(rows: list[dict], bz_rows: list[dict], ideal: dict, timings: dict, args) -> str:
    count = rows[0]["count"]
    steps = args.refine_iterations or (
        f"{DEFAULT_ITERATIONS} (noise-free-looking phases, source model) or {NOISY_ITERATIONS} "
        "(estimated noise above `refine.NOISE_THRESHOLD` of the peak phase, box model)"
    )
    lines = [
        f"Test split of the texture library (`library({args.library_count}, {args.size}, "
        f"seed={args.library_seed}, 'test')`: {count} samples, 11 classes, {args.size}³ voxels), "
        f"weights `{Path(args.weights).name}`.  Median NRMSE in % (MagNet paper eq. 3, voxels "
        "inside the material); x and y series in 5° steps; noise = Gaussian, std = 2 % of the "
        "series' peak |phase|.  *VFET (paper)*: direct Fourier reconstruction without filter; "
        f"*VFET*: with the default low-pass {DEFAULT_WINDOW} x Nyquist, the input of MagNet; "
        f"B_z by `{DEFAULT_BZ_METHOD}` in both.  *beats*: samples where MagNet beats VFET "
        f"(paper), VFET.  *MagNet+refine*: {steps} data-consistency steps "
        "after MagNet (`tomo.refine.plan_for`; CGLS on the phase misfit of an effective "
        "source whose phase includes the stray field beyond the box, or of the box's B "
        "alone; div B = 0), the default path of "
        "`lorentz-live tomo` (not of `run --tomo-out`: see `tomo.collect`), on the first "
        f"{rows[0]['refined_count']} test samples (the 11 classes cycle through the split; "
        "*sub* = that subset; *beats* = samples where it beats VFET (paper)).  "
        "The paper's figures are for its own library at 100³ voxels, ours at "
        f"{args.size}³.",
        "",
        "| limit | noise | VFET (paper) | VFET | MagNet | beats | paper VFET | paper MagNet "
        "| sub: VFET (paper) | sub: MagNet | sub: MagNet+refine | beats |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        clean = r["noise"] == 0
        paper_v = f"{PAPER_VFET[r['limit']]:.1f}" if clean else "-"
        paper_m = f"{PAPER_MAGNET[r['limit']]:.1f}" if clean else "-"
        lines.append(
            f"| ±{r['limit']}° | {100 * r['noise']:.0f} % | {r['raw']:.1f} | {r['vfet']:.1f} | "
            f"**{r['magnet']:.1f}** | {r['wins_raw']}, {r['wins']} of {r['count']} | {paper_v} | "
            f"{paper_m} | {r['vfet_sub']:.1f} | {r['magnet_sub']:.1f} | **{r['refined']:.1f}** | "
            f"{r['wins_refined']} of {r['refined_count']} |"
        )
    names = list(ideal)
    lines += [
        "",
        "B_z from div B = 0: median NRMSE in % of (B_x, B_y, B_z) with each B_z method, "
        "from the true B_x, B_y (*ideal*) and from VFET's B_x, B_y (with the low-pass):",
        "",
        "| case | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| ideal B_x, B_y | " + " | ".join(f"{_pct(ideal[n]):.1f}" for n in names) + " |",
    ]
    for r in bz_rows:
        values = " | ".join(f"{r[n]:.1f}" for n in names)
        lines.append(f"| ±{r['limit']}°, {100 * r['noise']:.0f} % | {values} |")
    lines += [
        "",
        f"Inference on this CPU (1 torch thread, ±60° series, median of {args.repeats} after "
        "a warm-up that builds the cached projection matrices); "
        f"MagNet resamples to its {args.size}³ box and back; refinement: "
        f"{args.refine_iterations or DEFAULT_ITERATIONS} steps of the source model at the box "
        "size:",
        "",
        "| box | VFET | MagNet | refine | total |",
        "|---|---|---|---|---|",
    ]
    for size, (t_vfet, t_net, t_refine) in timings.items():
        total = t_vfet + t_net + t_refine
        lines.append(
            f"| {size}³ | {t_vfet:.2f} s | {t_net:.2f} s | {t_refine:.2f} s | {total:.2f} s |"
        )
    return "\n".join(lines)


CARD = REPO / "docs" / "magnet-model-card.md"


def _write_model_card(weights: Path, rows: list[dict]) -> None:
    """Fill the generated block of docs/magnet-model-card.md from the checkpoint and ``rows``."""
    import re

    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    train_count = config["library_count"] - config["library_count"] // 5
    parameters = sum(v.numel() for v in checkpoint["state_dict"].values())
    epochs = checkpoint["steps"] * config["batch"] / train_count
    stages = checkpoint.get("stages") or [
        {"steps": checkpoint["steps"], "minutes": checkpoint["minutes"], "config": config}
    ]
    described = []
    for stage in stages:
        c = stage["config"]
        augment = "x/y-swap and z-mirror augmentation" if c.get("augment") else "no augmentation"
        described.append(
            f"{stage['steps']} steps in {stage['minutes']:.0f} min at peak learning rate "
            f"{c['learning_rate']:g} (seed {c['seed']}, {augment})"
        )
    lines = [
        f"- Checkpoint: `{weights.name}`, {weights.stat().st_size / 1e6:.1f} MB, "
        f"{parameters:,} parameters (base {checkpoint['base_channels']} channels, "
        f"{checkpoint['levels']} poolings, box {checkpoint['size']}³).",
        f"- Trained {checkpoint['steps']} steps of batch {config['batch']} in "
        f"{checkpoint['minutes']:.0f} min = {epochs:.1f} epochs over {train_count} training "
        f"samples, in {len(stages)} run(s) (each resuming the previous one): "
        + "; ".join(described)
        + f".  Running training loss at the end: {checkpoint['history'][-1][1]:.3f}.",
        f"- Median NRMSE (%) on {rows[0]['count']} samples of the test split, MagNet+refine "
        f"on the first {rows[0]['refined_count']} (*sub*: VFET (paper) and MagNet on those), "
        "from `make bench-tomo` (docs/benchmarks.md, section tomo, has the full table and "
        "the command line used):",
        "",
        "| limit | VFET (paper) 0 % | VFET 0 % | MagNet 0 % | sub: VFET (paper) 0 % "
        "| sub: MagNet 0 % | sub: MagNet+refine 0 % | VFET 2 % | MagNet 2 % "
        "| sub: MagNet+refine 2 % | paper MagNet 0 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["limit"], r["noise"]): r for r in rows}
    for limit in LIMITS_DEG:
        clean, noisy = by_key[(limit, 0.0)], by_key[(limit, 0.02)]
        lines.append(
            f"| ±{limit}° | {clean['raw']:.1f} | {clean['vfet']:.1f} | {clean['magnet']:.1f} | "
            f"{clean['vfet_sub']:.1f} | {clean['magnet_sub']:.1f} | "
            f"{clean['refined']:.1f} | {noisy['vfet']:.1f} | {noisy['magnet']:.1f} | "
            f"{noisy['refined']:.1f} | {PAPER_MAGNET[limit]:.1f} |"
        )
    block = "<!-- magnet-card:start -->\n" + "\n".join(lines) + "\n<!-- magnet-card:end -->"
    text = CARD.read_text()
    pattern = re.compile(r"<!-- magnet-card:start -->.*?<!-- magnet-card:end -->", re.S)
    CARD.write_text(pattern.sub(lambda _: block, text))


def _merge(shards: list[dict]) -> tuple[list[dict], list[dict]]:
    """Rows and B_z rows of saved shards, in (limit, noise) order."""
    rows = [row for shard in shards for row in shard["rows"]]
    bz_rows = [row for shard in shards for row in shard["bz_rows"]]
    if len({(r["limit"], r["noise"]) for r in rows}) != len(rows):
        raise SystemExit("the loaded shards repeat a (limit, noise) row")
    rows.sort(key=lambda r: (r["limit"], r["noise"]))
    bz_rows.sort(key=lambda r: (r["limit"], r["noise"]))
    return rows, bz_rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--library-count", type=int, default=880)
    parser.add_argument("--library-seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=int, help="use only the first SAMPLES test samples")
    parser.add_argument(
        "--refine-samples", type=int, help="refine only the first K samples (default: all)"
    )
    parser.add_argument(
        "--refine-iterations", type=int, help="fixed step count (default: chosen per series)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats")
    parser.add_argument("--cache", default=str(REPO / "out" / "tomo"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--relax-steps", type=int, default=0, help="relax the test textures (micromagnetics)"
    )
    parser.add_argument(
        "--limits", type=int, nargs="+", default=list(LIMITS_DEG), help="tilt limits (deg)"
    )
    parser.add_argument("--save", help="save this shard's rows to a JSON file; no report")
    parser.add_argument("--load", nargs="+", help="report from shards saved with --save")
    return parser


def main() -> None:
    args = _parser().parse_args()
    torch.set_num_threads(1)
    shards: list[dict] = []
    if args.load:
        shards = [json.loads(Path(path).read_text()) for path in args.load]
        data_keys = (
            "weights", "library_count", "library_seed", "size", "samples",
            "refine_samples", "refine_iterations", "relax_steps", "limits",
        )  # fmt: skip
        vars(args).update({k: shards[0]["args"][k] for k in data_keys})

    entries = library(args.library_count, args.size, args.library_seed, "test")
    entries = entries[: args.samples or None]
    relaxed = f"_relaxed{args.relax_steps}" if args.relax_steps else ""
    name = f"test_series_{args.library_count}_{args.size}_{len(entries)}{relaxed}.pt"
    cache = Path(args.cache) / name
    if cache.exists():
        series = torch.load(cache, weights_only=False)
    else:
        series = [sample_series(kind, args.size, s, args.relax_steps) for s, kind in entries]
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(series, cache)
    if args.refine_samples is None:
        args.refine_samples = len(series)
    model, model_size = load_model(args.weights)
    if shards:
        rows, bz_rows = _merge(shards)
    else:
        rows, bz_rows = _evaluate(series, model, model_size, args)
    if args.save:
        saved = {k: v for k, v in vars(args).items() if k not in ("save", "load")}
        record = {"args": saved, "argv": sys.argv[1:], "rows": rows, "bz_rows": bz_rows}
        Path(args.save).write_text(json.dumps(record))
        print(f"saved {len(rows)} rows to {args.save}")
        return
    ideal = {name: [] for name in BZ_FUNCTIONS}
    for sample in series:
        b = sample.induction_t
        for name, function in BZ_FUNCTIONS.items():
            candidate = torch.stack([b[0], b[1], function(b[0], b[1])])
            ideal[name].append(float(nrmse(candidate, b, sample.mask)))
    timings = {
        size: _time_inference(
            size, model, model_size, args.repeats, args.refine_iterations or DEFAULT_ITERATIONS
        )
        for size in (64, 100)
    }
    body = _report(rows, bz_rows, ideal, timings, args)
    print(body)
    if not args.no_write:
        from _report import write_section

        extra = " ".join(sys.argv[1:])
        command = f"make bench-tomo ARGS='{extra}'" if extra else "make bench-tomo"
        if shards:
            runs = [f"python benchmarks/tomo.py {' '.join(shard['argv'])}" for shard in shards]
            command = " and ".join([*runs, f"python benchmarks/tomo.py {extra}"])
        write_section("tomo", "3D reconstruction: VFET vs MagNet", body, command)
        _write_model_card(Path(args.weights), rows)


if __name__ == "__main__":
    main()
