"""Per-frame cost of the physics core: forward model (with and without gradient) and SITIE.

    make bench-physics        (python benchmarks/physics.py [--device cuda])

Medians over repeats; writes the "physics" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from lorentz_live.physics import (
    MicroscopeParams,
    forward_image,
    sitie_phase,
    transfer_function,
)


def median_seconds(function, device: torch.device, repeats: int) -> float:
    function()  # warm-up (allocations, FFT plans)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(size: int, params: MicroscopeParams, device: torch.device, repeats: int) -> list[float]:
    """Median ms of: forward, forward + backward, SITIE, building T, for one size."""
    generator = torch.Generator().manual_seed(size)
    phase = torch.randn((size, size), generator=generator).to(device)
    transfer = transfer_function((size, size), params, device=device)
    image = forward_image(phase, transfer)

    def forward_backward() -> None:
        leaf = phase.clone().requires_grad_()
        forward_image(leaf, transfer).square().mean().backward()

    seconds = [
        median_seconds(lambda: forward_image(phase, transfer), device, repeats),
        median_seconds(forward_backward, device, repeats),
        median_seconds(lambda: sitie_phase(image, params), device, repeats),
        median_seconds(lambda: transfer_function((size, size), params, device=device), device, 5),
    ]
    return [1e3 * value for value in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    params = MicroscopeParams(defocus_nm=-1e6)
    rows = []
    for size in args.sizes:
        cells = " | ".join(f"{ms:.2f}" for ms in measure(size, params, device, args.repeats))
        rows.append(f"| {size} | {cells} |")
        print(rows[-1], flush=True)
    body = (
        f"Device: {device}. Median of {args.repeats} runs, milliseconds per frame (float32).\n\n"
        "| size (px) | forward model | forward + backward | SITIE | build T(k) |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    command = "make bench-physics" + ("" if args.device == "cpu" else f" (--device {args.device})")
    write_section(
        f"physics-{device.type}", f"Physics core per frame ({device.type})", body, command
    )


if __name__ == "__main__":
    main()
