"""``lorentz-bridge``: publish a frame source over the wire protocol, or listen to one.

    lorentz-bridge simulate --bind tcp://127.0.0.1:5555 --fps 10 --size 128 --frames 100
    lorentz-bridge replay movie.tif --fps 5 --loop
    lorentz-bridge watch /data/session --meta microscope.json
    lorentz-bridge listen --connect tcp://127.0.0.1:5555
    lorentz-bridge keygen keys/

Bad input gives a one-line message naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import zmq

from acquisition_bridge import curve
from acquisition_bridge.curve import KeyFileError
from acquisition_bridge.endpoints import (
    EndpointError,
    check_endpoint,
    is_loopback,
    warn_if_exposed,
)
from acquisition_bridge.protocol import PROTOCOL_VERSION, ProtocolError
from acquisition_bridge.sources import (
    EndOfSource,
    Source,
    SourceError,
    available_sources,
    load_source,
)
from acquisition_bridge.transport import Publisher, Subscriber

log = logging.getLogger("acquisition_bridge")
PROG = "lorentz-bridge"
DEFAULT_BIND = "tcp://127.0.0.1:5555"
#: set when Ctrl-C or SIGTERM ended a command (main then skips the interpreter teardown)
_INTERRUPTED = threading.Event()
__all__ = ["is_loopback", "main", "read_key"]


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def read_key(path: Path, *, secret: bool) -> bytes:
    """A Z85 CURVE key from a key file (:func:`acquisition_bridge.curve.read_key`)."""
    try:
        return curve.read_key(path, secret=secret)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=DEFAULT_BIND, help="live (PUB) endpoint")
    parser.add_argument("--record-bind", help="lossless (PUSH) endpoint for a recorder")
    parser.add_argument("--fps", type=float, help="frame rate (default: the source's)")
    parser.add_argument("--frames", type=int, default=0, help="stop after K frames (0: never)")
    parser.add_argument("--name", help="source name in the headers (default: the source's)")
    parser.add_argument("--curve-secret", type=Path, help="CURVE secret key file (keygen)")
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="heartbeat interval, s")
    parser.add_argument("--status-s", type=float, default=2.0, help="status line interval, s")
    parser.add_argument(
        "--wait-subscribers", type=int, default=0, help="wait for N live subscribers to start"
    )
    parser.add_argument("--quiet", action="store_true", help="warnings only")


class _Status:
    """Logs 'frames N  fps F  MB/s M' every ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._start = self._last = time.monotonic()
        self._frames = 0
        self._bytes = 0

    def update(
        self, frames: int, pixel_bytes: int, extra: str = "", *, final: bool = False
    ) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.interval_s:
            return
        span = max(now - (self._start if final else self._last), 1e-9)
        new_frames = frames if final else frames - self._frames
        new_bytes = pixel_bytes if final else pixel_bytes - self._bytes
        log.info(
            "%sframes %d  fps %.1f  MB/s %.1f%s",
            "done: " if final else "",
            frames,
            new_frames / span,
            new_bytes / span / 1e6,
            extra,
        )
        self._last, self._frames, self._bytes = now, frames, pixel_bytes


def _publish(source_cls: type[Source], args: argparse.Namespace) -> int:
    for name in ("fps", "heartbeat_s", "status_s"):
        value = getattr(args, name)
        if value is not None and not value >= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if args.frames < 0:
        raise UsageError(f"--frames must be >= 0, got {args.frames}")
    for endpoint in filter(None, (args.bind, args.record_bind)):
        _check(endpoint, "--bind")
        warn_if_exposed(endpoint, encrypted=args.curve_secret is not None, what="frames")
    secret = read_key(args.curve_secret, secret=True) if args.curve_secret else None
    source = source_cls.from_args(args)
    # a context of its own: terminating it at the end waits until the lossless path has
    # delivered what it still holds (the last frames, end_of_stream)
    context = zmq.Context()
    try:
        publisher = Publisher(
            args.bind,
            context=context,
            record_bind=args.record_bind,
            source=args.name or source_cls.name,
            heartbeat_s=args.heartbeat_s,
            curve_secret_key=secret,
        )
    except zmq.ZMQError as exc:
        context.term()
        raise UsageError(f"cannot bind {args.bind} / {args.record_bind}: {exc}") from None
    status = _Status(args.status_s)
    rejected = 0
    with publisher, source:
        log.info(
            "%s publishing on %s%s (protocol %s)",
            source_cls.name,
            publisher.address,
            f", recording path {publisher.record_address}" if publisher.record_address else "",
            PROTOCOL_VERSION,
        )
        try:
            if args.wait_subscribers > 0:
                log.info("waiting for %d subscriber(s)", args.wait_subscribers)
                publisher.wait_for_subscribers(args.wait_subscribers)
            while args.frames == 0 or publisher.stats.frames < args.frames:
                try:
                    frame = source.read(min(args.heartbeat_s, 0.25) if args.heartbeat_s else 0.25)
                except EndOfSource:
                    break
                if frame is None:
                    publisher.tick()
                    continue
                try:
                    publisher.publish(frame)
                except ProtocolError as exc:
                    if publisher.stats.frames == 0:
                        raise UsageError(
                            f"{source_cls.name} produced an invalid frame: {exc}"
                        ) from None
                    rejected += 1
                    log.warning("skipping an invalid frame: %s", exc)
                    continue
                stats = publisher.stats
                extra = f"  record-dropped {stats.record_dropped}" if args.record_bind else ""
                status.update(stats.frames, stats.pixel_bytes, extra)
        except KeyboardInterrupt:
            log.info("interrupted")
            _INTERRUPTED.set()
        finally:
            with contextlib.suppress(zmq.ZMQError):
                publisher.end_of_stream()
            stats = publisher.stats
            status.update(
                stats.frames,
                stats.pixel_bytes,
                f"  record-dropped {stats.record_dropped}  invalid {rejected}",
                final=True,
            )
    context.term()  # waits up to transport.RECORD_LINGER_S for a recorder to take the rest
    return 0


def _listen(argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"{PROG} listen", description="Subscribe and log a status line.")
    parser.add_argument("--connect", default=DEFAULT_BIND, help="endpoint to connect to")
    parser.add_argument("--mode", choices=("latest", "all"), default="latest")
    parser.add_argument("--frames", type=int, default=0, help="stop after K frames (0: never)")
    parser.add_argument("--curve-server-key", type=Path, help="the bridge's CURVE public key file")
    parser.add_argument("--status-s", type=float, default=2.0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.quiet)
    _check(args.connect, "--connect")
    server_key = read_key(args.curve_server_key, secret=False) if args.curve_server_key else None
    status = _Status(args.status_s)
    with Subscriber(args.connect, mode=args.mode, curve_server_key=server_key) as subscriber:
        try:
            while args.frames == 0 or subscriber.stats.delivered < args.frames:
                message = subscriber.recv(0.25)
                stats = subscriber.stats
                if message is not None and message.kind == "end_of_stream":
                    break
                status.update(
                    stats.delivered,
                    stats.pixel_bytes,
                    f"  dropped {stats.dropped}  rejected {stats.rejected_total}",
                )
        except KeyboardInterrupt:
            _INTERRUPTED.set()
        stats = subscriber.stats
        status.update(
            stats.delivered,
            stats.pixel_bytes,
            f"  superseded {stats.superseded}  missed {stats.missed}"
            f"  rejected {stats.rejected_total}",
            final=True,
        )
    return 0


def _keygen(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog=f"{PROG} keygen", description="Write a CURVE key pair for --curve-secret."
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--name", default="bridge")
    args = parser.parse_args(argv)
    try:
        public, secret = curve.write_key_pair(args.folder, args.name)
    except OSError as exc:
        raise UsageError(f"cannot write keys into {args.folder}: {exc.strerror}") from None
    print(f"public key (give to clients): {public}\nsecret key (keep on the bridge): {secret}")
    return 0


def _check(endpoint: str, option: str) -> None:
    try:
        check_endpoint(endpoint, what=option)
    except EndpointError as exc:
        verb = "bind" if option == "--bind" else "connect"
        raise UsageError(f"cannot {verb} {exc}") from None


def _logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _usage() -> str:
    names = ", ".join(sorted(available_sources()))
    return (
        f"usage: {PROG} SOURCE [options]   (SOURCE: {names})\n"
        f"       {PROG} listen --connect ENDPOINT\n"
        f"       {PROG} keygen FOLDER\n"
        f"       {PROG} SOURCE --help   for the options of a source\n"
    )


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    commands = {"listen": _listen, "keygen": _keygen, "--version": _version}
    if argv[0] in commands:
        return commands[argv[0]](argv[1:])
    source_cls = load_source(argv[0])
    parser = _Parser(prog=f"{PROG} {argv[0]}", description=source_cls.description)
    _common_arguments(parser)
    source_cls.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    _logging(args.quiet)
    return _publish(source_cls, args)


def _version(argv: Sequence[str]) -> int:
    print(f"{PROG} (protocol {PROTOCOL_VERSION})")
    return 0


def _exit_now(code: int) -> None:
    """End an interrupted program at once: sockets closed, end_of_stream sent, logs flushed.

    Skips the interpreter's teardown, which takes seconds on a loaded machine
    once torch is loaded (the simulate source), so SIGTERM ends within 2 s.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _terminate_like_interrupt() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lorentz-bridge``; returns the exit code."""
    program = argv is None
    if argv is None:
        argv = sys.argv[1:]
        # as a program, a SIGTERM (e.g. from a process manager) ends the stream
        # cleanly, like Ctrl-C
        _terminate_like_interrupt()
    argv = list(argv)
    try:
        code = _dispatch(argv)
        if program and _INTERRUPTED.is_set():
            _exit_now(code)
        return code
    except (UsageError, SourceError, ProtocolError) as exc:
        print(
            f"{PROG}: error: {exc}" if not str(exc).startswith(PROG) else str(exc), file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
