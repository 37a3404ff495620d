"""Recording at camera rate, and reprocessing a session sequentially vs on Dask.

    make bench-record          (python benchmarks/record.py [--size 2048] [--fps 25] [--seconds 10])

Two sections of docs/benchmarks.md, one run:

1. "record": ``lorentz-bridge replay`` in its own process publishes distinct
   uint16 frames (Poisson counts, 200 e/px) at ``--fps`` on its lossless path;
   ``lorentz-live record`` in its own process writes them to a session on this
   disk (flush + fsync per frame).  Frames sent, recorded, lost (seq gaps and the
   bridge's record-dropped), bytes on disk; also the writer alone, in process,
   compressed and uncompressed (the recorder stores a frame uncompressed while it
   is behind, so the recording is lossless at rates above the gzip rate).
2. "reprocess": a simulated field-cooling movie recorded as a session, then
   ``reprocess`` in one process as one warm-started chain (sequential), and on
   1 and 2 local Dask workers with the same chunks; wall time, speed-up and
   phase accuracy against the simulator's truth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from lorentz_live.live import LiveConfig
from lorentz_live.metrics import correlation
from lorentz_live.record import SessionReader, SessionWriter
from lorentz_live.record.reprocess import reprocess
from lorentz_live.simulator import FieldCoolingMovie, FieldCoolingSettings
from lorentz_live.siprad import SipradConfig

BIN = Path(sys.executable).parent
MICROSCOPE = FieldCoolingSettings().params.to_dict()


def _frames(count: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.poisson(200.0, (count, size, size)).astype("<u2")


def writer_rate(
    stack: np.ndarray, folder: Path, *, compress: bool, count: int
) -> tuple[float, float]:
    """(frames/s, bytes on disk / raw bytes) of SessionWriter.add_frame alone."""
    with SessionWriter(folder) as writer:
        start = time.perf_counter()
        for seq in range(count):
            header = {"seq": seq, "timestamp_ns": time.time_ns(), **MICROSCOPE}
            assert writer.add_frame(stack[seq % len(stack)], header, compress=compress)
        seconds = time.perf_counter() - start
    ratio = (folder / "frames.h5").stat().st_size / (count * stack[0].nbytes)
    return count / seconds, ratio


def record_run(stack_path: Path, folder: Path, fps: float, frames: int) -> dict:
    """Bridge and recorder processes over ipc://; the numbers of one recording."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    live, record = f"ipc:///tmp/bench-live-{tag}", f"ipc:///tmp/bench-record-{tag}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    recorder = subprocess.Popen(
        [
            str(BIN / "lorentz-live"),
            "record",
            "--source",
            record,
            "--out",
            str(folder),
            "--idle-timeout",
            "30",
            "--status-s",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert recorder.stdout is not None
    first = recorder.stdout.readline()  # "recording ..." once its sockets are up
    assert first.startswith("recording"), first
    bridge = subprocess.run(
        [
            str(BIN / "lorentz-bridge"),
            "replay",
            str(stack_path),
            "--loop",
            "--fps",
            str(fps),
            "--frames",
            str(frames),
            "--bind",
            live,
            "--record-bind",
            record,
            "--status-s",
            "1000",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=frames / fps * 4 + 120,
        check=True,
    )
    out, err = recorder.communicate(timeout=300)
    done = [line for line in bridge.stderr.splitlines() if "done:" in line][-1]
    sent_fps = float(done.split("fps")[1].split()[0])
    dropped = int(done.split("record-dropped")[1].split()[0])
    final = out.strip().splitlines()[-1]
    if not final.startswith("done:"):
        raise RuntimeError(f"recorder did not finish: {final}\n{err[-2000:]}")
    with SessionReader(folder) as reader:
        seqs = [header["seq"] for header in reader.frame_headers]
        stamps = [header["timestamp_ns"] for header in reader.frame_headers]
        stack = np.load(stack_path, mmap_mode="r")
        checked = all(
            np.array_equal(reader.frame(i)[0], stack[seqs[i] % len(stack)])
            for i in range(0, reader.frame_count, max(1, reader.frame_count // 10))
        )
        recorded = reader.frame_count
    return {
        "sent": frames,
        "sent_fps": sent_fps,
        "record_dropped": dropped,
        "recorded": recorded,
        "gaps": (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else frames,
        "span_s": (stamps[-1] - stamps[0]) * 1e-9 if stamps else 0.0,
        "uncompressed": int(final.split("uncompressed")[1].split()[0]),
        "disk_ratio": (folder / "frames.h5").stat().st_size / (recorded * stack[0].nbytes),
        "pixels_ok": checked,
        "recorder_line": final,
        "recorder_err": err.strip()[-300:],
    }


def bench_record(args: argparse.Namespace, scratch: Path) -> str:
    size, fps = args.size, args.fps
    frames = round(args.seconds * fps)
    stack = _frames(25, size)
    stack_path = scratch / "stack.npy"
    np.save(stack_path, stack)
    stack_path.with_suffix(".json").write_text(json.dumps(MICROSCOPE))
    run = record_run(stack_path, scratch / "session", fps, frames)
    gzip_fps, gzip_ratio = writer_rate(stack, scratch / "w-gzip", compress=True, count=40)
    raw_fps, _ = writer_rate(stack, scratch / "w-raw", compress=False, count=40)
    raw_mb_s = size * size * 2 * fps / 1e6
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    lost = run["sent"] - run["recorded"]
    return f"""
{size}² uint16 frames (Poisson, 200 e/px, {size * size * 2 / 2**20:.0f} MiB each) at {fps:g} fps
({raw_mb_s:.0f} MB/s) for {args.seconds:g} s: bridge and recorder in separate processes over
`ipc://`, session on this machine's disk (`{scratch}`), flush + fsync after every frame.

| | value |
|---|---|
| frames sent by the bridge | {run["sent"]} (at {run["sent_fps"]:.1f} fps) |
| frames recorded | {run["recorded"]} |
| lost (sent − recorded; seq gaps; bridge record-dropped) | {lost}; {run["gaps"]}; {run["record_dropped"]} |
| pixels identical to the source (every 10th frame checked) | {"yes" if run["pixels_ok"] else "NO"} |
| frames stored uncompressed (recorder behind the camera) | {run["uncompressed"]} of {run["recorded"]} |
| session size / raw size | {run["disk_ratio"]:.2f} |

Writer alone (in process, 40 frames of the same size, fsync per frame): compressed
(shuffle + gzip 1 in {os.cpu_count()} threads) {gzip_fps:.1f} frames/s at {gzip_ratio:.2f} of the raw
size; uncompressed {raw_fps:.1f} frames/s ({raw_fps * size * size * 2 / 1e6:.0f} MB/s).  The recorder compresses
while it keeps up and stores frames uncompressed while more than 2 wait; if it is
still slower than the camera, the lossless path makes the bridge wait (its rate above
falls below {fps:g} fps) instead of losing frames.  Load average during the run:
{load}.

Recorder's last line: `{run["recorder_line"]}`
"""


def movie_session(folder: Path, size: int, frames: int) -> list[np.ndarray]:
    settings = FieldCoolingSettings(
        size_px=size, ramp_frames=max(2, frames), temperature_start_k=250.0, seed=0
    )
    movie = FieldCoolingMovie(settings)
    truth = []
    with SessionWriter(folder) as writer:
        for seq in range(frames):
            frame = movie.next()
            header = {"seq": seq, "timestamp_ns": time.time_ns(), **settings.params.to_dict()}
            assert writer.add_frame(frame.image, header)
            truth.append(frame.phi_m)
    return truth


def bench_reprocess(args: argparse.Namespace, scratch: Path) -> str:
    count, size = args.movie_frames, args.movie_size
    truth = movie_session(scratch / "movie", size, count)
    config = LiveConfig(siprad=SipradConfig(max_iterations=args.cold_iterations))
    chunk = math.ceil(count / 2)
    runs = [
        ("one warm chain, in process", 0, count),
        ("sequential: the same chunks, in process", 0, chunk),
        ("Dask, 1 local worker", 1, chunk),
        ("Dask, 2 local workers", 2, chunk),
    ]
    rows, walls, warm_s, cold_s = [], {}, [], []
    for run, (name, workers, chunk_frames) in enumerate(runs):
        out = scratch / f"reprocessed-{run}"
        summary = reprocess(
            scratch / "movie", out, config, workers=workers, chunk_frames=chunk_frames
        )
        with SessionReader(out) as reader:
            scores = [
                correlation(
                    torch.from_numpy(reader.result(i)[0]["phi_m"]), torch.from_numpy(truth[i])
                )
                for i in range(reader.result_count)
            ]
            iterations = [header["iterations"] for header in reader.result_headers]
            compute = [header["compute_s"] for header in reader.result_headers]
            cold = [not header["warm"] for header in reader.result_headers]
            if run == 0:
                warm_s = [c for c, is_cold in zip(compute, cold, strict=True) if not is_cold]
                cold_s = [c for c, is_cold in zip(compute, cold, strict=True) if is_cold]
            cold_fraction = sum(
                c for c, is_cold in zip(compute, cold, strict=True) if is_cold
            ) / sum(compute)
        walls[run] = summary.wall_s
        rows.append(
            f"| {name} | {summary.chunks} × {chunk_frames} | {summary.wall_s:.1f} | "
            f"{summary.wall_s / count:.2f} | {statistics.median(scores):.3f} / {min(scores):.3f} | "
            f"{sum(iterations)} |"
        )
    speedup, over_sequential = walls[2] / walls[3], walls[1] / walls[3]
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    per_frame = statistics.median(warm_s)
    night = round(args.fps * 3600 * 8)

    def scale(side: int) -> float:
        return (side / size) ** 2

    scenarios = [
        (f"every frame, {args.size}²", night, scale(args.size)),
        (f"1 frame per second, {args.size}²", 8 * 3600, scale(args.size)),
        ("1 frame per second, binned to 512²", 8 * 3600, scale(512)),
    ]
    plan_rows = "\n".join(
        f"| {name} | {frames:,} | {frames * per_frame * factor / 3600:,.0f} | "
        f"{math.ceil(frames * per_frame * factor / (12 * 3600)):,} |"
        for name, frames, factor in scenarios
    )
    cold_share = cold_fraction
    return f"""
{count} frames of a simulated field-cooling movie ({size}² px, 200 e/px, bubbles from the
first frame), default `LiveConfig` but cold starts capped at {args.cold_iterations} iterations
(a cold start on each chunk's first frame, warm-started after),
1 torch thread per task.  Dask runs use chunks of {chunk} frames on a `LocalCluster`
(processes, 1 thread each); cluster start-up is included in their wall time.

| run | chunks | wall s | s/frame | phase corr. median / min | iterations |
|---|---|---|---|---|---|
{chr(10).join(rows)}

2 Dask workers vs 1: {speedup:.2f}×; vs the same chunks in sequence: {over_sequential:.2f}×, on
this machine's {os.cpu_count()} cores, shared with other jobs during the run (load average
at the end: {load}); Dask wall times include starting the cluster (about 10 s here).  Chunking costs each chunk a cold start (more iterations) and
changes accuracy by the amount in the table.

### Cluster plan (on paper)

A night of in-situ recording (8 h at {args.fps:g} fps, {args.size}² uint16) is
{night:,} frames, {night * args.size**2 * 2 / 1e12:.1f} TB uncompressed.  Cost per frame scales with the
pixel count (SIPRAD section: ×13.7 from 128² to 512², ×16 pixels), so from the
one-chain run's median warm frame, {per_frame:.2f} s at {size}² (CPU, 1 thread; its cold
start took {cold_s[0]:.1f} s), one CPU thread needs ≈ {per_frame * scale(512):.0f} s per warm 512² frame and
≈ {per_frame * scale(args.size):,.0f} s per warm {args.size}² frame.  Workers (1 CPU thread each) to
reprocess within 12 h (warm frames; one cold start per chunk of 300 frames adds
{cold_s[0] / (300 * per_frame):.0%} at this size):

| what is reprocessed | frames | CPU-thread hours | workers for 12 h |
|---|---|---|---|
{plan_rows}

Full-resolution reprocessing of a whole night is therefore a GPU job: the same
chunked tasks run on GPU workers (`--device cuda`, one worker per GPU); no GPU
figure was measured on this machine, so the GPU count is left to the first run on
one (s/frame on the GPU × frames / 43 200 s).  The session folder must be on a
file system every worker sees (NFS, Lustre, ...); each task opens the session
read-only and reads only its frames (row-band chunks), returns its maps to the
client, which writes them in frame order.  In the 8-frame chunks above the cold
start was {cold_share:.0%} of the compute time, which is why chunking only pays with
long chunks and many workers.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--movie-size", type=int, default=64)
    parser.add_argument("--cold-iterations", type=int, default=300)
    parser.add_argument("--movie-frames", type=int, default=16)
    parser.add_argument("--scratch", type=Path, default=Path("out/bench-record"))
    parser.add_argument("--skip", choices=("record", "reprocess"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=args.scratch))
    command = "make bench-record"
    try:
        if args.skip != "record":
            body = bench_record(args, scratch)
            print(body)
            write_section("record", "Recording at camera rate", body, command)
        if args.skip != "reprocess":
            body = bench_reprocess(args, scratch)
            print(body)
            write_section("reprocess", "Reprocessing a session on Dask", body, command)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
