"""The camera-rate path: the amortised network against Wiener-SITIE and warm SIPRAD.

    make bench-amortised       (python benchmarks/live_amortised.py [--seeds 1 2 3])

Two movies, 128 px, 6 nm pixels, dz = -0.6 mm, scored per frame against the
true phase, causally (frame t answered only from frames before it):

* the issue's movie (#12, item 3; benchmarks/_live_common.py, shared with
  benchmarks/live.py): 40 frames of a drifting Bloch-bubble lattice (either
  sense) losing bubbles (the field of lorentz_live.simulator held at 100 mT,
  100 K, for 20 frames, then rising to 290 mT), stage drift (2, -1) nm/frame,
  Gaussian noise sigma / mean = 0.3; means over frames 10-39;
* the field-cooling movie of benchmarks/live.py (16 frames, Poisson 30 %);
  means over frames 5-15.

Methods: Wiener-SITIE of the frame; the issue author's recipe as written (a
3-level U-Net on the frame's plain SITIE phase, output = phase, 30 Adam steps
at 1e-3 per arriving frame on the pair (input frame i, image loss against
frame i + 1)); the amortised network of lorentz_live.live.amortised with its
defaults (and without the running mean: the network alone); warm SIPRAD
(``LiveConfig()``).  Then the rate: frames offered at 25 fps to a
LivePipeline whose instant method is the amortised network training in its
own thread while SIPRAD refines in another, answers per second and ms per
answer.

Writes the "live-amortised" section of docs/benchmarks.md and
docs/img/live_amortised_per_frame.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _live_common import PARAMS, Spy, issue_movie
from _report import write_section

from lorentz_live.live import LiveConfig, LiveEngine, LiveFrame
from lorentz_live.live.amortised import AmortisedConfig, AmortisedMethod
from lorentz_live.live.methods import SipradMethod, SitieMethod, TransferCache, model_fit
from lorentz_live.live.pipeline import LivePipeline
from lorentz_live.metrics import phase_and_b_accuracy
from lorentz_live.physics import MicroscopeParams, sitie_phase
from lorentz_live.simulator import FieldCoolingMovie, FieldCoolingSettings
from lorentz_live.siprad import DeepImagePrior, NetworkConfig

IMAGE = Path(__file__).resolve().parent.parent / "docs" / "img" / "live_amortised_per_frame.png"

Movie = list[tuple[np.ndarray, torch.Tensor]]


def issue_frames(seed: int, params: MicroscopeParams = PARAMS) -> Movie:
    """(image, true phi_m) per frame of the issue's movie (benchmarks/_live_common.py)."""
    return [(f.image, torch.from_numpy(f.phi_m)) for f in issue_movie(seed, params=params)]


def cooling_movie(seed: int, frames: int = 16, size: int = 128) -> Movie:
    """The movie of benchmarks/live.py (seed 1 there)."""
    settings = FieldCoolingSettings(
        size_px=size,
        params=PARAMS,
        ramp_frames=2 * frames,
        temperature_start_k=100.0,
        temperature_end_k=90.0,
        dose_e_per_px=11.0,
        stage_drift_nm=(2.0, -1.0),
        seed=seed,
    )
    movie = FieldCoolingMovie(settings)
    out = []
    for _ in range(frames):
        frame = movie.next()
        out.append((frame.image.astype(np.float32), torch.from_numpy(frame.phi_m)))
    return out


class AuthorRecipe:
    """The issue author's recipe as written, the baseline: see the module text."""

    method = "author recipe"

    def __init__(self, seed: int, steps: int = 30, learning_rate: float = 1e-3) -> None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.net = DeepImagePrior(1, 1, NetworkConfig(width=8, depth=3, max_width=32, skip=True))
        torch.random.set_rng_state(generator_state)
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.steps = steps
        self.transfer = TransferCache()
        self.scale: float | None = None
        self.previous: torch.Tensor | None = None

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> torch.Tensor:
        norm = image / image.mean()
        phase = sitie_phase(norm, frame.params)
        phase = phase - phase.mean()
        self.scale = self.scale or float(phase.std())
        net_input = (phase / self.scale)[None, None]
        with torch.no_grad():
            answer = self.scale * self.net(net_input)[0, 0]
        transfer = self.transfer(tuple(norm.shape), frame.params)
        if self.previous is not None:  # pair (input i - 1, image i): trained after answering
            for _ in range(self.steps):
                self.optimiser.zero_grad()
                fit = model_fit(self.scale * self.net(self.previous)[0, 0], transfer)
                torch.mean((fit - norm) ** 2).backward()
                self.optimiser.step()
        self.previous = net_input
        return answer - answer.mean()


def score(phase: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    return phase_and_b_accuracy(phase, truth, PARAMS.pixel_size_nm)


def per_frame(movie: Movie, seed: int) -> dict[str, list[tuple[float, float]]]:
    """(phase, B) correlation per frame and method, causal, in the caller's thread."""
    sitie = SitieMethod()
    mean = SitieMethod(average=LiveConfig().instant_average)
    recipe = AuthorRecipe(seed)
    amortised = AmortisedMethod(AmortisedConfig(seed=seed), background=False)
    alone = AmortisedMethod(AmortisedConfig(seed=seed, average=1.0), background=False)
    config = LiveConfig()
    siprad = LiveEngine(config, refiner=Spy(SipradMethod(config)))
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in METHODS}
    for seq, (pixels, truth) in enumerate(movie):
        frame = LiveFrame(pixels, PARAMS, seq, time.time_ns())
        image = torch.from_numpy(pixels)
        rows["sitie"].append(score(sitie.reconstruct(frame, image).phi_m, truth))
        rows["mean"].append(score(mean.reconstruct(frame, image).phi_m, truth))
        rows["recipe"].append(score(recipe.reconstruct(frame, image), truth))
        for key, method in (("amortised", amortised), ("alone", alone)):
            rows[key].append(score(method.reconstruct(frame, image).phi_m, truth))
            method.train_pending()
        siprad.answer(frame)  # as the pipeline does: SIPRAD then refines the running mean
        siprad.process(frame)
        rows["siprad"].append(score(siprad.refiner.last.phi_m, truth))
        print(
            f"  frame {seq:2d} B: "
            + "  ".join(f"{key} {values[-1][1]:.3f}" for key, values in rows.items()),
            flush=True,
        )
    return rows


METHODS = {
    "sitie": "Wiener-SITIE of the frame",
    "mean": "Wiener-SITIE of the registered running mean (default instant)",
    "recipe": "author's recipe (plain SITIE in, 30 steps, pair i -> i+1)",
    "alone": "amortised network without the running mean",
    "amortised": "amortised network (defaults)",
    "siprad": "warm SIPRAD (of the running mean, before the publish guard)",
}


def warm_up(rows: dict[str, list[tuple[float, float]]], key: str) -> int | None:
    """First frame from which method ``key``'s B correlation is >= warm SIPRAD's on every frame."""
    ahead = [a[1] >= s[1] for a, s in zip(rows[key], rows["siprad"], strict=True)]
    for start in range(len(ahead)):
        if all(ahead[start:]):
            return start
    return None


def rate(movie: Movie, seconds: float, fps: float, instant: str) -> dict[str, float]:
    """Frames offered at ``fps`` to a pipeline: ``instant`` answers inline (the amortised
    network trains in its own thread), SIPRAD refines in another."""
    engine = LiveEngine(LiveConfig(instant=instant))
    method = engine.instant
    times: list[float] = []
    done = threading.Event()
    answered = 0
    with LivePipeline(engine) as pipeline:
        start = time.perf_counter()
        seq = 0
        while time.perf_counter() - start < seconds:
            pixels, _ = movie[seq % len(movie)]
            begin = time.perf_counter()
            pipeline.submit(LiveFrame(pixels, PARAMS, seq, time.time_ns()))
            times.append(time.perf_counter() - begin)
            answered += 1
            seq += 1
            pause = start + seq / fps - time.perf_counter()
            if pause > 0:
                done.wait(pause)
        span = time.perf_counter() - start
        refined, steps = pipeline.refined, getattr(method, "steps", 0)
    if isinstance(method, AmortisedMethod):
        method.close()
    return {
        "offered_fps": fps,
        "answered_per_s": answered / span,
        "ms_median": 1e3 * statistics.median(times),
        "ms_p99": 1e3 * float(np.percentile(times, 99)),
        "refined_per_s": refined / span,
        "steps_per_frame": steps / answered,
    }


CHANGED = PARAMS.replace(defocus_nm=-9.0e5)


def microscope_change(seed: int, at: int = 20, after: int = 10) -> dict[str, float]:
    """Mean B correlation over frames ``at`` .. ``at + after - 1`` of the issue movie
    whose defocus is set from -0.6 to -0.9 mm at frame ``at``: the amortised network
    keeping its weights across the change or starting afresh."""
    movie = issue_frames(seed)[:at] + issue_frames(seed, params=CHANGED)[at : at + after]
    methods = {
        "sitie": SitieMethod(),
        "mean": SitieMethod(average=LiveConfig().instant_average),
        "keep": AmortisedMethod(AmortisedConfig(seed=seed, keep_weights=True), background=False),
        "reset": AmortisedMethod(AmortisedConfig(seed=seed, keep_weights=False), background=False),
    }
    scores: dict[str, list[float]] = {key: [] for key in methods}
    for seq, (pixels, truth) in enumerate(movie):
        frame = LiveFrame(pixels, PARAMS if seq < at else CHANGED, seq, time.time_ns())
        for key, method in methods.items():
            phase = method.reconstruct(frame, torch.from_numpy(pixels)).phi_m
            if isinstance(method, AmortisedMethod):
                method.train_pending()
            if seq >= at:
                scores[key].append(score(phase, truth)[1])
    return {key: float(np.mean(values)) for key, values in scores.items()}


def plot(curves: dict[str, dict[str, list[tuple[float, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6))
    for axis, (title, rows) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        for key, label in METHODS.items():
            axis.plot([row[1] for row in rows[key]], marker=".", label=label)
        axis.set_title(title, fontsize=9)
        axis.set_ylim(0.6, 1.0)  # the recipe's first answers (untrained, ~0) lie below
        axis.set_xlabel("frame")
        axis.set_ylabel("B correlation")
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def summary(name: str, runs: list[dict[str, list[tuple[float, float]]]], after: int) -> list[str]:
    """Table rows: mean phase / B over frames >= ``after``, per seed and overall."""

    def mean(rows: dict, key: str, index: int) -> float:
        return float(np.mean([row[index] for row in rows[key][after:]]))

    lines = []
    for key, label in METHODS.items():
        phases = [mean(rows, key, 0) for rows in runs]
        bs = [mean(rows, key, 1) for rows in runs]
        worst = min(
            min(a[1] - s[1] for a, s in zip(rows[key][after:], rows["sitie"][after:], strict=True))
            for rows in runs
        )
        lines.append(
            f"| {name} | {label} | {np.mean(phases):.3f} | {np.mean(bs):.3f} | "
            f"{' '.join(f'{b:.3f}' for b in bs)} | {worst:+.3f} |"
        )
    return lines


def run(
    label: str, make: Callable[[int], Movie], seeds: list[int]
) -> list[dict[str, list[tuple[float, float]]]]:
    runs = []
    for seed in seeds:
        print(f"{label}, seed {seed}", flush=True)
        runs.append(per_frame(make(seed), seed))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    issue = run("issue movie", issue_frames, args.seeds)
    cooling = run("field-cooling movie", cooling_movie, args.seeds)
    plot(
        {
            f"issue movie, seed {args.seeds[0]}": issue[0],
            f"field-cooling movie, seed {args.seeds[0]}": cooling[0],
        },
        IMAGE,
    )
    print("rate", flush=True)
    looped = issue_frames(args.seeds[0])
    speeds = {
        kind: rate(looped, args.rate_seconds, args.fps, kind) for kind in ("sitie", "amortised")
    }
    print(speeds, flush=True)
    keep = AmortisedConfig().keep_weights
    default = {"keep": "(default) " if keep else "", "reset": "" if keep else "(default) "}
    print("microscope change", flush=True)
    change = [microscope_change(seed) for seed in args.seeds]
    print(change, flush=True)
    warm = {key: [warm_up(rows, key) for rows in issue + cooling] for key in ("mean", "amortised")}
    body = [
        "Movies and methods: see benchmarks/live_amortised.py.  Correlations on the [N/16 : -N/16] "
        "crop, B = mean of x and y; 1 torch thread.  Each method sees every frame in turn in one "
        "thread (the networks train their 30 steps per frame after answering it).",
        "",
        "![B correlation per frame](img/live_amortised_per_frame.png)",
        "",
        f"Means over frames 10-39 (issue movie) and 5-15 (field-cooling movie), seeds {args.seeds}; "
        "worst = the lowest per-frame B - Wiener-SITIE over those frames and seeds.",
        "",
        "| movie | method | phase | B | B per seed | worst B - SITIE |",
        "|---|---|---|---|---|---|",
        *summary("issue", issue, 10),
        *summary("field cooling", cooling, 5),
        "",
        "Warm-up: the first frame from which the method's B is at or above warm SIPRAD's on every "
        "later frame (None: never), issue movie then field-cooling movie, per seed: running mean "
        f"{warm['mean']}, amortised network {warm['amortised']}.",
        "",
        "### A defocus change (-0.6 -> -0.9 mm at frame 20 of the issue movie)",
        "",
        "Mean B correlation over the 10 frames after the change (the running mean and the pairs "
        "restart at the change in every case), per seed.",
        "",
        "| Wiener-SITIE of the frame | running mean | amortised, weights kept "
        f"{default['keep']}| amortised, fresh network {default['reset']}|",
        "|---|---|---|---|",
        *[
            f"| {c['sitie']:.3f} | {c['mean']:.3f} | {c['keep']:.3f} | {c['reset']:.3f} |"
            for c in change
        ],
        "",
        f"### Rate: frames offered at {args.fps:g} fps for {args.rate_seconds:g} s (issue movie, "
        "looped) to a LivePipeline: the instant method answers inline (the amortised network "
        "trains in its own thread), SIPRAD refines in another (its cold start included), all on "
        "the same 2 cores",
        "",
        "| instant method | answered / s | ms per answer (median / p99) | SIPRAD results / s "
        "| training steps per frame |",
        "|---|---|---|---|---|",
        *[
            f"| {kind} | {v['answered_per_s']:.1f} | {v['ms_median']:.1f} / {v['ms_p99']:.1f} | "
            f"{v['refined_per_s']:.2f} | {v['steps_per_frame']:.1f} |"
            for kind, v in speeds.items()
        ],
    ]
    command = (
        "make bench-amortised  ("
        + " ".join(["python", "benchmarks/live_amortised.py", *sys.argv[1:]])
        + ")"
    )
    write_section(
        "live-amortised", "Live loop: the amortised network (cpu)", "\n".join(body), command
    )


if __name__ == "__main__":
    main()
