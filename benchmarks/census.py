"""Accuracy and speed of the live texture census on simulated maps with known bubbles.

    make bench-census        (python benchmarks/census.py [--seeds 5])

Cases, each over ``--seeds`` seeds (bubble lattice 128 px, 4 nm/px, spacing
110 nm, radius 32 nm, 4 nm jitter, random Bloch senses, 60 nm film at 2e5 A/m):

* truth phi_m, periodic census (what the census can do at best);
* truth phi_m, non-periodic census (as in the engine: bubbles cut by the edge
  are not counted; the truth is then the bubbles whose centre lies one radius
  or more inside the field of view);
* SITIE reconstruction of a noisy image (25 % Gaussian noise, dz = -0.5 mm,
  1.5 px smoothing), non-periodic;
* frames of the field-cooling movie the simulated bridge publishes (Poisson
  noise at 200 e/px, shrinking bubbles), reconstructed by SITIE, non-periodic;
* straight stripes (period 80-130 nm): the period.

A found bubble matches a true one when their centres are closer than half a
radius.  Writes the "census" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from lorentz_live.analysis import texture_census
from lorentz_live.physics import (
    MicroscopeParams,
    bubble_texture,
    film_magnetic_phase,
    hexagonal_lattice,
    simulate_image,
    sitie_phase,
    stripe_domains,
)
from lorentz_live.simulator import FieldCoolingMovie, FieldCoolingSettings

PIXEL_NM = 4.0


def phase_of(bubbles, shape) -> np.ndarray:
    texture = bubble_texture(shape, PIXEL_NM, bubbles, wall_width_nm=8.0)
    return film_magnetic_phase(texture, 2.0e5, 60.0, PIXEL_NM).numpy()


def score(census, truth, shape, *, periodic: bool) -> dict[str, float]:
    """Recall, precision, sense agreement, count and diameter errors against ``truth``."""
    height, width = shape
    if not periodic:  # only bubbles whose wall ring lies in the field of view can be seen
        truth = [
            b
            for b in truth
            if min(b.y_nm, b.x_nm, height * PIXEL_NM - b.y_nm, width * PIXEL_NM - b.x_nm)
            >= b.radius_nm
        ]
    matched, senses = 0, 0
    used: set[int] = set()
    for found in census.bubbles:
        best, best_d = None, np.inf
        for index, true in enumerate(truth):
            dy = found.y_px - true.y_nm / PIXEL_NM
            dx = found.x_px - true.x_nm / PIXEL_NM
            if periodic:
                dy = (dy + height / 2) % height - height / 2
                dx = (dx + width / 2) % width - width / 2
            if np.hypot(dy, dx) < best_d:
                best, best_d = index, np.hypot(dy, dx)
        if (
            best is not None
            and best not in used
            and best_d < 0.5 * truth[best].radius_nm / PIXEL_NM
        ):
            used.add(best)
            matched += 1
            senses += found.handedness == (1 if truth[best].helicity_rad > 0 else -1)
    true_diameter = 2 * statistics.mean(b.radius_nm for b in truth) if truth else float("nan")
    found_diameter = census.diameter_mean_nm or float("nan")
    return {
        "truth": len(truth),
        "found": census.count,
        "recall": matched / len(truth) if truth else float("nan"),
        "precision": matched / census.count if census.count else float("nan"),
        "senses": senses / matched if matched else float("nan"),
        "diameter_error": found_diameter / true_diameter - 1.0,
        "hexatic": census.hexatic_order if census.hexatic_order is not None else float("nan"),
    }


def lattice_cases(seed: int) -> dict[str, dict[str, float]]:
    shape = (128, 128)
    truth = hexagonal_lattice(
        shape, PIXEL_NM, 110.0, 32.0, jitter_nm=4.0, helicity="random", seed=seed
    )
    phase = phase_of(truth, shape)
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-5.0e5)
    image = simulate_image(torch.from_numpy(phase), params)
    image = image + 0.25 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    sitie = sitie_phase(image, params, sigma_px=1.5).numpy()
    return {
        "truth phi_m, periodic": score(
            texture_census(phase, PIXEL_NM, periodic=True), truth, shape, periodic=True
        ),
        "truth phi_m": score(texture_census(phase, PIXEL_NM), truth, shape, periodic=False),
        "SITIE, 25 % noise": score(texture_census(sitie, PIXEL_NM), truth, shape, periodic=False),
    }


def movie_case(seed: int, frames: tuple[int, ...] = (20, 28, 36)) -> list[dict[str, float]]:
    settings = FieldCoolingSettings(size_px=128, ramp_frames=40, seed=seed)
    movie = FieldCoolingMovie(settings)
    params = settings.params
    rows = []
    for index in range(max(frames) + 1):
        frame = movie.next()
        if index not in frames:
            continue
        image = torch.from_numpy(frame.image.astype(np.float64))
        image = image / image.mean()
        phase = sitie_phase(image, params, sigma_px=1.5).numpy()
        census = texture_census(phase, params.pixel_size_nm)
        rows.append(score(census, frame.bubbles, movie.shape, periodic=False))
    return rows


def stripe_errors(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    errors = []
    for period in rng.uniform(80.0, 130.0, 3):
        texture = stripe_domains((128, 128), PIXEL_NM, float(period))
        tiled = 128 * PIXEL_NM / round(128 * PIXEL_NM / period)
        phase = film_magnetic_phase(texture, 2.0e5, 60.0, PIXEL_NM).numpy()
        census = texture_census(phase, PIXEL_NM)
        errors.append((census.period_nm or float("nan")) / tiled - 1.0)
    return errors


def timing_ms(size: int, repeats: int = 20) -> tuple[float, float]:
    """Median wall and CPU time of one census, ms (CPU time is robust to a busy machine)."""
    shape = (size, size)
    phase = phase_of(hexagonal_lattice(shape, PIXEL_NM, 110.0, 32.0, helicity="random"), shape)
    texture_census(phase, PIXEL_NM)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        texture_census(phase, PIXEL_NM)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def summary_row(name: str, rows: list[dict[str, float]]) -> str:
    def mean(key: str) -> float:
        values = [r[key] for r in rows if np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    def worst(key: str) -> float:
        values = [r[key] for r in rows if np.isfinite(r[key])]
        return min(values) if values else float("nan")

    extra = statistics.mean(r["found"] - r["recall"] * r["truth"] for r in rows)
    return (
        f"| {name} | {len(rows)} | {statistics.mean(r['truth'] for r in rows):.1f} | "
        f"{statistics.mean(r['found'] for r in rows):.1f} | "
        f"{mean('recall'):.3f} (worst {worst('recall'):.3f}) | "
        f"{mean('precision'):.3f} (worst {worst('precision'):.3f}) | "
        f"{mean('senses'):.3f} (worst {worst('senses'):.3f}) | "
        f"{100 * mean('diameter_error'):+.1f} % | {mean('hexatic'):.2f} | {extra:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases: dict[str, list[dict[str, float]]] = {}
    stripes: list[float] = []
    for seed in range(args.seeds):
        for name, row in lattice_cases(seed).items():
            cases.setdefault(name, []).append(row)
        cases.setdefault("field-cooling movie, SITIE", []).extend(movie_case(seed))
        stripes += stripe_errors(seed)
    speed = {size: timing_ms(size) for size in (128, 256, 512)}
    lines = [
        "Found vs true bubbles on simulated maps (benchmarks/census.py docstring for the cases); "
        f"seeds 0-{args.seeds - 1}.  Recall = true bubbles found, precision = found bubbles "
        "that are true, senses = right handedness among matched bubbles (mean, and the worst "
        "map), diameter = mean found diameter / mean true diameter - 1, extra = found bubbles "
        "that match none (mean per map).",
        "",
        "| case | maps | true bubbles | found | recall | precision | senses right | diameter "
        "| hexatic order | extra |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [summary_row(name, rows) for name, rows in cases.items()]
    finite = [abs(e) for e in stripes if np.isfinite(e)]
    lines += [
        "",
        f"Stripe period ({len(stripes)} stripe maps, 80-130 nm): "
        f"{len(finite)} measured, |error| mean {100 * statistics.mean(finite):.2f} %, "
        f"max {100 * max(finite):.2f} %.",
        "",
        "Time per census (median of 20, one thread, bubble lattice), wall / CPU: "
        + ", ".join(f"{size}² {wall:.1f} / {cpu:.1f} ms" for size, (wall, cpu) in speed.items())
        + ".",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(
            "census",
            "Live texture census: accuracy on simulated maps, speed",
            body,
            "python benchmarks/census.py " + " ".join(sys.argv[1:]),
        )


if __name__ == "__main__":
    main()
