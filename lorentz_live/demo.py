"""End-to-end demo.

Default (``make demo``): the live pipeline.  A simulated camera bridge
(``lorentz-bridge simulate``, its own process) publishes a field-cooling movie;
the engine reconstructs it warm-started, frame by frame, printing the live
status line; at the end the last result is saved as PNGs (phi_m, B colour map,
legend) and scored against the simulator's ground truth.

With a display the viewer (``lorentz-live gui``, its own process) opens on the
bridge, the engine's results and its control socket; the demo ends when the
viewer is closed.  Without a display it says so and shows the status line only.
``--screenshot FILE.png --exit-after S`` renders the viewer offscreen after S
seconds (the README's picture).

``--single``: one noisy bubble-lattice image, reconstructed by SITIE.

    python -m lorentz_live.demo --out out/demo [--frames 20] [--size 128] [--single]
        [--no-viewer] [--screenshot FILE.png --exit-after S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from lorentz_live.io.png import to_uint8, write_png
from lorentz_live.metrics import correlation
from lorentz_live.physics import (
    MicroscopeParams,
    bubble_texture,
    colour_wheel_legend,
    colour_wheel_rgb,
    film_magnetic_phase,
    hexagonal_lattice,
    integrated_induction,
    simulate_image,
    sitie_phase,
)


def run(out: Path, *, size: int = 192, noise: float = 0.25, seed: int = 0) -> dict[str, float]:
    """Simulate, reconstruct by SITIE, write PNGs into ``out``; return correlations."""
    out.mkdir(parents=True, exist_ok=True)
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=-5.0e5)
    shape = (size, size)
    bubbles = hexagonal_lattice(
        shape, params.pixel_size_nm, 110.0, 32.0, jitter_nm=6.0, helicity="random", seed=seed
    )
    texture = bubble_texture(shape, params.pixel_size_nm, bubbles, wall_width_nm=8.0)
    phase_true = film_magnetic_phase(texture, 2.0e5, 60.0, params.pixel_size_nm)
    clean = simulate_image(phase_true, params)
    generator = torch.Generator().manual_seed(seed)
    image = clean + noise * torch.randn(shape, generator=generator)
    phase = sitie_phase(image, params, sigma_px=1.5)
    b_true = integrated_induction(phase_true, params.pixel_size_nm)
    b_rec = integrated_induction(phase, params.pixel_size_nm)
    scale = float(torch.quantile(torch.hypot(*b_true).flatten(), 0.995))
    write_png(out / "image.png", to_uint8(image.numpy()))
    write_png(out / "phi_true.png", to_uint8(phase_true.numpy()))
    write_png(out / "phi_sitie.png", to_uint8(phase.numpy()))
    write_png(out / "b_true.png", colour_wheel_rgb(*b_true, max_magnitude=scale).numpy())
    write_png(out / "b_sitie.png", colour_wheel_rgb(*b_rec, max_magnitude=scale).numpy())
    write_png(out / "colour_wheel_legend.png", colour_wheel_legend(128).numpy())
    np.savez(
        out / "result.npz", image=image.numpy(), phi_m=phase.numpy(), phi_true=phase_true.numpy()
    )
    return {
        "phase": correlation(phase, phase_true),
        "b": 0.5 * (correlation(b_rec[0], b_true[0]) + correlation(b_rec[1], b_true[1])),
    }


def display_available() -> bool:
    """True where a window can open: a display, or an explicit Qt platform (e.g. offscreen)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _viewer_command(source: str, results: str, control: str, extra: list[str]) -> list[str]:
    script = Path(sys.executable).parent / "lorentz-live"
    endpoints = ["--source", source, "--results", results, "--control", control]
    return [str(script), "gui", *endpoints, *extra]


def _engine_beside_viewer(runner, control: str, source: str, viewer: list[str]) -> None:
    """Run ``runner`` in a thread, open the viewer on its streams, return when it closes.

    Re-raises an engine failure after the viewer is closed.
    """
    failure: list[BaseException] = []

    def engine_loop() -> None:
        try:
            runner.run()
        except BaseException as error:  # re-raised below
            failure.append(error)

    thread = threading.Thread(target=engine_loop, name="engine", daemon=True)
    thread.start()
    if not runner.wait_started(30.0) or runner.results_address is None:
        raise SystemExit("demo: the engine did not start its results stream")
    command = _viewer_command(source, runner.results_address, control, viewer)
    print(f"viewer: {' '.join(command[1:])}", flush=True)
    window = subprocess.Popen(command)
    try:
        while window.poll() is None and not failure:
            thread.join(0.2)
    finally:
        if window.poll() is None:
            window.terminate()
            window.wait(30)
        runner.stop()
        thread.join(120)
    if failure:
        raise failure[0]


def run_live(
    out: Path,
    *,
    size: int = 128,
    frames: int = 20,
    fps: float = 2.0,
    seed: int = 0,
    viewer: list[str] | None = None,
) -> dict[str, float]:
    """Bridge process -> live engine (this process) with a status line; PNGs of the last result.

    viewer : run the viewer process with these extra arguments (``[]`` for none);
    the run then ends when the viewer exits.  ``None``: no viewer.
    """
    import h5py

    from lorentz_live.live import LiveConfig, LiveEngine, LiveResult
    from lorentz_live.live.control import ControlServer, EngineControl
    from lorentz_live.live.runner import LiveRunner
    from lorentz_live.simulator import bridge_command, free_loopback_endpoint

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # the bridge process takes the other core
    endpoint = free_loopback_endpoint()
    truth_path = out / "truth.h5"
    command = bridge_command(
        endpoint,
        size=size,
        fps=fps,
        frames=frames,
        dose=10,
        seed=seed,
        truth=truth_path,
        temperature_start_k=250,
        wait_subscribers=1 if viewer is None else 2,
    )
    print(f"bridge: {' '.join(command[1:])}", flush=True)
    bridge = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    results: list[LiveResult] = []
    engine = LiveEngine(LiveConfig())
    engine.add_listener(results.append)
    server = None
    if viewer is not None:  # results and control on ports the OS picks (no probe-then-bind race)
        server = ControlServer("tcp://127.0.0.1:*", EngineControl(engine))
        runner = LiveRunner(
            engine,
            endpoint,
            results_bind="tcp://127.0.0.1:*",
            control=server.control,
            idle_timeout_s=60.0,
            status=sys.stderr,
            result_subscribers=1,
        )
    else:
        runner = LiveRunner(engine, endpoint, idle_timeout_s=60.0, status=sys.stderr)
    try:
        if viewer is None or server is None:
            summary = runner.run()
        else:  # the engine works in a thread until the viewer is closed (or the engine fails)
            _engine_beside_viewer(runner, server.address, endpoint, viewer)
            summary = runner.summary
    finally:
        if server is not None:
            server.close()
        bridge.terminate()
        bridge.wait(30)
    if not results:
        raise SystemExit("demo: the engine received no frame from the bridge")
    # the newest SIPRAD refinement (the instant answers come in between)
    last = ([r for r in results if r.method == "siprad"] or results)[-1]
    with h5py.File(truth_path, "r") as handle:
        truth = torch.from_numpy(handle["phi_m"][last.seq])
    pixel_nm = last.params.pixel_size_nm
    b_true = integrated_induction(truth, pixel_nm)
    scale = float(torch.quantile(torch.hypot(*b_true).flatten(), 0.995))
    write_png(out / "live_phi_m.png", to_uint8(last.phi_m.numpy()))
    write_png(out / "live_b.png", colour_wheel_rgb(last.b_x, last.b_y, max_magnitude=scale).numpy())
    write_png(out / "live_b_true.png", colour_wheel_rgb(*b_true, max_magnitude=scale).numpy())
    write_png(out / "colour_wheel_legend.png", colour_wheel_legend(128).numpy())
    return {
        "frames": summary.frames,
        "dropped": summary.dropped,
        "fps": summary.steady_fps,
        "seq": last.seq,
        "phase": correlation(last.phi_m, truth),
        "b": 0.5 * (correlation(last.b_x, b_true[0]) + correlation(last.b_y, b_true[1])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lorentz_live.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument(
        "--size", type=int, default=None, help="image size, px (live 128, single 192)"
    )
    parser.add_argument("--frames", type=int, default=40, help="live: frames the bridge publishes")
    parser.add_argument("--fps", type=float, default=1.0, help="live: bridge frame rate")
    parser.add_argument(
        "--noise", type=float, default=0.25, help="single: Gaussian noise, std / mean"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--single", action="store_true", help="one image by SITIE instead of the live loop"
    )
    parser.add_argument("--no-viewer", action="store_true", help="live: the status line only")
    parser.add_argument("--screenshot", type=Path, help="live: viewer screenshot (offscreen)")
    parser.add_argument("--exit-after", type=float, help="live: close the viewer after S s")
    args = parser.parse_args(argv)
    if not args.single:
        viewer = None
        if args.screenshot is not None:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            viewer = [
                "--screenshot",
                str(args.screenshot),
                "--exit-after",
                str(args.exit_after or 60),
            ]
        elif args.exit_after is not None:
            viewer = ["--exit-after", str(args.exit_after)]
        elif not args.no_viewer:
            viewer = []
        if viewer is not None and not display_available():
            print(
                "demo: no display (DISPLAY / WAYLAND_DISPLAY unset): the viewer needs one, "
                "showing the status line instead",
                flush=True,
            )
            viewer = None
        live = run_live(
            args.out,
            size=args.size or 128,
            frames=args.frames,
            fps=args.fps,
            seed=args.seed,
            viewer=viewer,
        )
        print(
            f"live demo: {live['frames']} frames reconstructed "
            f"({live['dropped']} dropped while busy), steady {live['fps']:.2f} fps"
        )
        print(
            f"last frame (seq {live['seq']}) against the simulator's truth: "
            f"phase correlation {live['phase']:.3f}, B correlation {live['b']:.3f}"
        )
        print(f"PNGs in {args.out}/")
        return 0
    size = args.size or 192
    scores = run(args.out, size=size, noise=args.noise, seed=args.seed)
    print(
        f"SITIE on a {size} px bubble lattice, dz = -0.5 mm, noise {args.noise:.0%}: "
        f"phase correlation {scores['phase']:.3f}, B correlation {scores['b']:.3f}"
    )
    print(f"PNGs in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
