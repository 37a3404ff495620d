"""Transport throughput: the bridge's two paths beside bare pyzmq PUSH/PULL, same run.

    make bench-transport      (python benchmarks/transport.py [--quick])

For 1024², 2048² and 4096² uint16 frames over tcp loopback and ipc, a sender
process pushes the same pre-made frame as fast as it can and this process
receives:

* **bare**: pyzmq PUSH/PULL of [8-byte timestamp, pixels], zero-copy, HWM 16
  each side: the ceiling.
* **lossless**: ``Publisher`` record path -> ``Subscriber(mode="all")``: msgpack
  header, validation, seq checks and the receiver thread's hand-over.
* **live**: ``Publisher`` live path (XPUB) -> ``Subscriber(mode="latest")``
  with a consumer that takes every frame it can, the sender paced at 90 % of the
  bare ceiling just measured (the live path never blocks its sender, so unpaced
  it would only show the drop policy); drops are counted, not avoided.

Sustained fps and MB/s at the receiver, drops (seq gaps plus superseded frames),
latency from the sender's timestamp to the consumer (p50/p99).  Each
configuration runs ``--repeats`` times, interleaved, and the median run is
reported; the ratio is bridge fps / bare fps of the same transport and size.
A last table paces 4096² at 25 fps (the target: no drops over ipc).
Writes the "transport" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import Frame
from acquisition_bridge.transport import RECORD_HWM, Publisher, Subscriber

META = {**dict.fromkeys(MICROSCOPE_KEYS, 1.0), "aperture_per_nm": None, "defocus_nm": -1e6}
FRAMES = {1024: 400, 2048: 120, 4096: 40}
MODES = ("bare", "lossless", "live")


def _pixels(size: int) -> np.ndarray:
    return np.random.default_rng(size).integers(0, 4096, (size, size), dtype=np.uint16)


def _sender(mode: str, endpoint: str, size: int, count: int, fps: float, results: mp.Queue) -> None:  # noqa: PLR0917
    """Runs in a child process: send ``count`` copies of one frame (zero-copy)."""
    pixels = _pixels(size)
    interval = 1.0 / fps if fps else 0.0
    context = zmq.Context()
    if mode == "bare":
        socket = context.socket(zmq.PUSH)
        socket.sndhwm = RECORD_HWM
        socket.linger = 5000
        socket.bind(endpoint)
        start = time.perf_counter()
        for index in range(count):
            if interval:
                time.sleep(max(0.0, start + index * interval - time.perf_counter()))
            stamp = np.array([time.time_ns()], "<i8").tobytes()
            socket.send_multipart([stamp, pixels], copy=False)
        socket.send_multipart([b"end"])
        results.put((time.perf_counter() - start, 0))
        socket.close()
    else:
        lossless = mode == "lossless"
        publisher = Publisher(
            endpoint if not lossless else "tcp://127.0.0.1:*",
            record_bind=endpoint if lossless else None,
            source="bench",
            record_timeout_s=10.0,
            context=context,
        )
        if not lossless:
            publisher.wait_for_subscribers(1, timeout_s=10.0)
            time.sleep(0.2)
        start = time.perf_counter()
        for index in range(count):
            if interval:
                time.sleep(max(0.0, start + index * interval - time.perf_counter()))
            publisher.publish(Frame(pixels, META))
        elapsed = time.perf_counter() - start
        publisher.end_of_stream(repeat=5, interval_s=0.05)
        results.put((elapsed, publisher.stats.record_dropped))
        time.sleep(0.5)  # let the last messages leave before the sockets close
        publisher.close()
    context.term()


@dataclass
class Run:
    fps: float
    mb_per_s: float
    drops: int
    p50_ms: float
    p99_ms: float


def _receive_bare(endpoint: str, context: zmq.Context) -> tuple[list[float], list[float]]:
    socket = context.socket(zmq.PULL)
    socket.rcvhwm = RECORD_HWM
    socket.linger = 0
    socket.connect(endpoint)
    arrivals, latencies = [], []
    try:
        while socket.poll(30_000):
            parts = socket.recv_multipart(copy=False)
            if len(parts) == 1:
                break
            now = time.time_ns()
            pixels = np.frombuffer(parts[1].buffer, "<u2")
            assert pixels.size > 0
            latencies.append((now - int(np.frombuffer(parts[0].buffer, "<i8")[0])) / 1e6)
            arrivals.append(time.perf_counter())
    finally:
        socket.close(linger=0)
    return arrivals, latencies


def _receive_bridge(
    mode: str, endpoint: str, context: zmq.Context
) -> tuple[list[float], list[float], int]:
    arrivals, latencies = [], []
    with Subscriber(
        endpoint, mode="all" if mode == "lossless" else "latest", context=context
    ) as subscriber:
        while True:
            message = subscriber.recv(30.0)
            if message is None or message.kind == "end_of_stream":
                break
            if message.kind != "frame":
                continue
            now = time.time_ns()
            latencies.append((now - message.timestamp_ns) / 1e6)
            arrivals.append(time.perf_counter())
        stats = subscriber.stats
    return arrivals, latencies, stats.dropped


def run_once(mode: str, transport: str, size: int, count: int, fps: float = 0.0) -> Run:
    with tempfile.TemporaryDirectory() as folder:
        if transport == "tcp":
            probe = zmq.Context.instance().socket(zmq.PUSH)
            port = probe.bind_to_random_port("tcp://127.0.0.1")
            probe.close(linger=0)
            endpoint = f"tcp://127.0.0.1:{port}"
        else:
            endpoint = f"ipc://{folder}/bench"
        results: mp.Queue = mp.get_context("spawn").Queue()
        sender = mp.get_context("spawn").Process(
            target=_sender, args=(mode, endpoint, size, count, fps, results)
        )
        sender.start()
        context = zmq.Context()
        try:
            if mode == "bare":
                arrivals, latencies = _receive_bare(endpoint, context)
                drops = count - len(arrivals)
            else:
                arrivals, latencies, drops = _receive_bridge(mode, endpoint, context)
            _, record_dropped = results.get(timeout=60)
            drops = max(drops, count - len(arrivals)) + record_dropped
        finally:
            sender.join(timeout=30)
            if sender.is_alive():
                sender.kill()
            context.destroy(linger=0)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    frames_per_s = (len(arrivals) - 1) / span
    return Run(
        frames_per_s,
        frames_per_s * size * size * 2 / 1e6,
        drops,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
    )


def median_run(runs: list[Run]) -> Run:
    """The run with the median fps (so its other figures belong to one real run)."""
    ordered = sorted(runs, key=lambda run: run.fps)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer frames, one repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(FRAMES))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    load_start = os.getloadavg()[0]
    rows = []
    ratios: dict[str, float] = {}
    for size in args.sizes:
        count = FRAMES.get(size, 100) // (4 if args.quick else 1)
        for transport in ("tcp", "ipc"):
            runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
            for _ in range(repeats):
                for mode in ("bare", "lossless"):  # interleaved: a busy moment hits both
                    runs[mode].append(run_once(mode, transport, size, count))
            bare = median_run(runs["bare"])
            # the live path never blocks the sender, so an unpaced sender only shows the
            # drop policy; pace it at 90 % of this run's bare ceiling instead
            live_fps = 0.9 * bare.fps
            for _ in range(repeats):
                runs["live"].append(run_once("live", transport, size, count, fps=live_fps))
            for mode in MODES:
                run = median_run(runs[mode])
                fps_all = ", ".join(f"{r.fps:.1f}" for r in runs[mode])
                label = mode if mode != "live" else f"live, paced {live_fps:.0f} fps"
                # lossless competes with bare; live is judged by what it keeps of its rate
                offered = bare.fps if mode != "live" else live_fps
                ratios[f"{size}² {transport} {mode}"] = run.fps / offered
                rows.append(
                    f"| {size}² | {transport} | {label} | {run.fps:.1f} ({fps_all}) | "
                    f"{run.mb_per_s:.0f} | {run.fps / bare.fps:.2f} | {run.drops} | "
                    f"{run.p50_ms:.1f} | {run.p99_ms:.1f} |"
                )
                print(rows[-1], flush=True)
    paced = []
    paced_ok = None
    if 4096 in args.sizes:
        count = 75 if not args.quick else 25
        for transport in ("ipc", "tcp"):
            for mode in ("bare", "lossless", "live"):
                run = run_once(mode, transport, 4096, count, fps=25.0)
                if transport == "ipc" and mode != "bare":
                    # sustained = every frame delivered and no backlog building up
                    # (a receiver slower than 25 fps lets the latency grow past 0.5 s)
                    good = run.drops == 0 and run.p99_ms < 500.0
                    paced_ok = good if paced_ok is None else paced_ok and good
                paced.append(
                    f"| 4096² | {transport} | {mode} | {run.fps:.1f} | "
                    f"{run.mb_per_s:.0f} | {run.drops} | {run.p50_ms:.1f} | {run.p99_ms:.1f} |"
                )
                print(paced[-1], flush=True)
    body = (
        "uint16 frames, sender and receiver in separate processes on the same host. "
        "fps: sustained receive rate of the median run (all runs in brackets); "
        "ratio: fps / bare fps (same size and transport, same run set); drops: frames "
        "sent but not handed to the consumer (seq gaps + superseded + publisher-side "
        "record drops); latency: sender timestamp to consumer, ms.  bare and lossless "
        "senders are not paced, so their latency is mostly queueing (up to 16 frames "
        "wait in the high-water marks).  The live path never blocks its sender, so it "
        "is paced at 90 % of the bare ceiling of the same run (an unpaced sender would "
        "only show the drop policy at work).\n\n"
        "| frame | transport | path | fps | MB/s | ratio to bare | drops | p50 ms | p99 ms |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    below = [
        name
        for name, ratio in ratios.items()
        if ("lossless" in name and ratio < 0.9) or ("live" in name and ratio < 0.95)
    ]
    body += (
        f"\n\nLoad average (1 min) {load_start:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores: other work "
        "shared the machine, so single runs scatter widely (see the brackets); "
        "compare ratios, not absolute figures.  Targets: lossless >= 0.9 x bare, and "
        "live delivering >= 0.95 of the rate it is paced at: "
        + ("met everywhere." if not below else "not met for " + ", ".join(below) + ".")
    )
    if paced:
        body += (
            f"\n\nTarget check: a camera paced at 25 fps, {count} frames of 4096² "
            "(latency here is transport latency, not queueing):\n\n"
            "| frame | transport | path | fps | MB/s | drops | p50 ms | p99 ms |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(paced)
        )
        verdict = "met" if paced_ok else "NOT met"
        body += (
            f"\n\nTarget 4096² at 25 fps with zero drops over ipc, both paths (every frame "
            f"delivered, p99 latency < 0.5 s so no backlog builds up): {verdict}.  The fps "
            "column is the arrival rate between the first and last frame, which scatters "
            "around the paced 25 fps by the jitter of those two arrivals."
        )
    print(body.split("\n\n")[-1 if not paced else -3], flush=True)
    if not args.no_write:
        command = "python benchmarks/transport.py" + (" --quick" if args.quick else "")
        write_section("transport", "Transport: camera bridge vs bare pyzmq", body, command)


if __name__ == "__main__":
    main()
