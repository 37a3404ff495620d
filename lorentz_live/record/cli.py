"""``lorentz-live record | reprocess | export`` and ``run --record-results``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lorentz_live.errors import InputError


def _record(args: argparse.Namespace) -> None:
    import logging

    from lorentz_live.record.recorder import Recorder
    from lorentz_live.record.writer import RecordError, SessionWriter

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.source is None and args.results is None:
        raise InputError("give --source (the bridge's --record-bind) and/or --results")
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if args.buffer_frames < 1:
        raise InputError(f"--buffer-frames must be >= 1, got {args.buffer_frames}")
    keys = _record_keys(args)
    try:
        writer = SessionWriter(args.out, command=" ".join(sys.argv))
    except RecordError as exc:
        raise InputError(str(exc)) from None
    recorder = Recorder(
        writer,
        source=args.source,
        results=args.results,
        max_frames=args.frames,
        idle_timeout_s=args.idle_timeout,
        results_grace_s=args.results_grace,
        status=sys.stdout,
        status_s=args.status_s,
        buffer_frames=args.buffer_frames,
        **keys,
    )
    # SIGTERM (a process manager) ends the recording cleanly, like Ctrl-C
    previous = signal.signal(signal.SIGTERM, lambda *_: recorder.stop())
    try:
        summary = recorder.run()
    except KeyboardInterrupt:
        summary = recorder.summary
    finally:
        signal.signal(signal.SIGTERM, previous)
        writer.close()
    if summary.error is not None:
        print(f"lorentz-live record: error: {summary.error}", file=sys.stderr)
        raise SystemExit(1)


def _record_keys(args: argparse.Namespace) -> dict[str, bytes]:
    """The recorder's CURVE public keys, read from the files named on the command line."""
    from acquisition_bridge.curve import KeyFileError, read_key

    keys = {}
    try:
        if args.curve_server_key is not None:
            if args.source is None:
                raise InputError("--curve-server-key needs --source")
            keys["curve_server_key"] = read_key(args.curve_server_key, secret=False)
        if args.results_curve_key is not None:
            if args.results is None:
                raise InputError("--results-curve-key needs --results")
            keys["results_curve_key"] = read_key(args.results_curve_key, secret=False)
    except KeyFileError as exc:
        raise InputError(str(exc)) from None
    return keys


class _Progress:
    """'reprocess [#####.....] 12/40 frames 3.1 s' on stderr, at most 5 times a second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = 0.0
        self.terminal = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        filled = int(30 * done / max(total, 1))
        line = f"reprocess [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} frames"
        line += f" {now - self.start:.1f} s"
        print(
            ("\r" if self.terminal else "") + line,
            end="" if self.terminal else "\n",
            file=sys.stderr,
            flush=True,
        )


def _reprocess(args: argparse.Namespace) -> None:
    from lorentz_live.cli import _device, _siprad_config
    from lorentz_live.live import LiveConfig
    from lorentz_live.record.reprocess import reprocess

    if args.warm_iterations is not None and args.warm_iterations < 1:
        raise InputError(f"--warm-iterations must be >= 1, got {args.warm_iterations}")
    config = LiveConfig(
        siprad=_siprad_config(args),
        warm_max_iterations=args.warm_iterations or LiveConfig.warm_max_iterations,
        device=_device(args.device),
    )
    if Path(args.out).exists():
        raise InputError(f"{args.out} exists; a recording never overwrites a session")
    progress = _Progress()
    summary = reprocess(
        Path(args.session),
        Path(args.out),
        config,
        workers=args.workers,
        scheduler=args.scheduler,
        chunk_frames=args.chunk,
        threads_per_worker=args.threads,
        progress=progress,
        command=" ".join(sys.argv),
    )
    if progress.terminal:
        print(file=sys.stderr)
    print(
        f"reprocessed {summary.frames} frames -> {summary.results} results in {summary.chunks} "
        f"chunks on {summary.workers or 'no'} Dask workers, {summary.wall_s:.1f} s: {args.out}"
    )


def _export(args: argparse.Namespace) -> None:
    from lorentz_live.record.export import export_movie, export_tiff
    from lorentz_live.record.reader import SessionReader

    if args.tiff is None and args.movie is None:
        raise InputError("nothing to export: give --tiff PREFIX and/or --movie FILE.gif|.mp4")
    with SessionReader(args.session) as reader:
        written = []
        if args.tiff is not None:
            written += export_tiff(reader, Path(args.tiff), method=args.method)
        if args.movie is not None:
            written.append(export_movie(reader, Path(args.movie), fps=args.fps, method=args.method))
    for path in written:
        print(f"wrote {path}")


def add_commands(commands: Any) -> None:
    """The parser blocks of ``record``, ``reprocess`` and ``export``."""
    record = commands.add_parser("record", help="record frames and results into a new session")
    record.add_argument(
        "--source", metavar="EP", help="the bridge's lossless --record-bind endpoint"
    )
    record.add_argument("--results", metavar="EP", help="the engine's --record-results endpoint")
    record.add_argument("--out", required=True, metavar="SESSION", help="new session folder")
    record.add_argument("--frames", type=int, help="stop after this many frames")
    record.add_argument("--idle-timeout", type=float, help="stop after this long without data, s")
    record.add_argument(
        "--results-grace",
        type=float,
        default=60.0,
        help="after the end of stream, wait up to this long for late results, s",
    )
    record.add_argument(
        "--buffer-frames",
        type=int,
        default=64,
        help="frames held in memory while the disk stalls (2 queues of this length)",
    )
    record.add_argument("--status-s", type=float, default=1.0, help="status line interval, s")
    record.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="the bridge's CURVE public key, when its --record-bind is encrypted",
    )
    record.add_argument(
        "--results-curve-key",
        type=Path,
        metavar="FILE",
        help="the engine's CURVE public key, when --record-results is encrypted",
    )
    record.set_defaults(handler=_record)

    again = commands.add_parser("reprocess", help="re-reconstruct a session offline on Dask")
    again.add_argument("session", help="recorded session folder")
    again.add_argument("--out", required=True, metavar="NEW", help="new session for the results")
    where = again.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="local Dask workers (0: no Dask)")
    where.add_argument("--scheduler", metavar="ADDR", help="a Dask scheduler, e.g. tcp://h:8786")
    again.add_argument("--chunk", type=int, help="frames per chunk (default: 2 chunks per worker)")
    again.add_argument("--threads", type=int, default=1, help="torch threads per task")
    again.add_argument("--iterations", type=int, help="iteration cap of a cold start")
    again.add_argument("--warm-iterations", type=int, help="iteration cap of a warm frame")
    again.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    again.add_argument("--seed", type=int, default=0)
    again.set_defaults(handler=_reprocess, amplitude="none", threshold=None)

    export = commands.add_parser("export", help="TIFF stacks and a colour-wheel movie")
    export.add_argument("session", help="session folder with reconstructions")
    export.add_argument("--tiff", metavar="PREFIX", help="write PREFIX_phi_m.tif, PREFIX_b.tif")
    export.add_argument("--movie", metavar="FILE", help="colour-wheel movie of B (.gif or .mp4)")
    export.add_argument("--fps", type=float, default=10.0, help="movie frame rate")
    export.add_argument(
        "--method",
        help="export the results of this method (sitie, amortised, siprad; default: "
        "siprad when present)",
    )
    export.set_defaults(handler=_export)


def record_results(
    engine: Any,
    bind: str | None,
    config: Any,
    summary: Any,
    curve_secret_key: bytes | None = None,
) -> Any:
    """For ``run --record-results EP``: push every result of ``engine`` to a recorder.

    Returns the :class:`~lorentz_live.record.live.ResultPusher` (to close), or
    ``None`` without ``bind``.  ``summary()`` gives the runner's counters;
    ``curve_secret_key`` (Z85, the results stream's) encrypts the path.
    """
    if bind is None:
        return None
    import zmq

    from acquisition_bridge.endpoints import EndpointError, check_endpoint, warn_if_exposed
    from lorentz_live.record.live import ResultPusher

    try:
        check_endpoint(bind, what="--record-results")
    except EndpointError as exc:
        raise InputError(str(exc)) from None
    warn_if_exposed(bind, encrypted=curve_secret_key is not None, what="results")
    try:
        pusher = ResultPusher(bind, engine_config=config, curve_secret_key=curve_secret_key)
    except zmq.ZMQError as exc:
        raise InputError(f"cannot bind --record-results {bind}: {exc}") from None
    engine.add_listener(pusher.listener(summary))
    return pusher
