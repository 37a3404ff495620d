"""The live loop: every frame answered, SIPRAD refinement, the amortised network.

    make bench-live            (python benchmarks/live.py [--size 128] [--frames 16])

Movie (lorentz_live.simulator, field cooling): an ordered Bloch-bubble lattice
at 100 K whose field rises (bubbles shrink), jiggling and drifting, 6 nm pixels,
dz = -0.6 mm, Poisson dose 11 e/px (noise 30 %).  Parts, one run:

1. Accuracy per frame, in process and causal (frame t answered only from frames
   before it): Wiener-SITIE, the amortised network (trained 30 steps per frame
   in the caller's thread), warm SIPRAD with carried Adam (the default) and with
   a fresh Adam at 2x the rate, from one shared cold start.  PNG of phase and B
   correlation per frame: docs/img/live_accuracy_per_frame.png.
2. Cold start: time and accuracy of the first SIPRAD result with 200 and 50
   pre-training iterations (unbounded) and with 50 and a 3 s budget.
3. Drift jumps of 1, 5 and 20 px and a gap of 10 frames after the warm frames
   of part 1: warm SIPRAD on the next frame with the defaults, without shifting
   the kept DIP input for the drift, and with a fixed budget.
4. End to end through sockets at 2, 5 and 10 fps: `lorentz-bridge simulate` in
   its own process -> LiveRunner (instant Wiener-SITIE + SIPRAD thread) in
   this one; coverage per method, instant latency, refinement rate, the frames
   that arrived during the cold start.

Writes the "live" section of docs/benchmarks.md (the old "live-cpu" and
"live-e2e-cpu" sections are replaced by it).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPORT, write_section

from lorentz_live.live import LiveConfig, LiveEngine, LiveFrame, LiveResult
from lorentz_live.live.amortised import AmortisedMethod
from lorentz_live.live.methods import SitieMethod
from lorentz_live.live.runner import LiveRunner
from lorentz_live.metrics import phase_and_b_accuracy
from lorentz_live.physics import MicroscopeParams
from lorentz_live.simulator import (
    FieldCoolingMovie,
    FieldCoolingSettings,
    SimulatedFrame,
    bridge_command,
    free_loopback_endpoint,
)

PARAMS = MicroscopeParams(pixel_size_nm=6.0, defocus_nm=-6.0e5)
DOSE = 11.0
TEMPERATURE_K = 100.0
IMAGE = Path(__file__).resolve().parent.parent / "docs" / "img" / "live_accuracy_per_frame.png"


def make_movie(size: int, frames: int) -> list[SimulatedFrame]:
    settings = FieldCoolingSettings(
        size_px=size,
        params=PARAMS,
        ramp_frames=max(2, 2 * frames),
        temperature_start_k=TEMPERATURE_K,
        temperature_end_k=90.0,
        dose_e_per_px=DOSE,
        stage_drift_nm=(2.0, -1.0),
        seed=1,
    )
    movie = FieldCoolingMovie(settings)
    return [movie.next() for _ in range(frames)]


def live_frame(frame: SimulatedFrame, seq: int, shift_px: int = 0) -> LiveFrame:
    image = np.roll(frame.image.astype(np.float32), (shift_px, shift_px), axis=(0, 1))
    return LiveFrame(image, PARAMS, seq, time.time_ns())


def score(phase: torch.Tensor, frame: SimulatedFrame, shift_px: int = 0) -> tuple[float, float]:
    truth = torch.from_numpy(np.roll(frame.phi_m, (shift_px, shift_px), axis=(0, 1)))
    return phase_and_b_accuracy(phase, truth, PARAMS.pixel_size_nm)


def per_frame(movie: list[SimulatedFrame], config: LiveConfig) -> tuple[dict, dict]:
    """Scores per method and frame; the carried-Adam engine after the last frame."""
    sitie = SitieMethod()
    amortised = AmortisedMethod(background=False)
    instant = LiveEngine(config, instant=amortised)
    carried = LiveEngine(config)
    rows: dict[str, list] = {
        k: [] for k in ("sitie", "amortised", "carried", "fresh", "it_c", "it_f", "s_c", "ms_a")
    }
    fresh = None
    for seq, frame in enumerate(movie):
        live = live_frame(frame, seq)
        image = torch.from_numpy(live.image)
        rows["sitie"].append(score(sitie.reconstruct(live, image).phi_m, frame))
        start = time.perf_counter()
        answer = instant.answer(live)
        rows["ms_a"].append(1e3 * (time.perf_counter() - start))
        rows["amortised"].append(score(answer.phi_m, frame))
        amortised.train_pending()
        result = carried.process(live)
        if fresh is None:  # the same cold start for both policies
            fresh = fork(carried, carry_optimiser=False)
            other = result
        else:
            other = fresh.process(live)
        rows["carried"].append(score(result.phi_m, frame))
        rows["fresh"].append(score(other.phi_m, frame))
        rows["it_c"].append(result.iterations)
        rows["it_f"].append(other.iterations)
        rows["s_c"].append(result.compute_s)
        print(
            f"  frame {seq:2d}: sitie {rows['sitie'][-1][1]:.3f}  amortised {rows['amortised'][-1][1]:.3f}"
            f"  siprad carried {rows['carried'][-1][1]:.3f} ({result.iterations} it)"
            f"  fresh {rows['fresh'][-1][1]:.3f} ({other.iterations} it)   [B correlation]",
            flush=True,
        )
    return rows, {"engine": carried}


def fork(engine: LiveEngine, **changes) -> LiveEngine:
    """A new engine whose SIPRAD continues from a copy of ``engine``'s state."""
    config = dataclasses.replace(engine.config, **changes)
    refiner = copy.deepcopy(engine.refiner)
    refiner.config = config
    return LiveEngine(config, refiner=refiner)


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    labels = {
        "sitie": "Wiener-SITIE (instant)",
        "amortised": "amortised network",
        "carried": "warm SIPRAD, carried Adam",
        "fresh": "warm SIPRAD, fresh Adam 2x",
    }
    for index, name in enumerate(("phase", "B")):
        for key, label in labels.items():
            values = [row[index] for row in rows[key]]
            axes[index].plot(range(len(values)), values, marker=".", label=label)
        axes[index].set_xlabel("frame")
        axes[index].set_ylabel(f"{name} correlation")
        axes[index].grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def cold_starts(frame: SimulatedFrame, config: LiveConfig) -> list[tuple[str, float, tuple]]:
    """(setting, seconds, scores) of the first SIPRAD result."""
    settings = [
        ("200 pre-training, unbounded (default)", 200, None),
        ("50 pre-training, unbounded", 50, None),
        ("50 pre-training, 3 s budget", 50, 3.0),
    ]
    out = []
    for label, pretrain, budget in settings:
        cfg = dataclasses.replace(
            config, siprad=config.siprad.replace(pretrain_iterations=pretrain), cold_budget_s=budget
        )
        result = LiveEngine(cfg).process(live_frame(frame, 0))
        out.append((label, result.compute_s, score(result.phi_m, frame)))
        print(f"  cold {label}: {result.compute_s:.1f} s, {out[-1][2]}", flush=True)
    return out


def jumps(movie: list[SimulatedFrame], engine: LiveEngine) -> list[str]:
    """Warm SIPRAD on the frame after a drift jump or a gap, adaptive budget on and off."""
    lines = []
    seen = len(movie) - 11  # the engine's state is from frame ``seen``
    sitie = SitieMethod()
    cases = [(f"drift jump {j} px", j, 1) for j in (1, 5, 20)] + [("gap of 10 frames", 0, 10)]
    for label, shift, gap in cases:
        # the frame before the one the state saw (other noise), shifted; or 10 frames on
        index = seen - 1 if gap == 1 else seen + gap
        frame = movie[index]
        seq = seen + gap
        cells = [label]
        for changes in ({}, {"shift_for_drift": False}, {"adaptive": False}):
            trial = fork(engine, **changes)
            result = trial.process(live_frame(frame, seq, shift))
            p, b = score(result.phi_m, frame, shift)
            cells.append(f"{p:.3f} / {b:.3f} ({result.iterations} it, {result.compute_s:.1f} s)")
        live = live_frame(frame, seq, shift)
        p, b = score(sitie.reconstruct(live, torch.from_numpy(live.image)).phi_m, frame, shift)
        cells.append(f"{p:.3f} / {b:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def end_to_end(size: int, frames: int, fps: float, config: LiveConfig) -> dict[str, float]:
    """Bridge process -> runner in this process; every result caught by a listener."""
    endpoint = free_loopback_endpoint()
    command = bridge_command(
        endpoint,
        size=size,
        fps=fps,
        frames=frames,
        dose=DOSE,
        pixel_size_nm=PARAMS.pixel_size_nm,
        defocus_nm=PARAMS.defocus_nm,
        ramp_frames=2 * frames,
        temperature_start_k=TEMPERATURE_K,
    )
    bridge = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = LiveEngine(config)
    results: list[tuple[float, LiveResult]] = []
    engine.add_listener(lambda r: results.append((time.monotonic(), r)))
    runner = LiveRunner(engine, endpoint, idle_timeout_s=60.0, drain_timeout_s=120.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    thread.join(900)
    bridge.terminate()
    bridge.wait(60)
    summary = runner.summary
    instant = [r for _, r in results if r.method == "sitie"]
    refined = [(t, r) for t, r in results if r.method == "siprad"]
    latencies = [r.latency_s for r in instant]
    first = refined[0][1] if refined else None
    first_at = refined[0][0] if refined else float("inf")
    during_cold = [r for t, r in results if r.method == "sitie" and r.seq > 0 and t < first_at]
    span = refined[-1][0] - refined[1][0] if len(refined) > 2 else float("nan")
    return {
        "sent": frames,
        "answered": len({r.seq for r in instant}),
        "refined": len({r.seq for _, r in refined}),
        "dropped": summary.dropped,
        "within_0.2": float(np.mean([lat <= 0.2 for lat in latencies])) if latencies else 0.0,
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p99": float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "refine_rate": (len(refined) - 2) / span
        if np.isfinite(span) and span > 0
        else float("nan"),
        "first_siprad_s": first.latency_s if first else float("nan"),
        "during_cold": len(during_cold),
        "warm_it": statistics.median([r.iterations for _, r in refined[1:]] or [0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16, help="frames of the in-process movie")
    parser.add_argument("--e2e-seconds", type=float, default=40.0, help="length of a socket run")
    parser.add_argument("--fps", type=float, nargs="+", default=[2.0, 5.0, 10.0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = LiveConfig()
    movie = make_movie(args.size, args.frames + 10)  # 10 more for the gap case

    print("part 1: accuracy per frame", flush=True)
    rows, state = per_frame(movie[: args.frames], config)
    plot(rows, IMAGE)
    after = slice(5, None)

    def mean(key: str, index: int) -> float:
        return float(np.mean([row[index] for row in rows[key][after]]))

    def worst(key: str) -> float:
        return min(a[1] - s[1] for a, s in zip(rows[key][after], rows["sitie"][after], strict=True))

    print("part 2: cold start", flush=True)
    cold = cold_starts(movie[0], config)
    print("part 3: drift jumps and a gap", flush=True)
    jump_lines = jumps(movie, state["engine"])
    print("part 4: end to end", flush=True)
    e2e = [
        (fps, end_to_end(args.size, round(args.e2e_seconds * fps), fps, config)) for fps in args.fps
    ]

    body = [
        f"Movie: simulated field cooling (lorentz_live.simulator), {args.size} px, ordered bubble lattice at "
        f"{TEMPERATURE_K:g} K, field rising, bubbles jiggling, stage drift (2, -1) nm/frame, "
        f"{PARAMS.pixel_size_nm:g} nm pixels, dz = {PARAMS.defocus_nm * 1e-6:g} mm, Poisson dose {DOSE:g} e/px "
        f"(noise {100 / np.sqrt(DOSE):.0f} %); {args.threads} torch thread(s).  Correlations on the "
        "[N/16 : -N/16] crop; B = mean of x and y.  `LiveConfig()` defaults unless stated.",
        "",
        f"### Accuracy per frame ({args.frames} frames, causal; means over frames 5-{args.frames - 1})",
        "",
        "![accuracy per frame](img/live_accuracy_per_frame.png)",
        "",
        "| method | phase | B | worst B - SITIE | per frame |",
        "|---|---|---|---|---|",
        f"| Wiener-SITIE (instant) | {mean('sitie', 0):.3f} | {mean('sitie', 1):.3f} | - | one FFT solve |",
        f"| amortised network | {mean('amortised', 0):.3f} | {mean('amortised', 1):.3f} | "
        f"{worst('amortised'):+.3f} | answer {statistics.median(rows['ms_a']):.1f} ms (median) |",
        f"| warm SIPRAD, carried Adam (default) | {mean('carried', 0):.3f} | {mean('carried', 1):.3f} | "
        f"{worst('carried'):+.3f} | {statistics.median(rows['it_c'][1:]):.0f} it, "
        f"{statistics.median(rows['s_c'][1:]):.2f} s (median) |",
        f"| warm SIPRAD, fresh Adam at 2x | {mean('fresh', 0):.3f} | {mean('fresh', 1):.3f} | "
        f"{worst('fresh'):+.3f} | {statistics.median(rows['it_f'][1:]):.0f} it (median) |",
        "",
        "### Cold start (frame 0): time and accuracy of the first SIPRAD result",
        "",
        "| setting | seconds | phase / B |",
        "|---|---|---|",
        *[f"| {label} | {seconds:.1f} | {s[0]:.3f} / {s[1]:.3f} |" for label, seconds, s in cold],
        "",
        "### Drift jumps and a gap, after the warm state of the last frame of part 1",
        "",
        "A drift jump: the frame before that one (its own noise), shifted by the jump in y and x; "
        "the gap: the movie's frame 10 frames later.",
        "",
        "| case | warm SIPRAD (defaults): phase / B | input not shifted for drift | fixed budget | Wiener-SITIE |",
        "|---|---|---|---|---|",
        *jump_lines,
        "",
        f"### End to end through sockets ({args.e2e_seconds:g} s of frames per run)",
        "",
        "`lorentz-bridge simulate` process -> `LiveRunner` in this process (instant Wiener-SITIE inline, SIPRAD "
        "in its own thread).  answered / refined = frames with a result of that method; latency = camera "
        "timestamp to instant result; refinement rate = SIPRAD results per second after the second one; "
        "first SIPRAD = latency of the cold start's result; during cold = frames answered while it ran.",
        "",
        "| fps in | answered | within 0.2 s | instant p50 / p99 (ms) | refined | SIPRAD results/s | warm it | first SIPRAD (s) | during cold | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {fps:g} | {e['answered']}/{e['sent']} | {100 * e['within_0.2']:.0f} % | "
            f"{1e3 * e['p50']:.1f} / {1e3 * e['p99']:.1f} | {e['refined']}/{e['sent']} | {e['refine_rate']:.2f} | "
            f"{e['warm_it']:.0f} | {e['first_siprad_s']:.1f} | {e['during_cold']} | {e['dropped']} |"
            for fps, e in e2e
        ],
    ]
    command = "make bench-live  (" + " ".join(["python", "benchmarks/live.py", *sys.argv[1:]]) + ")"
    for old in ("live-cpu", "live-e2e-cpu"):  # sections of the previous version of this script
        text = REPORT.read_text()
        start, end = f"<!-- {old}:start -->", f"<!-- {old}:end -->"
        if start in text:
            text = text[: text.index(start)] + text[text.index(end) + len(end) :].lstrip("\n")
            REPORT.write_text(text)
    write_section("live", "Live loop: every frame answered (cpu)", "\n".join(body), command)


if __name__ == "__main__":
    main()
