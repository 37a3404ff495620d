"""Viewer display rate (not named gui.py: that would shadow the ``gui`` package), GUI-thread time per update and memory over a long stream.

    make bench-gui        (python benchmarks/viewer.py [--sizes 1024 2048] [--seconds 30] [--soak-s 600])

Processes, all on this machine:

* a camera: ``lorentz-bridge replay`` of a uint16 stack, looping at ``--fps``;
* a reconstruction running meanwhile: ``lorentz-bridge simulate`` (128 px,
  2 fps) and ``lorentz-live run`` (one torch thread) publishing results;
* the viewer, in this process (Qt offscreen platform, software rendering),
  subscribed to the camera and the results.

Measured per frame size: frames the viewer displayed per second (each a new
camera frame through ``ImageItem.setImage`` with levels and a lookup table),
the camera rate it received, GUI-thread time per display update (the timer
callback that takes the newest frame/result and hands them to pyqtgraph), and
the share of frames superseded before display.  The soak streams the first
size and the results for ``--soak-s`` seconds (documented runs: >= 600), samples
the process's resident memory every ``SAMPLE_S`` and calls it flat when the linear
trend of its per-minute lowest values after the first minute is below
``FLAT_MB_PER_MIN``.
Writes the "gui" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from lorentz_live.physics import MicroscopeParams
from lorentz_live.simulator import bridge_command, free_loopback_endpoint

OUT = Path(__file__).resolve().parent.parent / "out" / "bench-gui"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap_mb() -> tuple[float, float]:
    """(in use, free) bytes of the C heap in MB (glibc ``mallinfo2``; NaN elsewhere).

    In use = malloc'd and not freed (``uordblks`` + mmapped ``hblkhd``); free = held
    by malloc but unused (``fordblks``): growth there is fragmentation, not a leak.
    """
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return float("nan"), float("nan")
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def make_stack(size: int, frames: int = 8, seed: int = 0) -> Path:
    """A uint16 stack [frames, size, size] with a sidecar JSON (microscope keys, fps)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    stack = np.empty((frames, size, size), dtype="<u2")
    for i in range(frames):
        pattern = 1000 + 300 * np.sin(2 * np.pi * (x + 7 * i) / 97) * np.cos(2 * np.pi * y / 131)
        stack[i] = rng.poisson(pattern).astype("<u2")
    path = OUT / f"stack_{size}.npy"
    np.save(path, stack)
    meta = {**MicroscopeParams(pixel_size_nm=2.0).to_dict(), "temperature_k": 100.0}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def start_reconstruction() -> tuple[list[subprocess.Popen], str]:
    bridge_ep, results_ep = free_loopback_endpoint(), free_loopback_endpoint()
    simulate = subprocess.Popen(
        bridge_command(bridge_ep, size=128, fps=2, frames=0, wait_subscribers=0),
        stdout=subprocess.DEVNULL,
    )
    engine = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "lorentz-live"),
            "run",
            "--source",
            bridge_ep,
            "--results",
            results_ep,
            "--threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return [simulate, engine], results_ep


def start_camera(stack: Path, fps: float) -> tuple[subprocess.Popen, str]:
    endpoint = free_loopback_endpoint()
    argv = [
        str(Path(sys.executable).parent / "lorentz-bridge"),
        "replay",
        str(stack),
        "--loop",
        "--fps",
        str(fps),
        "--bind",
        endpoint,
        "--quiet",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL), endpoint


def measure(app, window, seconds: float, *, sample_s: float = 0.0) -> dict:
    """Run the event loop for ``seconds``; frames shown, updates and memory samples."""
    start = time.monotonic()
    shown_before = window.model.frames
    received_before = window.receiver.raw_stats().frames
    updates_before = len(window.update_times_s)
    results_before = window.model.results
    memory = []
    busy = 0.0
    painted = window.raw_panel.paints
    next_sample = start
    while (now := time.monotonic()) - start < seconds:
        tick = time.perf_counter()
        app.processEvents()  # timers (display updates), paint events, plots: the GUI thread
        busy += time.perf_counter() - tick
        time.sleep(0.002)
        if sample_s and now >= next_sample:
            memory.append((now - start, rss_mb(), *heap_mb()))
            next_sample += sample_s
    elapsed = time.monotonic() - start
    if sample_s:
        memory.append((elapsed, rss_mb(), *heap_mb()))  # the end of the soak itself
    updates = window.update_times_s[updates_before:]
    shown = window.model.frames - shown_before
    return {
        "shown_fps": shown / elapsed,
        "painted_fps": (window.raw_panel.paints - painted) / elapsed,
        "busy_ms_per_frame": 1e3 * busy / max(shown, 1),
        "gui_load": busy / elapsed,
        "received_fps": (window.receiver.raw_stats().frames - received_before) / elapsed,
        "results": window.model.results - results_before,
        "update_ms_median": 1e3 * statistics.median(updates) if updates else float("nan"),
        "update_ms_p99": 1e3 * float(np.percentile(updates, 99)) if updates else float("nan"),
        "memory": memory,
    }


#: Memory samples during the soak, s.
SAMPLE_S = 2.0
#: The soak passes when the memory trend after its first minute is below this, MB/min.
FLAT_MB_PER_MIN = 0.2


def minute_floors(memory: list[tuple[float, ...]], column: int) -> np.ndarray:
    """(minute, lowest value) per whole minute of the soak after the first.

    The samples toggle by the size of a frame buffer that happens to be alive at
    the moment (2 MB for 1024² uint16); the lowest value of each minute is what
    stays between frames, the quantity that must not grow.
    """
    rows = np.array(memory)
    minutes = np.floor(rows[:, 0] / 60.0)
    counts = {m: int((minutes == m).sum()) for m in np.unique(minutes)}
    full = max(counts.values())
    return np.array(
        [
            (m, rows[minutes == m, column].min())
            for m, count in counts.items()
            if m >= 1 and count >= full // 2  # whole minutes only
        ]
    )


def trend_mb_per_min(memory: list[tuple[float, ...]], column: int) -> float:
    """Least-squares slope of the per-minute lowest ``column`` after the first minute, MB/min."""
    floors = minute_floors(memory, column)
    if len(floors) < 3 or not np.isfinite(floors[:, 1]).all():
        return float("nan")
    return float(np.polyfit(floors[:, 0], floors[:, 1], 1)[0])


def soak_summary(soak: dict, size: int) -> str:
    """One paragraph on the soak's memory: values at 1 min and the end, trends, verdict."""
    memory = soak["memory"]
    (OUT / "soak.json").write_text(json.dumps(memory))  # (t s, RSS, heap in use, heap free) MB
    floors = minute_floors(memory, 1)
    slope = trend_mb_per_min(memory, 1)
    minutes = memory[-1][0] / 60.0
    verdict = (
        f"flat (|trend| < {FLAT_MB_PER_MIN} MB/min)"
        if abs(slope) < FLAT_MB_PER_MIN
        else f"GROWING (|trend| >= {FLAT_MB_PER_MIN} MB/min)"
    )
    if not soak["results"]:
        verdict = "NOT A VALID SOAK: no result arrived (the growth came with results)"
    rss = np.array([row[1] for row in memory])
    return (
        f"Memory while streaming {size}² frames and results for {minutes:.1f} min "
        f"({soak['results']} results shown meanwhile, "
        f"{soak['results'] / max(minutes, 1e-9):.0f} per min).  Resident set of the viewer "
        f"process sampled every {SAMPLE_S:g} s ({rss.min():.1f}-{rss.max():.1f} MB: a frame "
        f"buffer more or less); its lowest value per minute: {floors[0, 1]:.1f} MB in the "
        f"second minute, {floors[-1, 1]:.1f} MB in the last; linear trend of these after the "
        f"first minute {slope:+.3f} MB/min: {verdict}.  C heap (glibc mallinfo2), same "
        f"method: in use {trend_mb_per_min(memory, 2):+.3f} MB/min, free but held "
        f"{trend_mb_per_min(memory, 3):+.3f} MB/min."
        + ("" if minutes >= 10.0 else f"  (A soak of {minutes:.1f} min: shorter than 10 min.)")
    )


def run_size(app, size: int, fps: float, seconds: float, results_ep: str, soak_s: float) -> dict:  # noqa: PLR0917
    from gui.app import build_window

    stack = make_stack(size)
    camera, endpoint = start_camera(stack, fps)
    window = build_window(endpoint, results_ep, None)
    window.show()
    try:
        measure(app, window, 5.0)  # connect, first frames, first layout
        deadline = time.monotonic() + 300.0  # the engine's cold start: measure with results
        while window.model.results == 0 and time.monotonic() < deadline:
            measure(app, window, 1.0)
        row = measure(app, window, seconds)
        if soak_s:
            row["soak"] = measure(app, window, soak_s, sample_s=SAMPLE_S)
    finally:
        window.close()
        window.shutdown()
        camera.terminate()
        camera.wait(30)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement per size, s")
    parser.add_argument("--soak-s", type=float, default=600.0, help="memory soak, s (0: none)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    # SIGTERM (timeout, kill) ends through the finally blocks: no orphaned bridge or engine
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
    processes, results_ep = start_reconstruction()
    rows = {}
    try:
        for index, size in enumerate(args.sizes):
            soak = args.soak_s if index == 0 else 0.0
            rows[size] = run_size(app, size, args.fps, args.seconds, results_ep, soak)
            print(size, {k: v for k, v in rows[size].items() if k != "soak"}, flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)

    lines = [
        f"Camera: `lorentz-bridge replay` of a uint16 stack at {args.fps:g} fps over tcp "
        "loopback; meanwhile `lorentz-bridge simulate` (128 px, 2 fps) and `lorentz-live run` "
        "(1 torch thread) reconstruct and publish results to the same viewer.  Viewer: this "
        "process, Qt `offscreen` platform (software rendering, nothing on a screen).  "
        f"Each size measured for {args.seconds:g} s after 5 s of warm-up and the first result "
        "(the engine's cold start).",
        "",
        "",
        "Displayed = new camera frames handed to the image per second; painted = repaints "
        "of the raw panel per second.  Update = the display timer's callback (take the newest "
        "frame and result, `setImage` with levels and lookup table); GUI thread busy = all time "
        "in the Qt event loop (updates, painting, plots, status bar) per displayed frame.",
        "",
        "| frame | camera received, fps | displayed, fps | painted, fps | update median / p99 "
        "(ms) | GUI thread busy per frame (ms) | GUI thread load | results shown |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, row in rows.items():
        lines.append(
            f"| {size}² uint16 | {row['received_fps']:.1f} | {row['shown_fps']:.1f} | "
            f"{row['painted_fps']:.1f} | {row['update_ms_median']:.2f} / "
            f"{row['update_ms_p99']:.2f} | {row['busy_ms_per_frame']:.1f} | "
            f"{100 * row['gui_load']:.0f} % | {row['results']} |"
        )
    first = rows[args.sizes[0]]
    if first.get("soak"):
        lines += ["", soak_summary(first["soak"], args.sizes[0])]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        command = "python benchmarks/viewer.py " + " ".join(sys.argv[1:])
        write_section("gui", "Viewer: display rate and memory", body, command.strip())


if __name__ == "__main__":
    main()
