"""Offline re-reconstruction of a session, chunked and parallel on Dask distributed.

The movie is cut into chunks of consecutive frames; each chunk is one task
that runs a fresh :class:`LiveEngine` over its frames (cold on the chunk's
first frame, warm-started after), and chunks run in parallel on the Dask
workers (a ``LocalCluster`` by default, or a scheduler address for a cluster
whose workers see the session's folder).  Results are appended to the new
session in frame order as soon as every earlier chunk is done.
``workers=0`` runs the same chunks one after another in this process, without
Dask.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition_bridge.sources import SourceError
from acquisition_bridge.sources.session import SessionFrames
from lorentz_live.errors import InputError
from lorentz_live.live import LiveConfig, LiveEngine, LiveFrame
from lorentz_live.physics import MicroscopeParams
from lorentz_live.record.live import result_record
from lorentz_live.record.writer import SessionWriter

ChunkResult = list[tuple[dict[str, Any], dict[str, np.ndarray]]]


def plan_chunks(count: int, chunk_frames: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` frame ranges of at most ``chunk_frames`` frames."""
    if chunk_frames < 1:
        raise InputError(f"chunk size must be >= 1 frame, got {chunk_frames}")
    return [(start, min(start + chunk_frames, count)) for start in range(0, count, chunk_frames)]


def default_chunk_frames(count: int, workers: int) -> int:
    """Two chunks per worker (load balance), at least 8 frames (each chunk starts cold)."""
    return max(8, math.ceil(count / (2 * max(workers, 1))))


def reconstruct_chunk(
    session: str, start: int, stop: int, config: LiveConfig, threads: int = 1
) -> ChunkResult:
    """Reconstruct frames ``start .. stop - 1`` of ``session``, warm-started in order.

    Runs on a Dask worker (or in-process); opens the session itself, so a
    cluster's workers need the session's folder on a shared file system.
    A bad frame is skipped (its result is missing from the output).
    """
    import torch

    torch.set_num_threads(threads)
    frames = SessionFrames(Path(session))
    # offline: no wall-time caps and no pre-trained weights from earlier runs, so
    # the numbers depend neither on the machine's speed nor on what ran before
    offline = dataclasses.replace(
        config, cold_budget_s=None, time_budget_s=None, pretrained_cache="memory"
    )
    engine = LiveEngine(offline)
    done: ChunkResult = []
    try:
        for index in range(start, stop):
            header = frames.headers[index]
            frame = LiveFrame(
                image=np.asarray(frames.pixels[index]),
                params=MicroscopeParams.from_mapping(header, ignore_unknown=True),
                seq=int(header["seq"]),
                timestamp_ns=int(header["timestamp_ns"]),
                metadata={"frame_index": index},
            )
            try:
                result = engine.process(frame)  # warm-started SIPRAD
            except InputError:
                continue
            record, arrays = result_record(result)
            record.update(chunk_start=start, latency_s=None)  # offline: no live latency
            done.append((record, arrays))
    finally:
        frames.close()
    return done


@dataclass
class ReprocessSummary:
    frames: int
    results: int
    chunks: int
    workers: int
    wall_s: float


def reprocess(
    session: Path,
    out: Path,
    config: LiveConfig,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    chunk_frames: int | None = None,
    threads_per_worker: int = 1,
    progress: Callable[[int, int], None] | None = None,
    command: str = "",
) -> ReprocessSummary:
    """Reconstruct every frame of ``session`` into the new session ``out``.

    workers : local Dask worker processes (0: in this process, no Dask).
    scheduler : address of a running Dask scheduler (overrides ``workers``).
    chunk_frames : frames per chunk (default :func:`default_chunk_frames`).
    progress : called with (frames done, frames in total).
    """
    start = time.monotonic()
    try:
        frames = SessionFrames(Path(session))
    except SourceError as exc:
        raise InputError(str(exc)) from None
    count = frames.count
    frames.close()
    if workers < 0:
        raise InputError(f"--workers must be >= 0, got {workers}")
    size = chunk_frames or default_chunk_frames(count, workers)
    chunks = plan_chunks(count, size)
    writer = SessionWriter(out, command=command, engine_config=config)
    writer.add_event({"kind": "reprocessed_from", "session": str(Path(session).resolve())})
    results = 0
    done = 0

    def write(chunk: ChunkResult, span: tuple[int, int]) -> None:
        nonlocal results, done
        for header, arrays in chunk:
            if not writer.add_result(header, arrays):
                raise InputError(writer.error or "cannot write results")
            results += 1
        done += span[1] - span[0]
        if progress is not None:
            progress(done, count)

    try:
        if scheduler is None and workers == 0:
            for span in chunks:
                write(reconstruct_chunk(str(session), *span, config, threads_per_worker), span)
        else:
            _run_on_dask(session, chunks, config, workers, scheduler, threads_per_worker, write)
    finally:
        writer.close()
    used = 0 if scheduler is None and workers == 0 else workers
    return ReprocessSummary(count, results, len(chunks), used, time.monotonic() - start)


def _run_on_dask(  # noqa: PLR0917 (private helper of reprocess)
    session: Path,
    chunks: list[tuple[int, int]],
    config: LiveConfig,
    workers: int,
    scheduler: str | None,
    threads: int,
    write: Callable[[ChunkResult, tuple[int, int]], None],
) -> None:
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError(
            "reprocessing on Dask needs dask[distributed]: pip install distributed"
        ) from None
    cluster = None
    if scheduler is None:
        # loopback only; the scheduler's HTTP server (always started) on a free port.
        # Workers without the statistical profiler (it samples the torch loop's stack
        # every 10 ms) and with glibc's default malloc trimming (Dask's 64 KiB
        # threshold returns torch's freed buffers to the OS at every iteration).
        settings = {
            "distributed.worker.profile.enabled": False,
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
        }
        with dask.config.set(settings):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=40,
            )
    try:
        client = Client(cluster if cluster is not None else scheduler, timeout=30)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise InputError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    try:
        path = str(Path(session).resolve())
        futures = {
            client.submit(reconstruct_chunk, path, *span, config, threads, pure=False): index
            for index, span in enumerate(chunks)
        }
        ready: dict[int, ChunkResult] = {}
        next_index = 0
        for future in as_completed(futures):
            ready[futures[future]] = future.result()
            future.release()
            while next_index in ready:  # in frame order
                write(ready.pop(next_index), chunks[next_index])
                next_index += 1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
