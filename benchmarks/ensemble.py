"""SIPRAD DIP ensemble (``SipradConfig.ensemble``) against the single run.

Run by ``make bench-ensemble``.  Writes the "siprad-ensemble" section of
docs/benchmarks.md.  Cells: the 6 grid cells of docs/accuracy.md (its 2026-11-23
run) that the default SIPRAD lost to hand-tuned SITIE by the smallest margin
(largest deficit in the lost metric below 0.05), 3 seeds each, scored as in
benchmarks/accuracy.py.

Usage::

    python benchmarks/ensemble.py                         # the documented run
    python benchmarks/ensemble.py --shards 2 --shard 0 --save out/ens0.json   # in parts
    python benchmarks/ensemble.py --load out/ens0.json out/ens1.json          # docs from parts
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy as acc

from lorentz_live.siprad import SipradConfig, SipradReconstructor

#: The grid cells (labels of ``accuracy.draw_cells(24, 0)``) lost most narrowly.
CELLS = (
    "skyrmions 8 nm/px wall 4 px 100 % poisson +0.5 mm crop",
    "bubbles 8 nm/px wall 4 px 25 % gaussian +0.5 mm periodic",
    "labyrinth 4 nm/px wall 4 px 200 % poisson -1 mm crop",
    "labyrinth 4 nm/px wall 2 px 50 % gaussian -4 mm periodic",
    "skyrmions 8 nm/px wall 2 px 200 % gaussian -1 mm crop",
    "bubbles 2 nm/px wall 4 px 100 % poisson +0.25 mm crop",
)
MEMBERS = 3


def run_cell(cell: acc.Cell, seed: int) -> dict[str, object]:
    """The single run and the ensemble of ``MEMBERS`` on one image, scored."""
    full = acc.true_phase(cell, seed)
    truth = acc.centre(full)
    image = acc.measure_image(cell, full, seed)
    params = acc.params_for(cell)
    out: dict[str, object] = {"cell": cell.label(), "seed": seed}
    for name, members in (("single", 1), ("ensemble", MEMBERS)):
        config = SipradConfig(seed=seed, ensemble=members)
        result = SipradReconstructor(config).reconstruct(image, params)
        out[name] = acc.scores(result.phi_m, truth, cell.pixel_nm) | {"seconds": result.seconds}
    out["tuned"] = acc.tuned_sitie(image, params, truth, cell.edges == "crop")
    return out


def summary(runs: list[dict]) -> list[str]:
    """Per cell: seed means of phase / B / |B| ratio and both-metric wins over tuned SITIE."""
    rows, wins = [], {"single": 0, "ensemble": 0}
    deltas: dict[str, list[float]] = {"phase": [], "b": []}
    for label in CELLS:
        cell_runs = [r for r in runs if r["cell"] == label]
        if not cell_runs:
            continue
        m = {
            (method, key): statistics.mean(r[method][key] for r in cell_runs)
            for method in ("single", "ensemble", "tuned")
            for key in ("phase", "b", "mag")
        }
        text = {}
        for method in ("single", "ensemble"):
            win = m[method, "phase"] > m["tuned", "phase"] and m[method, "b"] > m["tuned", "b"]
            wins[method] += win
            text[method] = (
                f"{m[method, 'phase']:.3f} / {m[method, 'b']:.3f} / {m[method, 'mag']:.2f}"
                + (" **W**" if win else "")
            )
        for key, values in deltas.items():
            values.append(m["ensemble", key] - m["single", key])
        rows.append(
            f"| {label} | {len(cell_runs)} | {text['single']} | {text['ensemble']} | "
            f"{m['tuned', 'phase']:.3f} / {m['tuned', 'b']:.3f} |"
        )
    seconds = {
        method: statistics.median(r[method]["seconds"] for r in runs)
        for method in ("single", "ensemble")
    }
    return [
        f"`SipradConfig(ensemble={MEMBERS})` (`lorentz-live reconstruct --ensemble "
        f"{MEMBERS}`): the mean phase of {MEMBERS} cold starts with different network "
        "seeds, against the default single run, on the 6 grid cells of docs/accuracy.md "
        "that SIPRAD lost to hand-tuned SITIE most narrowly; seed means (3 seeds) of "
        "phase / B / |B| ratio, **W** = above tuned SITIE in both phase and B.  CPU, 1 thread.",
        "",
        "| cell | seeds | single | ensemble | tuned SITIE phase / B |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Both-metric wins: single {wins['single']} / {len(rows)}, ensemble "
        f"{wins['ensemble']} / {len(rows)}.  Ensemble minus single, mean over the cells: "
        f"phase {statistics.mean(deltas['phase']):+.3f} (higher in "
        f"{sum(d > 0 for d in deltas['phase'])} / {len(rows)}), B "
        f"{statistics.mean(deltas['b']):+.3f} (higher in {sum(d > 0 for d in deltas['b'])} "
        f"/ {len(rows)}).  Median seconds per image: single {seconds['single']:.0f}, "
        f"ensemble {seconds['ensemble']:.0f}.  Measured on these cells only (not the "
        "whole grid): an option, not the default.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--save", type=Path, help="JSON file of this part (no docs)")
    parser.add_argument("--load", type=Path, nargs="+", help="write the docs from saved parts")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = "python benchmarks/ensemble.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    commands, runs = [command.strip()], []
    if args.load:
        for path in args.load:
            part = json.loads(path.read_text())
            commands += part["commands"]
            runs += part["runs"]
    else:
        cells = [c for c in acc.draw_cells(24, 0) if c.label() in CELLS]
        for cell in cells[args.shard :: args.shards]:
            for seed in range(args.seeds):
                runs.append(run_cell(cell, seed))
                print(json.dumps(runs[-1]), flush=True)
                if args.save:
                    args.save.write_text(json.dumps({"commands": commands, "runs": runs}))
        if args.save:
            return
    from _report import write_section

    quoted = " and ".join(f"`{c}`" for c in (commands[1:] or commands))
    write_section("siprad-ensemble", "SIPRAD DIP ensemble", "\n".join(summary(runs)), quoted)
    print(f"{len(runs)} runs; docs/benchmarks.md siprad-ensemble section written", flush=True)


if __name__ == "__main__":
    main()
