"""SIPRAD accuracy benchmark: SIPRAD vs plain SITIE vs the best hand-tuned SITIE.

Run by ``make bench-accuracy``.  Writes docs/accuracy.md entirely (nothing in it
is edited by hand), the heat maps docs/img/accuracy_*.png and the "siprad" speed
section of docs/benchmarks.md.

Grid: cells drawn at random (seeded) from the factor levels of ``FACTORS`` (a
full factorial does not fit a CPU budget), each reconstructed for ``--seeds``
noise/texture seeds; plus the paper's own case (shared data), its non-periodic
crop with each boundary, a speed measurement, and the non-uniform amplitude
cases (a contaminated lattice and patterned islands, :func:`run_amplitude`).

Usage::

    python benchmarks/accuracy.py                 # the documented run
    python benchmarks/accuracy.py --cells 6 --seeds 1 --no-docs   # a smoke run
    # the contaminated and patterned samples alone (also rewrites lorentz_live/measured.py,
    # the figures the CLI's --amplitude help quotes); docs from saved parts with --load
    python benchmarks/accuracy.py --only amplitude --save out/amplitude.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from lorentz_live.metrics import (  # noqa: E402
    harmonic_free_correlation,
    linear_oracle,
    magnitude_ratio,
    phase_and_b_accuracy,
)
from lorentz_live.physics import (  # noqa: E402
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    bubble_texture,
    contaminant_thickness,
    electrostatic_phase,
    film_magnetic_phase,
    gaussian_filter,
    hexagonal_lattice,
    sigma_for_cutoff,
    simulate_image,
    sitie_phase,
    stripe_domains,
)
from lorentz_live.siprad import SipradConfig, SipradReconstructor  # noqa: E402

#: CGT-like film (paper Methods: Ms = 2e5 A/m), 100 nm thick.
MS_A_PER_M = 2.0e5
THICKNESS_NM = 100.0
SIZE_PX = 128
SITIE_SIGMAS_PX = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
SITIE_QCS_PER_NM = (0.0, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3)
nan = float("nan")
#: |B| counts as quantitative within this fraction of the truth.
MAGNITUDE_TOLERANCE = 0.15
DOCS = REPO / "docs"
IMG = DOCS / "img"
SHARED_TRUTH = REPO.parent / "shared" / "data" / "siprad_true_phase_cgt_512.tif"
#: Side of that truth, px: the paper's case is this whole (periodic) field.
PAPER_FULL_PX = 512
#: CPU cores this process may use: ``lorentz-live reconstruct`` runs on all of them
#: (torch's default thread count, unless OMP_NUM_THREADS is set).
ALL_CORES = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)

#: Factor levels the cells are drawn from.  Textures are laid out in pixels
#: (lattice spacing 30 px, bubble radius 10 px, stripe period 36 px) so every
#: pixel size sees whole textures; walls are ``wall_px`` pixels wide.
FACTORS: dict[str, tuple] = {
    "texture": ("bubbles", "skyrmions", "stripes", "labyrinth"),
    "pixel_nm": (2.0, 4.0, 8.0),
    "wall_px": (1.0, 2.0, 4.0),
    "noise": (0.25, 0.5, 1.0, 2.0),
    "noise_kind": ("gaussian", "poisson"),
    "defocus_mm": (-4.0, -2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0, 4.0),
    "edges": ("periodic", "crop"),
}


# ----------------------------------------------------------------- test cases
@dataclass(frozen=True)
class Cell:
    """One grid cell: a texture imaged under one set of conditions."""

    texture: str
    pixel_nm: float
    wall_px: float
    noise: float
    noise_kind: str
    defocus_mm: float
    edges: str

    def label(self) -> str:
        """Short description for tables."""
        return (
            f"{self.texture} {self.pixel_nm:g} nm/px wall {self.wall_px:g} px "
            f"{self.noise * 100:.0f} % {self.noise_kind} {self.defocus_mm:+g} mm {self.edges}"
        )


def draw_cells(count: int, seed: int) -> list[Cell]:
    """``count`` distinct cells, each factor level drawn uniformly (numpy seed ``seed``)."""
    rng = np.random.default_rng(seed)
    cells: list[Cell] = []
    while len(cells) < count:
        cell = Cell(**{name: levels[rng.integers(len(levels))] for name, levels in FACTORS.items()})
        if cell not in cells:
            cells.append(cell)
    return cells


def magnetisation(cell: Cell, size: int, seed: int) -> torch.Tensor:
    """Unit magnetisation [3, size, size] of the cell's texture (periodic field)."""
    shape, px = (size, size), cell.pixel_nm
    wall = cell.wall_px * px
    if cell.texture in ("bubbles", "skyrmions"):
        vacancies = 0.0 if cell.texture == "bubbles" else 0.8
        bubbles = hexagonal_lattice(
            shape, px, 30 * px, 10 * px, jitter_nm=1.5 * px, vacancy_fraction=vacancies,
            helicity="random", seed=seed,
        )  # fmt: skip
        return bubble_texture(shape, px, bubbles, wall_width_nm=wall)
    disorder = 0.3 if cell.texture == "stripes" else 0.8
    return stripe_domains(shape, px, 36 * px, wall_width_nm=wall, disorder=disorder, seed=seed)


def true_phase(cell: Cell, seed: int) -> torch.Tensor:
    """phi_m (rad) [SIZE_PX, SIZE_PX]: the periodic field, or the centre of a 2x field."""
    size = SIZE_PX if cell.edges == "periodic" else 2 * SIZE_PX
    return film_magnetic_phase(
        magnetisation(cell, size, seed), MS_A_PER_M, THICKNESS_NM, cell.pixel_nm
    )


def measure_image(cell: Cell, phase: torch.Tensor, seed: int) -> torch.Tensor:
    """Noisy image of ``phase`` (full field), cropped to SIZE_PX for ``crop`` cells."""
    clean = simulate_image(phase, params_for(cell))
    start = (clean.shape[0] - SIZE_PX) // 2
    clean = clean[start : start + SIZE_PX, start : start + SIZE_PX]
    gen = torch.Generator().manual_seed(10_000 + seed)
    if cell.noise_kind == "poisson":
        dose = 1.0 / cell.noise**2  # counts per pixel: sigma / mean = noise
        return torch.poisson(clean / clean.mean() * dose, generator=gen)
    return clean + cell.noise * clean.mean() * torch.randn(clean.shape, generator=gen)


def params_for(cell: Cell) -> MicroscopeParams:
    """Paper conditions: 200 kV, Cs 0.2 mm, theta_c 1e-5 rad, spread 80 nm."""
    return MicroscopeParams(pixel_size_nm=cell.pixel_nm, defocus_nm=cell.defocus_mm * 1e6)


def centre(x: torch.Tensor, size: int = SIZE_PX) -> torch.Tensor:
    """Central ``size`` x ``size`` window of [H, W]."""
    start = (x.shape[-1] - size) // 2
    return x[..., start : start + size, start : start + size]


# ------------------------------------------------------------------- metrics
def scores(phase: torch.Tensor, truth: torch.Tensor, pixel_nm: float) -> dict[str, float]:
    """Phase and B correlation and the |B| ratio (lorentz_live.metrics)."""
    p, b = phase_and_b_accuracy(phase, truth, pixel_nm)
    return {"phase": p, "b": b, "mag": magnitude_ratio(phase, truth, pixel_nm)}


def tuned_sitie(
    image: torch.Tensor, params: MicroscopeParams, truth: torch.Tensor, crop: bool
) -> dict[str, float]:
    """Best SITIE over pre-smoothing x q_c (x mirror-padding for crops) chosen WITH the truth.

    Per metric; the |B| ratio is that of the best-B setting.
    """
    best = {"phase": -1.0, "b": -1.0, "mag": float("nan")}
    mirror = (False, True) if crop else (False,)
    for sigma, qc, symmetrize in itertools.product(SITIE_SIGMAS_PX, SITIE_QCS_PER_NM, mirror):
        phase = sitie_phase(image, params, sigma_px=sigma, qc_per_nm=qc, symmetrize=symmetrize)
        s = scores(phase, truth, params.pixel_size_nm)
        best["phase"] = max(best["phase"], s["phase"])
        if s["b"] > best["b"]:
            best["b"], best["mag"] = s["b"], s["mag"]
    return best


def run_cell(cell: Cell, seed: int, config: SipradConfig) -> dict[str, object]:
    """Simulate one image, reconstruct it with SIPRAD and both SITIE variants, score all."""
    full = true_phase(cell, seed)
    truth = centre(full)
    image = measure_image(cell, full, seed)
    params = params_for(cell)
    crop = cell.edges == "crop"
    result = SipradReconstructor(config.replace(seed=seed)).reconstruct(image, params)
    # the truth at the resolution the result states: what a perfect instrument gives
    sigma_res = 0.0
    if np.isfinite(result.resolution_nm):
        sigma_res = sigma_for_cutoff(cell.pixel_nm / (2.0 * result.resolution_nm))
    at_res = gaussian_filter(truth, sigma_res)
    return {
        "siprad": scores(result.phi_m, truth, cell.pixel_nm)
        | {
            "mag_at_resolution": magnitude_ratio(result.phi_m, at_res, cell.pixel_nm),
            "phase_harmonic_free": harmonic_free_correlation(result.phi_m, truth),
        },
        "oracle": scores(centre(linear_oracle(full, params, cell.noise)), truth, cell.pixel_nm),
        "blurred": scores(gaussian_filter(truth, 1.0), truth, cell.pixel_nm),
        "sitie": scores(sitie_phase(image, params), truth, cell.pixel_nm),
        "tuned": tuned_sitie(image, params, truth, crop),
        "iterations": result.iterations,
        "stop": result.stop_reason,
        "seconds": result.seconds,
        "resolution_nm": result.resolution_nm,
    }


def mean_runs(runs: list[dict]) -> dict[str, float]:
    """Seed-averaged scores of one cell, flattened ("siprad.phase", ...)."""
    out: dict[str, float] = {}
    for method in ("siprad", "sitie", "tuned", "oracle", "blurred"):
        for metric in runs[0].get(method, {}):
            out[f"{method}.{metric}"] = statistics.fmean(r[method][metric] for r in runs)
    for key in ("iterations", "seconds", "resolution_nm"):
        out[key] = statistics.fmean(r[key] for r in runs)
    out["phase_win"] = float(out["siprad.phase"] > out["tuned.phase"])
    out["b_win"] = float(out["siprad.b"] > out["tuned.b"])
    out["both_win"] = out["phase_win"] * out["b_win"]
    out["mag_ok"] = float(abs(out["siprad.mag"] - 1.0) <= MAGNITUDE_TOLERANCE)
    out["mag_res_ok"] = float(abs(out["siprad.mag_at_resolution"] - 1.0) <= MAGNITUDE_TOLERANCE)
    out["tuned_mag_ok"] = float(abs(out["tuned.mag"] - 1.0) <= MAGNITUDE_TOLERANCE)
    out["oracle_mag_ok"] = float(abs(out.get("oracle.mag", nan) - 1.0) <= MAGNITUDE_TOLERANCE)
    return out


# ------------------------------------------------------------ special cases
def paper_image(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, MicroscopeParams]:
    """(image, true phi_m, params) of the SIPRAD demo's own case (shared data).

    The 512 px truth (4 nm/px) is imaged at 512 px with the demo's microscope at
    the demo's "-1 mm" (our +1 mm, docs/conventions.md), Poisson noise at the
    demo's dose (1e6 counts over 512^2 px); the central ``size`` px are cut out
    (not periodic unless size = 512).
    """
    import tifffile

    truth_full = torch.from_numpy(tifffile.imread(SHARED_TRUTH)).to(torch.float32)
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=1.0e6)
    dose = 1.0e6 / truth_full.numel()
    gen = torch.Generator().manual_seed(20_000 + seed)
    full = torch.poisson(simulate_image(truth_full, params) * dose, generator=gen)
    return centre(full, size), centre(truth_full, size), params


def paper_case(size: int, config: SipradConfig, seed: int = 0) -> dict[str, object]:
    """SIPRAD and SITIE scores on :func:`paper_image`."""
    image, truth, params = paper_image(size, seed)
    crop = size < PAPER_FULL_PX
    result = SipradReconstructor(config.replace(seed=seed)).reconstruct(image, params)
    return {
        "size": size,
        "boundary": config.boundary,
        "siprad": scores(result.phi_m, truth, 4.0)
        | {"phase_harmonic_free": harmonic_free_correlation(result.phi_m, truth)},
        "sitie": scores(sitie_phase(image, params), truth, 4.0),
        "tuned": tuned_sitie(image, params, truth, crop),
        "iterations": result.iterations,
        "stop": result.stop_reason,
        "seconds": result.seconds,
        "resolution_nm": result.resolution_nm,
    }


def contaminated_image(
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, MicroscopeParams]:
    """(image, true phi_m, true thickness nm, params) of the contaminated lattice.

    Bubble lattice (4 nm/px, 10 nm walls) under three carbon-like particles
    (default ``Material``), -0.5 mm, 30 % Gaussian noise, 128 px periodic.
    """
    cell = Cell("bubbles", 4.0, 2.5, 0.3, "gaussian", -0.5, "periodic")
    params = params_for(cell)
    truth = true_phase(cell, seed)
    thickness = contaminant_thickness(
        (SIZE_PX, SIZE_PX), 4.0, count=3, radius_nm=(40.0, 80.0), height_nm=60.0, seed=seed
    )
    material = Material()
    phase = truth + electrostatic_phase(thickness, material, params.kv)
    clean = simulate_image(phase, params, amplitude_from_thickness(thickness, material))
    gen = torch.Generator().manual_seed(10_000 + seed)
    image = clean + 0.3 * clean.mean() * torch.randn(clean.shape, generator=gen)
    return image, truth, thickness, params


#: The patterned MuMax3 state (shared data): 10 nm islands in vacuum, 4 nm cells.
SHARED_PATTERNED = REPO.parent / "shared" / "data" / "patterned_mumax_437x437x1.ovf"
#: Its saturation magnetisation (unit vectors in the file; permalloy-like), A/m.
PATTERNED_MS_A_PER_M = 8.0e5
#: Central crop of the 437 px field reconstructed, px (the whole field is slow on a CPU).
PATTERNED_CROP_PX = 160


def patterned_image(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, MicroscopeParams]:
    """(image, true phi_m, true thickness nm, params) of the patterned islands.

    The whole 437 px MuMax3 field (Ms 8e5 A/m, default ``Material`` for the
    islands' amplitude and phi_e) imaged at -1 mm, 30 % Gaussian noise; the
    central ``PATTERNED_CROP_PX`` px are cut out (not periodic).
    """
    from lorentz_live.io.ovf import read_ovf
    from lorentz_live.physics import specimen_from_magnetisation

    field = read_ovf(SHARED_PATTERNED)
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=-1.0e6)
    material = Material()
    specimen = specimen_from_magnetisation(
        field.values, field.cell_size_m, kv=params.kv, ms_a_per_m=PATTERNED_MS_A_PER_M,
        material=material,
    )  # fmt: skip
    assert specimen.amplitude is not None
    clean = simulate_image(specimen.phase, params, specimen.amplitude)
    gen = torch.Generator().manual_seed(30_000 + seed)
    image = clean + 0.3 * clean.mean() * torch.randn(clean.shape, generator=gen)
    thickness = -material.absorption_length_nm * torch.log(specimen.amplitude)
    crop = PATTERNED_CROP_PX
    return centre(image, crop), centre(specimen.phase_m, crop), centre(thickness, crop), params


ISLANDS = {"amplitude": "thickness", "island_thickness_nm": 10.0}
#: SIPRAD variants of the amplitude table: (label, config changes, known thickness?).
AMPLITUDE_VARIANTS: dict[str, list[tuple[str, dict, bool]]] = {
    "contaminated": [
        ("none", {"amplitude": "none"}, False),
        ("threshold", {"amplitude": "threshold"}, False),
        ("exclude", {"amplitude": "exclude"}, False),
        ("thickness", {"amplitude": "thickness"}, False),
        (
            "thickness --thickness-floor 2",
            {"amplitude": "thickness", "thickness_floor_nm": 2.0},
            False,
        ),
        (
            "thickness --thickness-floor 2 --thickness-start exclude",
            {"amplitude": "thickness", "thickness_floor_nm": 2.0, "thickness_start": "exclude"},
            False,
        ),
        (
            "thickness --thickness-floor 2 --thickness-start exclude --thickness-joint",
            {
                "amplitude": "thickness",
                "thickness_floor_nm": 2.0,
                "thickness_start": "exclude",
                "thickness_joint": True,
            },
            False,
        ),
        ("true thickness (oracle)", {}, True),
    ],
    "patterned": [
        ("threshold", {"amplitude": "threshold"}, False),
        ("thickness --island-thickness 10", ISLANDS, False),
        (
            "thickness --island-thickness 10 --phase-model magnetisation",
            ISLANDS | {"phase_model": "magnetisation"},
            False,
        ),
        ("true thickness (oracle)", {}, True),
    ],
}
AMPLITUDE_CASES = {"contaminated": contaminated_image, "patterned": patterned_image}


def amplitude_case(
    name: str, config: SipradConfig, seed: int, variants: list[str] | None = None
) -> dict[str, object]:
    """One seed of one amplitude case: SITIE, tuned SITIE and the SIPRAD variants.

    ``variants``: labels of ``AMPLITUDE_VARIANTS[name]`` to run (default all);
    the SITIE rows are always included.  ``"seed"`` records the seed (parts merge on it).
    """
    image, truth, thickness, params = AMPLITUDE_CASES[name](seed)
    px = params.pixel_size_nm
    crop = name == "patterned"
    out: dict[str, object] = {
        "seed": seed,
        "sitie": scores(sitie_phase(image, params), truth, px),
        "tuned": tuned_sitie(image, params, truth, crop),
    }
    for label, changes, known in AMPLITUDE_VARIANTS[name]:
        if variants is not None and label not in variants:
            continue
        result = SipradReconstructor(config.replace(seed=seed, **changes)).reconstruct(
            image, params, thickness_nm=thickness if known else None
        )
        out[label] = scores(result.phi_m, truth, px) | {"seconds": result.seconds}
        print(name, seed, label, out[label], flush=True)
    return out


def run_amplitude(
    config: SipradConfig,
    seeds: list[int],
    cases: list[str] | None = None,
    variants: list[str] | None = None,
) -> dict[str, list[dict]]:
    """The amplitude cases (default both) for each seed (per-seed results)."""
    return {
        name: [amplitude_case(name, config, s, variants) for s in seeds]
        for name in cases or AMPLITUDE_CASES
    }


def merge_amplitude(into: dict[str, list[dict]], part: dict[str, list[dict]]) -> None:
    """Add a saved part's amplitude runs to ``into``: runs of the same seed are united
    (parts may hold different variants of one seed), others appended."""
    for name, runs in part.items():
        merged = into.setdefault(name, [])
        for run in runs:
            same = [r for r in merged if "seed" in run and r.get("seed") == run["seed"]]
            if same:
                same[0].update(run)
            else:
                merged.append(dict(run))


def amplitude_methods(runs: list[dict]) -> list[str]:
    """Methods present in every seed's run of one case (in the first run's order)."""
    return [m for m, v in runs[0].items() if isinstance(v, dict) and all(m in r for r in runs)]


def speed(config: SipradConfig, size: int) -> float:
    """Seconds per main-loop iteration at ``size`` px (median of 20 after 5 warm-up)."""
    cell = Cell("bubbles", 4.0, 2.0, 0.5, "gaussian", -1.0, "periodic")
    image = measure_image(cell, centre(true_phase(cell, 0), size), 0) if size == SIZE_PX else None
    if image is None:
        phase = film_magnetic_phase(magnetisation(cell, size, 0), MS_A_PER_M, THICKNESS_NM, 4.0)
        image = simulate_image(phase, params_for(cell))
    stamps: list[float] = []
    cfg = config.replace(pretrain_iterations=0, max_iterations=25, stop="none")
    SipradReconstructor(cfg).reconstruct(
        image, params_for(cell), progress=lambda *_: stamps.append(time.perf_counter())
    )
    return statistics.median(b - a for a, b in itertools.pairwise(stamps[5:]))


def paper_timing(config: SipradConfig, threads: int, size: int = 256) -> dict[str, float]:
    """Wall time of one whole reconstruction of the paper case's ``size`` px crop on
    ``threads`` torch threads, by phase (set-up, pre-training, main loop, calibration
    and output), seconds; a fresh reconstructor (no warm-up), as the CLI runs it."""
    image, _, params = paper_image(size)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    stamps: dict[str, list[float]] = {"pre": [], "loop": []}
    try:
        t0 = time.perf_counter()
        result = SipradReconstructor(config).reconstruct(
            image,
            params,
            pretrain_progress=lambda *_: stamps["pre"].append(time.perf_counter()),
            progress=lambda *_: stamps["loop"].append(time.perf_counter()),
        )
        t1 = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    pre, loop = stamps["pre"], stamps["loop"]
    # the first pre-training stamp ends the set-up and one pre-training step
    step = (pre[-1] - pre[0]) / max(len(pre) - 1, 1) if pre else 0.0
    setup = (pre[0] - step if pre else loop[0]) - t0
    return {
        "threads": threads,
        "size": size,
        "seconds": t1 - t0,
        "setup": setup,
        "pretrain": (pre[-1] - t0 - setup) if pre else 0.0,
        "loop": loop[-1] - (pre[-1] if pre else t0 + setup) if loop else 0.0,
        "finish": t1 - loop[-1] if loop else t1 - t0,
        "pretrain_iterations": result.pretrain_iterations,
        "iterations": result.iterations,
        "load": os.getloadavg()[0],
    }


def run_timing(config: SipradConfig) -> list[dict[str, float]]:
    """:func:`paper_timing` on all cores (the CLI's default), then on 1 thread.

    All cores first: in a fresh process (``--only timing``) that run pays the
    process's one-off costs (torch's lazy imports), as ``lorentz-live reconstruct`` does.
    """
    return [paper_timing(config, threads) for threads in sorted({1, ALL_CORES}, reverse=True)]


# ------------------------------------------------------------------ report
INTRO = """# SIPRAD accuracy

Written entirely by {command} (`make bench-accuracy` runs the same in one
process); do not edit by hand.  {when}; {minutes:.0f} min of wall time summed over
the parts (they ran concurrently) on: {machine}.

How well `lorentz_live.siprad` (default `SipradConfig()`) recovers a known
magnetic phase from one simulated defocused image, against plain SITIE and the
best SITIE a user could ever hand-tune: pre-smoothing sigma in {sigmas} px x
Tikhonov q_c in {qcs} 1/nm, chosen per image and per metric **with** the ground
truth; the tuned SITIE also chooses whether to mirror-pad (for the crops).

Definitions (`lorentz_live.metrics`): phase = Pearson correlation with the truth
on the [N/16 : -N/16] crop; B = mean of the B_x and B_y correlations (paper
Fig. 3); **|B| ratio** = median of |B_rec| / |B_true| over the crop pixels where
|B_true| > half its maximum (1 = quantitative; the walls carry the in-plane B of
these textures, so this is the wall |B|).  "|B| at resolution" compares with the
truth smoothed to the resolution the result states (`resolution_nm`: half-period
where the image's Wiener gain falls to 1/2).  The information limit: "oracle" is
the truth filtered by the best linear (Wiener) filter for this image's transfer
function and noise, built with the truth's own spectrum
(`lorentz_live.metrics.linear_oracle`; no noise added), and "1-px blur" the truth smoothed by a
Gaussian of 1 px: a wall narrower than what survives the envelope and the
noise cannot keep its peak |B| in any linear reconstruction.  Defocus in our convention (paper
eq. 9; the SIPRAD demo's "-1 mm" is our +1 mm).  Noise X %: Gaussian sigma =
X/100 mean(I), or Poisson at 1/(X/100)^2 counts per pixel (same sigma / mean).

Data sources: textures from `lorentz_live.physics.textures` (hexagonal Bloch
bubble lattices with random helicity, the same with 80 % of sites empty
("skyrmions": isolated bubbles), wavy stripes (disorder 0.3) and labyrinths (0.8)), CGT-like film
Ms = 2e5 A/m, 100 nm thick; 200 kV, Cs 0.2 mm, theta_c 1e-5 rad, defocus spread
80 nm.  The paper's case uses `../shared/data/siprad_true_phase_cgt_512.tif`
(SIPRAD demo, github Art-MC/SIPRAD_demo, example_data/true_phase.tif).
"""


def fmt(value: float) -> str:
    """Three decimals, or '-' for NaN."""
    return "-" if np.isnan(value) else f"{value:.3f}"


def grid_table(rows: list[tuple[Cell, dict[str, float]]]) -> list[str]:
    """One line per cell: SIPRAD / tuned SITIE / plain SITIE scores and the wins."""
    lines = [
        "| cell | SIPRAD phase / B / \\|B\\| | \\|B\\| at res. | oracle phase / B / \\|B\\| "
        "| \\|B\\| 1-px blur | tuned SITIE phase / B / \\|B\\| "
        "| SITIE phase / B | win phase, B | res. nm | iters | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, m in rows:
        lines.append(
            f"| {cell.label()} | {fmt(m['siprad.phase'])} / {fmt(m['siprad.b'])} / "
            f"{fmt(m['siprad.mag'])} | {fmt(m['siprad.mag_at_resolution'])} "
            f"| {fmt(m.get('oracle.phase', nan))} / {fmt(m.get('oracle.b', nan))} / "
            f"{fmt(m.get('oracle.mag', nan))} | {fmt(m.get('blurred.mag', nan))} "
            f"| {fmt(m['tuned.phase'])} / {fmt(m['tuned.b'])} / {fmt(m['tuned.mag'])} "
            f"| {fmt(m['sitie.phase'])} / {fmt(m['sitie.b'])} "
            f"| {'W' if m['phase_win'] else 'L'}, {'W' if m['b_win'] else 'L'} "
            f"| {m['resolution_nm']:.0f} | {m['iterations']:.0f} | {m['seconds']:.0f} |"
        )
    return lines


def factor_table(rows: list[tuple[Cell, dict[str, float]]]) -> list[str]:
    """Per factor level: cells, share of wins in phase, B, both; share with |B| within 15 %."""
    lines = [
        "| factor | level | cells | SIPRAD > tuned: phase | B | both | \\|B\\| within 15 %: "
        "SIPRAD | at res. | oracle | tuned SITIE | median SIPRAD \\|B\\| |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, levels in FACTORS.items():
        for level in levels:
            group = [m for cell, m in rows if getattr(cell, name) == level]
            if not group:
                continue

            def share(key: str, group=group) -> str:
                return f"{sum(m[key] for m in group):.0f}/{len(group)}"

            median = statistics.median(m["siprad.mag"] for m in group)
            lines.append(
                f"| {name} | {level} | {len(group)} | {share('phase_win')} | {share('b_win')} "
                f"| {share('both_win')} | {share('mag_ok')} | {share('mag_res_ok')} "
                f"| {share('oracle_mag_ok')} "
                f"| {share('tuned_mag_ok')} | {median:.2f} |"
            )
    return lines


def heat_map(rows: list[tuple[Cell, dict[str, float]]]) -> str | None:
    """PNG: SIPRAD - tuned SITIE (phase, B) and SIPRAD |B| ratio over noise x |defocus|."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    noises = FACTORS["noise"]
    defocus = sorted({abs(d) for d in FACTORS["defocus_mm"]})
    panels = (
        ("SIPRAD - tuned SITIE: phase", lambda m: m["siprad.phase"] - m["tuned.phase"], "RdBu"),
        ("SIPRAD - tuned SITIE: B", lambda m: m["siprad.b"] - m["tuned.b"], "RdBu"),
        ("SIPRAD |B| ratio", lambda m: m["siprad.mag"], "viridis"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    for ax, (title, value, cmap) in zip(axes, panels, strict=True):
        grid = np.full((len(noises), len(defocus)), np.nan)
        for i, nz in enumerate(noises):
            for j, dz in enumerate(defocus):
                vals = [value(m) for c, m in rows if c.noise == nz and abs(c.defocus_mm) == dz]
                if vals:
                    grid[i, j] = float(np.mean(vals))
                    ax.text(j, i, f"{grid[i, j]:.2f}\n({len(vals)})", ha="center", va="center")
        diff = cmap == "RdBu"
        im = ax.imshow(
            grid, origin="lower", cmap=cmap, aspect="auto",
            vmin=-0.2 if diff else 0.0, vmax=0.2 if diff else 1.5,
        )  # fmt: skip
        ax.set_xticks(range(len(defocus)), [f"{d:g}" for d in defocus])
        ax.set_yticks(range(len(noises)), [f"{n * 100:.0f}" for n in noises])
        ax.set_xlabel("|defocus| (mm)")
        ax.set_ylabel("noise (%)")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Grid cells binned by noise x |defocus| (mean over cells; cells per bin)")
    IMG.mkdir(parents=True, exist_ok=True)
    name = "accuracy_grid.png"
    fig.savefig(IMG / name, dpi=80)
    plt.close(fig)
    return name


def special_table(cases: dict[str, dict]) -> list[str]:
    """Paper case (periodic and cropped, per boundary)."""
    lines = [
        "| case | SIPRAD phase / B / \\|B\\| | SIPRAD phase, harmonic error removed "
        "| tuned SITIE phase / B / \\|B\\| | SITIE phase / B | iters, stop | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in cases.items():
        s, t, p = c.get("siprad", c), c["tuned"], c["sitie"]
        run = f"{c['iterations']}, {c['stop']} | {c['seconds']:.0f}" if "seconds" in c else "- | -"
        lines.append(
            f"| {name} | {fmt(s['phase'])} / {fmt(s['b'])} / {fmt(s['mag'])} "
            f"| {fmt(s.get('phase_harmonic_free', nan))} "
            f"| {fmt(t['phase'])} / {fmt(t['b'])} / {fmt(t['mag'])} "
            f"| {fmt(p['phase'])} / {fmt(p['b'])} | {run} |"
        )
    return lines


AMPLITUDE_INTRO = """## Non-uniform amplitude: contaminated and patterned samples

SIPRAD's amplitude models (`--amplitude`) on two samples whose thickness varies,
against plain and hand-tuned SITIE and against SIPRAD given the TRUE thickness
map (`reconstruct(..., thickness_nm=...)`: amplitude and phi_e exact; the bound
of any amplitude model).  Mean over {seeds} seeds (min .. max in brackets);
phase / B correlation.  Targets (issue 13): >= 0.85 phase on the contaminated
lattice, >= 0.8 on the patterned islands.

* Contaminated lattice (`contaminated_image`): 128 px bubble lattice, 4 nm/px,
  three lens-shaped carbon-like particles (radius 40-80 nm, 60 nm high; V0 10 V,
  xi0 100 nm: up to 4.4 rad of phi_e), -0.5 mm, 30 % Gaussian noise.
* Patterned islands (`patterned_image`): `../shared/data/patterned_mumax_437x437x1.ovf`
  (MuMax3, github Art-MC/PyLorentz SimLTEM/example_mumax.ovf; 10 nm islands in
  vacuum, 4 nm cells), Ms 8e5 A/m, amplitude and phi_e of the islands from the
  default material (V0 10 V, xi0 100 nm), whole field imaged at -1 mm with 30 %
  Gaussian noise, central {crop} px reconstructed (not periodic); SIPRAD with
  uniform amplitude (`none`) is left out here to save run time.

Options measured here (not defaults): `--thickness-floor 2` (estimated thickness
below 2 nm is clean film, t = 0, left out of the thickness fit), `--thickness-start
exclude` (the map is fitted against the phi_m of a first `exclude` pass, which
warm-starts the thickness pass), `--thickness-joint` (the map's correction goes on
being fitted with phi_m in the main loop) and
`--phase-model magnetisation` (the network outputs an in-plane moment, zero in
vacuum inside the window, and phi_m is its film phase: the islands' material
confines the magnetisation; `SipradConfig.phase_model`).
"""


def _mean_range(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ({min(values):.2f} .. {max(values):.2f})"


def amplitude_rows(runs: list[dict]) -> list[tuple[str, str, str]]:
    """(method, phase mean (range), B mean (range)) of one amplitude case's seeds."""
    rows = []
    for method in amplitude_methods(runs):
        phase = [r[method]["phase"] for r in runs]
        b = [r[method]["b"] for r in runs]
        label = {"sitie": "plain SITIE", "tuned": "hand-tuned SITIE"}.get(
            method, f"SIPRAD {method}"
        )
        rows.append((label, _mean_range(phase), _mean_range(b)))
    return rows


def amplitude_section(amplitude: dict | None) -> list[str]:
    """The amplitude cases' tables (nothing when that part was not run)."""
    if not amplitude:
        return []
    seeds = len(next(iter(amplitude.values())))
    lines = [AMPLITUDE_INTRO.format(seeds=seeds, crop=PATTERNED_CROP_PX)]
    for name, runs in amplitude.items():
        lines += [f"### {name}", "", "| method | phase | B |", "|---|---|---|"]
        lines += [f"| {m} | {p} | {b} |" for m, p, b in amplitude_rows(runs)]
        lines.append("")
    return lines


MEASURED = REPO / "lorentz_live" / "measured.py"


def write_measured(amplitude: dict, command: str) -> None:
    """lorentz_live/measured.py: the amplitude figures the CLI help quotes."""
    figures = {
        name: {
            method: (
                round(statistics.fmean(r[method]["phase"] for r in runs), 2),
                round(statistics.fmean(r[method]["b"] for r in runs), 2),
            )
            for method in amplitude_methods(runs)
        }
        for name, runs in amplitude.items()
    }
    seeds = len(next(iter(amplitude.values())))
    if MEASURED.exists():  # keep the other case's figures when one case was rerun
        import runpy

        old = runpy.run_path(str(MEASURED))
        if old.get("AMPLITUDE_SEEDS") == seeds:
            figures = old["AMPLITUDE"] | figures
    MEASURED.write_text(
        '"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).\n\n'
        + "\n".join(textwrap.wrap(f"Command: {command}", 88, break_on_hyphens=False))
        + "\n"
        '"""\n\n'
        "#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.\n"
        f"AMPLITUDE = {figures!r}\n"
        f"AMPLITUDE_SEEDS = {seeds}\n"
    )
    subprocess.run([sys.executable, "-m", "ruff", "format", str(MEASURED)], check=False)


def targets(rows: list[tuple[Cell, dict[str, float]]]) -> list[str]:
    """The issue's targets, measured on this grid."""
    noisy = [m for c, m in rows if c.noise >= 0.25]
    quant = [m for c, m in rows if c.noise <= 1.0]
    return [
        f"* SIPRAD above tuned SITIE in both phase and B (cells with >= 25 % noise): "
        f"{sum(m['both_win'] for m in noisy):.0f} / {len(noisy)} (target >= 90 %).",
        f"* |B| within 15 % of the truth (cells with <= 100 % noise): "
        f"{sum(m['mag_ok'] for m in quant):.0f} / {len(quant)} (target >= 90 %); of the "
        f"truth at the stated resolution: {sum(m['mag_res_ok'] for m in quant):.0f} / "
        f"{len(quant)}; tuned SITIE: {sum(m['tuned_mag_ok'] for m in quant):.0f} / {len(quant)}; "
        f"the linear oracle (information limit, below): "
        f"{sum(m.get('oracle_mag_ok', 0.0) for m in quant):.0f} / {len(quant)}.",
    ]


def edges_summary(rows: list[tuple[Cell, dict[str, float]]]) -> list[str]:
    """Mean phase correlation of periodic vs cropped cells, per texture."""
    lines = [
        "| texture | periodic cells: mean phase | cropped cells: mean phase "
        "| cropped cells: harmonic error removed |",
        "|---|---|---|---|",
    ]
    for texture in FACTORS["texture"]:
        per = [m["siprad.phase"] for c, m in rows if c.texture == texture and c.edges == "periodic"]
        cro = [m["siprad.phase"] for c, m in rows if c.texture == texture and c.edges == "crop"]
        free = [
            m.get("siprad.phase_harmonic_free", nan)
            for c, m in rows
            if c.texture == texture and c.edges == "crop"
        ]
        mean = lambda v: f"{statistics.fmean(v):.3f} ({len(v)})" if v else "-"  # noqa: E731
        lines.append(f"| {texture} | {mean(per)} | {mean(cro)} | {mean(free)} |")
    return lines


def run_grid(
    args: argparse.Namespace, config: SipradConfig, save: Callable[[list], None]
) -> list[tuple[Cell, dict]]:
    """All grid cells (this shard's), seed-averaged, in drawing order; ``save`` after each."""
    rows = []
    cells = draw_cells(args.cells, args.grid_seed)
    shard = cells[args.shard :: args.shards]
    for cell in shard:
        runs = [run_cell(cell, seed, config) for seed in range(args.seeds)]
        rows.append((cell, mean_runs(runs)))
        save(rows)
        m = rows[-1][1]
        print(
            f"{cell.label()}: siprad {m['siprad.phase']:.3f}/{m['siprad.b']:.3f}/"
            f"{m['siprad.mag']:.2f} tuned {m['tuned.phase']:.3f}/{m['tuned.b']:.3f} "
            f"it {m['iterations']:.0f} {m['seconds']:.0f} s",
            flush=True,
        )
    return rows


def run_special(paper_size: int, config: SipradConfig) -> dict:
    """Paper case per boundary and speed (the amplitude cases: :func:`run_amplitude`)."""
    cases: dict[str, dict] = {}
    for boundary in ("periodic", "pad"):
        result = paper_case(paper_size, config.replace(boundary=boundary))
        cases[f"paper case, {paper_size} px crop, boundary {boundary}"] = result
        print(boundary, result, flush=True)
    if paper_size < PAPER_FULL_PX:  # the paper's own case: the whole periodic field
        result = paper_case(PAPER_FULL_PX, config.replace(boundary="periodic"))
        cases[f"paper case, whole {PAPER_FULL_PX} px field (periodic)"] = result
        print(PAPER_FULL_PX, result, flush=True)
    speeds = {str(size): speed(config, size) for size in (128, 256)}
    load = os.getloadavg()[0]
    timing = run_timing(config)
    return {
        "cases": cases,
        "speed": speeds,
        "paper_size": paper_size,
        "load": load,
        "timing": timing,
    }


def load_parts(paths: list[Path], parts: dict) -> None:
    """Merge saved parts (``--save`` files) into ``parts``; a later part's special,
    grid or timing replaces an earlier one's."""
    for path in paths:
        part = json.loads(path.read_text())
        parts["commands"] += part["commands"]
        parts["rows"] += part.get("rows", [])
        parts["seconds"] += part["seconds"]
        parts |= {k: v for k, v in part.items() if k in ("special", "grid", "timing")}
        merge_amplitude(parts.setdefault("amplitude", {}), part.get("amplitude", {}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=24, help="grid cells drawn")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per grid cell")
    parser.add_argument("--grid-seed", type=int, default=0, help="seed of the cell draw")
    parser.add_argument("--shards", type=int, default=1, help="split the grid over processes")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--paper-size", type=int, default=256, help="paper case crop, px")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--only",
        choices=("grid", "special", "amplitude", "timing"),
        help="run one part and --save it (no docs); timing: the 256 px paper case's "
        "whole-reconstruction time alone (minutes; a timing part given to --load "
        "replaces the special part's)",
    )
    parser.add_argument(
        "--amplitude-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="seeds of the amplitude cases (parts for different seeds merge with --load)",
    )
    parser.add_argument(
        "--amplitude-cases",
        nargs="+",
        choices=tuple(AMPLITUDE_CASES),
        help="amplitude cases to run (default: all)",
    )
    parser.add_argument(
        "--amplitude-variants",
        nargs="+",
        help="SIPRAD variants (labels of AMPLITUDE_VARIANTS) to run (default: all; "
        "parts of one seed with different variants merge with --load)",
    )
    parser.add_argument("--save", type=Path, help="JSON file for the part run with --only")
    parser.add_argument(
        "--load", type=Path, nargs="+", help="write the docs from saved parts (runs nothing)"
    )
    args = parser.parse_args(argv)
    if args.load and args.only == "amplitude" and args.save is None:
        parser.error("--load with --only amplitude merges saved amplitude parts: give --save")
    torch.set_num_threads(args.threads)
    # quoted: variant labels have spaces
    command = "python benchmarks/accuracy.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    config = SipradConfig()
    t0 = time.perf_counter()
    parts: dict = {"commands": [command.strip()], "rows": [], "seconds": 0.0}
    if args.load:
        load_parts(args.load, parts)
    else:
        if args.only in (None, "grid"):
            parts["grid"] = {"cells": args.cells, "seeds": args.seeds, "seed": args.grid_seed}

            def save(rows: list) -> None:
                parts["rows"] = [(asdict(c), m) for c, m in rows]
                parts["seconds"] = time.perf_counter() - t0
                if args.only and args.save:
                    args.save.write_text(json.dumps(parts))

            run_grid(args, config, save)
        if args.only in (None, "special"):
            parts["special"] = run_special(args.paper_size, config)
        if args.only == "timing":
            parts["timing"] = run_timing(config)
            for row in parts["timing"]:
                print(json.dumps(row), flush=True)
        if args.only in (None, "amplitude"):
            parts["amplitude"] = run_amplitude(
                config, args.amplitude_seeds, args.amplitude_cases, args.amplitude_variants
            )
            write_measured(parts["amplitude"], command.strip())
        parts["seconds"] = time.perf_counter() - t0
    if args.load and args.only == "amplitude":  # merge per-seed parts, quote them in the CLI
        write_measured(parts["amplitude"], " and ".join(parts["commands"][1:]))
    if args.only:
        if args.save:
            args.save.write_text(json.dumps(parts))
        return
    write_docs(parts)


def timing_table(rows: list[dict] | None) -> list[str]:
    """The paper case's whole-reconstruction time per thread count (:func:`run_timing`)."""
    if not rows:
        return []
    size = rows[0]["size"]
    return [
        "",
        f"One whole reconstruction of the paper case's {size} px crop (default settings, "
        "boundary pad) by a fresh reconstructor, all cores first (in a fresh process "
        "it pays the one-off imports, as the CLI does); `lorentz-live reconstruct` runs on "
        f"torch's default threads, all cores ({ALL_CORES} here) unless `--threads` or "
        "OMP_NUM_THREADS says otherwise.  "
        "`python benchmarks/accuracy.py --only timing` measures it alone; on a machine "
        "whose cores are busy with other work, more threads than free cores make it "
        "several times slower (the threads wait on each other): `--threads 1` there.  "
        "Seconds by phase:",
        "",
        "| threads | whole | set-up | pre-training | main loop | calibration, output "
        "| 1-min load |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['threads']} | **{r['seconds']:.1f}** | {r['setup']:.1f} | "
            f"{r['pretrain']:.1f} ({r['pretrain_iterations']} it.) | "
            f"{r['loop']:.1f} ({r['iterations']} it.) | {r['finish']:.2f} | {r['load']:.1f} |"
            for r in rows
        ],
    ]


def write_docs(parts: dict) -> None:
    """docs/accuracy.md (whole file) and the "siprad" section of docs/benchmarks.md."""
    from _report import machine_description, write_section

    rows = [(Cell(**c), m) for c, m in parts["rows"]]
    special, grid = parts["special"], parts["grid"]
    cases = special["cases"]
    command = " and ".join(f"`{c}`" for c in parts["commands"][1:] or parts["commands"])
    image = heat_map(rows)
    md = [
        INTRO.format(
            command=command,
            when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            minutes=parts["seconds"] / 60,
            machine=machine_description(),
            sigmas=list(SITIE_SIGMAS_PX),
            qcs=list(SITIE_QCS_PER_NM),
        ),
        "## Targets",
        "",
        *targets(rows),
        "",
        f"Grid: {len(rows)} cells of {SIZE_PX} px drawn from {dict(FACTORS)} "
        f"(numpy seed {grid['seed']}), {grid['seeds']} seeds each, scores averaged over "
        "the seeds.  Néel textures are left out: at normal incidence their LTEM "
        "contrast vanishes.  Vortices in discs are not a grid texture: a patterned "
        "element's electrostatic phase (sigma V0 t: a 7 rad step at the edge for 100 nm "
        "of the default material) is as large as a 200 nm vortex's magnetic phase (a "
        "3.8 rad cone) and its edge fringe dominates the contrast, so the amplitude "
        "model decides them: that is the patterned-islands case of the amplitude section.",
        "",
        "## Wins by factor level",
        "",
        *factor_table(rows),
        "",
        f"![grid heat map](img/{image})" if image else "",
        "",
        "## Edges: periodic fields vs non-periodic crops (grid cells)",
        "",
        "A harmonic phase (lap phi = 0: offset, ramps, saddles) leaves the TIE "
        "contrast unchanged, so inside a cropped window it is fixed by the "
        'magnetisation outside, not by the image.  "Harmonic error removed": the '
        "correlation once the error's fit by the harmonic polynomials of degree "
        "<= 3 is subtracted (`lorentz_live.metrics.harmonic_free_correlation`), "
        "i.e. the part of the crop loss an image can explain.",
        "",
        *edges_summary(rows),
        "",
        "## Special cases",
        "",
        f"Paper case: central {special['paper_size']} px of the 512 px truth imaged at "
        "512 px (demo microscope, our +1 mm, Poisson noise 3.8 counts/px), then "
        "cropped: not periodic; and the whole 512 px field (periodic), the paper's own "
        "case.  Its notebook reports 0.976 / 0.968 (SIPRAD) and 0.896 / 0.875 (SITIE) "
        "on the whole field (target: SIPRAD >= 0.976 / 0.968).  The contaminated "
        "lattice is in the next section.",
        "",
        *special_table(cases),
        "",
        *amplitude_section(parts.get("amplitude")),
        "## All grid cells",
        "",
        *grid_table(rows),
        "",
    ]
    (DOCS / "accuracy.md").write_text("\n".join(md))
    body = [
        "SIPRAD, default `SipradConfig()`, CPU, 1 thread, "
        + (
            f"measured with a 1-minute load average of {special['load']:.1f}"
            if "load" in special
            else "measured while other processes shared the CPU (load not recorded)"
        )
        + " (a shared machine is slower than an idle one).  Seconds per main-loop iteration "
        "(forward + backward + Adam), median of 20:",
        "",
        "| px | s / iteration |",
        "|---|---|",
        *[f"| {size} | {value:.3f} |" for size, value in special["speed"].items()],
        "",
        "Whole reconstructions (pre-training, loop, calibration) in the accuracy grid "
        f"({SIZE_PX} px): median {statistics.median(m['seconds'] for _, m in rows):.0f} s; "
        + ", ".join(f"{name}: {c['seconds']:.0f} s" for name, c in cases.items() if "paper" in name)
        + " (1 thread; the runs scored in docs/accuracy.md).",
        *timing_table(parts.get("timing") or special.get("timing")),
    ]
    write_section("siprad", "SIPRAD reconstruction speed", "\n".join(body), command)


if __name__ == "__main__":
    main()
