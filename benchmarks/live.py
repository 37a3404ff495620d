"""Warm-started live reconstruction of a simulated field-cooling movie.

    make bench-live            (python benchmarks/live.py [--sizes 128 256] [--frames 60])

Two parts, one run:

1. Accuracy, in process: every frame reconstructed warm-started from the previous
   one, and every ``--cold-every``-th frame also from a cold start (fresh network,
   pre-training, full budget); phase and B correlation with the simulator's
   ground truth on the [N/16 : -N/16] crop, beside plain SITIE; iterations per
   frame; with and without stage drift (is registration of the warm start needed?).
2. End to end through real sockets: ``lorentz-bridge simulate`` in its own
   process publishing at ``--fps``, the live runner reconstructing what it can
   (latest-frame policy), fps, latency p50/p99 and dropped frames.

Writes the "live" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from lorentz_live.live import LiveConfig, LiveEngine, LiveFrame
from lorentz_live.live.runner import LiveRunner
from lorentz_live.metrics import phase_and_b_accuracy
from lorentz_live.physics import sitie_phase
from lorentz_live.simulator import (
    FieldCoolingMovie,
    FieldCoolingSettings,
    SimulatedFrame,
    bridge_command,
    free_loopback_endpoint,
)


def scores(phase: torch.Tensor, truth: torch.Tensor, pixel_nm: float) -> tuple[float, float]:
    return phase_and_b_accuracy(phase, truth, pixel_nm)


def movie_settings(
    size: int, frames: int, dose: float, stage_drift_nm: float
) -> FieldCoolingSettings:
    """Bubbles present from the first frame: cooling from 250 K (Tc 280 K) to 100 K."""
    return FieldCoolingSettings(
        size_px=size,
        ramp_frames=max(2, frames),
        temperature_start_k=250.0,
        dose_e_per_px=dose,
        stage_drift_nm=(stage_drift_nm, -0.5 * stage_drift_nm),
        seed=1,
    )


def make_movie(settings: FieldCoolingSettings, frames: int) -> list[SimulatedFrame]:
    movie = FieldCoolingMovie(settings)
    return [movie.next() for _ in range(frames)]


def accuracy(
    frames: list[SimulatedFrame],
    settings: FieldCoolingSettings,
    config: LiveConfig,
    cold_every: int,
):
    """Per-frame rows: seq, warm phase/B, warm iterations, cold phase/B, cold iterations, SITIE phase/B."""
    params = settings.params
    warm_engine = LiveEngine(config)
    cold_engine = LiveEngine(config)
    rows = []
    for seq, frame in enumerate(frames):
        truth = torch.from_numpy(frame.phi_m)
        wire = LiveFrame(frame.image, params, seq, time.time_ns())
        warm = warm_engine.process(wire)
        row = {
            "seq": seq,
            "warm": scores(warm.phi_m, truth, params.pixel_size_nm),
            "warm_it": warm.iterations
            + (config.siprad.pretrain_iterations if not warm.warm else 0),
            "warm_s": warm.compute_s,
            "sitie": scores(
                sitie_phase(torch.from_numpy(frame.image.astype(np.float32)), params),
                truth,
                params.pixel_size_nm,
            ),
            "drift": warm.drift_px,
        }
        if seq % cold_every == 0:
            cold_engine.request_cold_restart("benchmark")
            cold = cold_engine.process(wire)
            row["cold"] = scores(cold.phi_m, truth, params.pixel_size_nm)
            row["cold_it"] = cold.iterations + config.siprad.pretrain_iterations
            row["cold_s"] = cold.compute_s
        rows.append(row)
        print(
            f"  frame {seq:3d}: warm {row['warm'][0]:.3f}/{row['warm'][1]:.3f} ({row['warm_it']} it, "
            f"{row['warm_s']:.2f} s)"
            + (
                f"  cold {row['cold'][0]:.3f}/{row['cold'][1]:.3f} ({row['cold_it']} it)"
                if "cold" in row
                else ""
            )
            + f"  sitie {row['sitie'][0]:.3f}/{row['sitie'][1]:.3f}",
            flush=True,
        )
    return rows


def summarise(rows: list[dict]) -> dict[str, float]:
    """Means over the frames that have a cold reference (frame 0 excluded: it is cold in both)."""
    paired = [row for row in rows[1:] if "cold" in row]
    warm_all = rows[1:]
    return {
        "warm_phase": statistics.mean(r["warm"][0] for r in paired),
        "warm_b": statistics.mean(r["warm"][1] for r in paired),
        "cold_phase": statistics.mean(r["cold"][0] for r in paired),
        "cold_b": statistics.mean(r["cold"][1] for r in paired),
        "sitie_phase": statistics.mean(r["sitie"][0] for r in paired),
        "sitie_b": statistics.mean(r["sitie"][1] for r in paired),
        "warm_it": statistics.median(r["warm_it"] for r in warm_all),
        "cold_it": statistics.median(r["cold_it"] for r in paired),
        "warm_s": statistics.median(r["warm_s"] for r in warm_all),
        "cold_s": statistics.median(r["cold_s"] for r in paired),
        "worst_warm_minus_sitie_b": min(r["warm"][1] - r["sitie"][1] for r in warm_all),
        "paired": len(paired),
    }


def end_to_end(
    size: int, frames: int, fps: float, dose: float, config: LiveConfig
) -> dict[str, float]:
    """Bridge process -> runner (this process) -> nothing; returns fps, latency and drops."""
    endpoint = free_loopback_endpoint()
    command = bridge_command(
        endpoint,
        size=size,
        fps=fps,
        frames=0,
        dose=dose,
        ramp_frames=10 * frames,
        temperature_start_k=250,
    )
    bridge = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the bridge streams until stopped; the runner takes the first cold frame + ``frames`` more
    runner = LiveRunner(LiveEngine(config), endpoint, max_frames=frames + 1, idle_timeout_s=30.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    thread.join(3600)
    bridge.terminate()
    bridge.wait(60)
    summary = runner.summary
    # steady state: leave out the first (cold) frame
    latencies = summary.latencies_s[1:] or summary.latencies_s
    return {
        "frames_sent": summary.frames + summary.dropped,
        "reconstructed": summary.frames,
        "dropped": summary.dropped,
        "fps": summary.steady_fps,
        "latency_p50": float(np.percentile(latencies, 50)),
        "latency_p99": float(np.percentile(latencies, 99)),
        "iterations": statistics.median(summary.iterations[1:] or summary.iterations),
        "ended_by": summary.ended_by,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--cold-every", type=int, default=10)
    parser.add_argument(
        "--dose", type=float, default=4.0, help="electrons per pixel (noise = 1/sqrt(dose))"
    )
    parser.add_argument(
        "--fps", type=float, default=5.0, help="bridge frame rate of the socket run"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the engine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--skip-accuracy", action="store_true", help="only the end-to-end socket run"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = LiveConfig(device=args.device)
    sections = [
        f"Movie: simulated field cooling (lorentz_live.simulator), bubble lattice drifting, jiggling and "
        f"losing bubbles, {args.frames} frames, 4 nm pixels, dz = -1 mm, Poisson dose {args.dose:g} e/px "
        f"(noise {100 / np.sqrt(args.dose):.0f} %), engine on {args.device} with {args.threads} torch thread(s). "
        f"Warm: `LiveConfig()` defaults (warm frames {config.warm_min_iterations}-{config.warm_max_iterations} "
        f"iterations, discrepancy stop); cold: `SipradConfig()` defaults ({config.siprad.pretrain_iterations} "
        f"pre-training + up to {config.siprad.max_iterations} iterations), run on every {args.cold_every}th frame. "
        "Correlations on the [N/16 : -N/16] crop, B = mean of x and y; iterations count pre-training.",
        "",
        "| size | drift nm/frame | warm phase / B | cold phase / B | SITIE phase / B | warm it (median) | cold it (median) | it ratio | warm s/frame | cold s/frame | worst warm - SITIE (B) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in [] if args.skip_accuracy else args.sizes:
        for drift in (0.0, 4.0):
            print(f"size {size}, stage drift {drift} nm/frame", flush=True)
            settings = movie_settings(size, args.frames, args.dose, drift)
            rows = accuracy(make_movie(settings, args.frames), settings, config, args.cold_every)
            s = summarise(rows)
            sections.append(
                f"| {size} | {drift:g} | {s['warm_phase']:.3f} / {s['warm_b']:.3f} | {s['cold_phase']:.3f} / "
                f"{s['cold_b']:.3f} | {s['sitie_phase']:.3f} / {s['sitie_b']:.3f} | {s['warm_it']:.0f} | "
                f"{s['cold_it']:.0f} | {s['cold_it'] / max(s['warm_it'], 1):.1f}x | {s['warm_s']:.2f} | "
                f"{s['cold_s']:.2f} | {s['worst_warm_minus_sitie_b']:+.3f} |"
            )
            print(sections[-1], flush=True)
    e2e = [
        f"End to end through tcp loopback: `lorentz-bridge simulate` process at {args.fps:g} fps -> live runner "
        f"(latest-frame policy) in this process, until {args.frames} frames after the first (cold) one are reconstructed; "
        "frames the bridge sent meanwhile and the engine skipped count as dropped. fps = results per second from the first result to the last "
        "(steady state, the cold start excluded); latency = camera timestamp to result, first (cold) frame excluded.",
        "",
        "| size | frames offered | reconstructed | dropped | fps | latency p50 (s) | latency p99 (s) | it/frame (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        e = end_to_end(size, args.frames, args.fps, args.dose, config)
        e2e.append(
            f"| {size} | {e['frames_sent']} | {e['reconstructed']} | {e['dropped']} | {e['fps']:.2f} | "
            f"{e['latency_p50']:.2f} | {e['latency_p99']:.2f} | {e['iterations']:.0f} |"
        )
        print(e2e[-1], flush=True)
    command = "make bench-live  (" + " ".join(["python", "benchmarks/live.py", *sys.argv[1:]]) + ")"
    write_section(
        f"live-e2e-{args.device}",
        f"Live end to end through sockets ({args.device})",
        "\n".join(e2e),
        command,
    )
    if args.skip_accuracy:
        return
    write_section(
        f"live-{args.device}",
        f"Live warm-started reconstruction ({args.device})",
        "\n".join(sections),
        command,
    )


if __name__ == "__main__":
    main()
