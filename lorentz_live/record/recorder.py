"""The recorder process: lossless frames (bridge) and results (engine) -> a session.

Frames come from the bridge's PUSH path (``--record-bind``) through a
:class:`~acquisition_bridge.transport.Subscriber` in ``"all"`` mode, results from
the engine's ``--record-results`` PUSH path; both are appended by one
:class:`SessionWriter`.  A frame is acknowledged (counted in the status line)
only once it is on disk.  While the writer is behind the camera, frames are
stored uncompressed, so the recording keeps up without losing anything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import IO

import zmq

from acquisition_bridge.protocol import DEFAULT_LIMITS, END_OF_STREAM, FRAME, ProtocolError
from acquisition_bridge.results import decode_result
from acquisition_bridge.transport import Subscriber, set_curve_client
from lorentz_live.record.live import CONFIG_KEY, RECORD_RESULTS_HWM
from lorentz_live.record.writer import SessionWriter

log = logging.getLogger("lorentz_live.record")

#: Frames waiting in the receive queue above which new frames are stored uncompressed.
BACKLOG_UNCOMPRESSED = 2
#: Quiet seconds on the results path, after the last frame's result, before stopping.
SETTLE_S = 5.0


@dataclass
class RecordSummary:
    frames: int = 0
    results: int = 0
    missed: int = 0
    rejected: int = 0
    uncompressed: int = 0
    wall_s: float = 0.0
    ended_by: str = ""
    error: str | None = None


class Recorder:
    """Record a bridge's frames and/or an engine's results into ``writer`` until told to stop.

    Parameters
    ----------
    writer : the new session.
    source : the bridge's lossless endpoint (its ``--record-bind``), or ``None``.
    results : the engine's ``--record-results`` endpoint, or ``None``.
    max_frames : stop after this many frames.
    results_grace_s : after the source's end_of_stream, wait for the result of the
        last frame (the engine lags the camera), and then until no result came for
        ``SETTLE_S`` (refinements of earlier frames); stop anyway once no result
        came for ``results_grace_s``.
    idle_timeout_s : stop after this long without any message (``None``: never).
    status : stream for the status line, every ``status_s`` (0: after every frame).
    buffer_frames : length of each of the two receive queues (ZeroMQ's and the
        hand-over queue) that fill while the disk stalls: 64 holds up to 128 frames,
        1 GiB of 2048² uint16 or 5 s at 25 fps, before the bridge waits (and after
        its 1 s timeout drops).
    curve_server_key : the bridge's CURVE public key (Z85) when its --record-bind
        is encrypted (``lorentz-bridge ... --curve-secret``).
    results_curve_key : the engine's CURVE public key (Z85) when ``run
        --record-results`` is encrypted (``--results-curve-secret``).
    """

    def __init__(
        self,
        writer: SessionWriter,
        *,
        source: str | None,
        results: str | None = None,
        max_frames: int | None = None,
        results_grace_s: float = 60.0,
        idle_timeout_s: float | None = None,
        status: IO[str] | None = None,
        status_s: float = 1.0,
        buffer_frames: int = 64,
        curve_server_key: bytes | None = None,
        results_curve_key: bytes | None = None,
    ) -> None:
        if source is None and results is None:
            raise ValueError("nothing to record: give a source and/or a results endpoint")
        self.writer = writer
        self.source = source
        self.results = results
        self.max_frames = max_frames
        self.results_grace_s = results_grace_s
        self.idle_timeout_s = idle_timeout_s
        self.status = status
        self.status_s = status_s
        self.buffer_frames = buffer_frames
        self.curve_server_key = curve_server_key
        self.results_curve_key = results_curve_key
        self.summary = RecordSummary()
        self._stop = False
        self._config: object = None

    def stop(self) -> None:
        self._stop = True

    def run(self) -> RecordSummary:
        summary, writer = self.summary, self.writer
        start = last_message = time.monotonic()
        last_status = 0.0
        ended_at: float | None = None
        frames = (
            Subscriber(
                self.source,
                mode="all",
                queue_size=self.buffer_frames,
                curve_server_key=self.curve_server_key,
            )
            if self.source
            else None
        )
        pull: zmq.Socket | None = None
        if self.results:
            pull = zmq.Context.instance().socket(zmq.PULL)
            pull.setsockopt(zmq.LINGER, 0)
            pull.setsockopt(zmq.RCVHWM, RECORD_RESULTS_HWM)
            set_curve_client(pull, self.results_curve_key)
            pull.connect(self.results)
        if self.status is not None:
            inputs = " and ".join(filter(None, (self.source, self.results)))
            print(f"recording {inputs} into {writer.folder}", file=self.status, flush=True)
        try:
            while not self._stop:
                busy = False
                if frames is not None and ended_at is None:
                    message = frames.recv(timeout_s=0.02 if pull is not None else 0.1)
                    if message is not None:
                        busy = True
                        ended = self._frame_message(message, frames)
                        if ended:
                            ended_at = time.monotonic()
                if pull is not None and pull.poll(0 if busy else 20, zmq.POLLIN):
                    busy = True
                    self._result_message(pull.recv_multipart(copy=False))
                now = time.monotonic()
                if busy:
                    last_message = now
                if writer.error is not None:
                    summary.ended_by, summary.error = "error", writer.error
                    break
                if self.max_frames is not None and summary.frames >= self.max_frames:
                    summary.ended_by = f"{self.max_frames} frames"
                    break
                if ended_at is not None and (
                    pull is None
                    or (self._last_result_in() and now - last_message > SETTLE_S)
                    or now - last_message > self.results_grace_s
                ):
                    summary.ended_by = "end of stream"
                    break
                if self.idle_timeout_s is not None and now - last_message > self.idle_timeout_s:
                    summary.ended_by = f"nothing for {self.idle_timeout_s:g} s"
                    break
                if (
                    self.status is not None
                    and (busy or now - last_status > 1.0)
                    and (now - last_status >= self.status_s)
                ):
                    last_status = now
                    self._print_status(now - start)
            else:
                summary.ended_by = summary.ended_by or "stopped"
        finally:
            summary.wall_s = time.monotonic() - start
            if frames is not None:
                frames.close()
            if pull is not None:
                pull.close(linger=0)
        if self.status is not None:
            self._print_status(summary.wall_s, final=True)
        return summary

    def _last_result_in(self) -> bool:
        """True once the result of the last recorded frame is recorded."""
        stats = self.writer.stats
        return stats.last_result_seq is not None and stats.last_result_seq >= (
            stats.last_frame_seq or 0
        )

    def _frame_message(self, message, frames: Subscriber) -> bool:
        """Record one message of the frame path; True at end_of_stream."""
        summary = self.summary
        stats = frames.stats
        if stats.missed > summary.missed:
            self.writer.add_event(
                {
                    "kind": "gap",
                    "frames_missed": stats.missed - summary.missed,
                    "before_seq": message.seq,
                }
            )
            summary.missed = stats.missed
        summary.rejected = stats.rejected_total
        if message.kind != FRAME:
            self.writer.add_event(message.header)
            return message.kind == END_OF_STREAM
        backlog = stats.frames - stats.delivered
        compress = backlog <= BACKLOG_UNCOMPRESSED
        if self.writer.add_frame(message.pixels, message.header, compress=compress):
            summary.frames += 1
            summary.uncompressed += not compress
        return False

    def _result_message(self, parts) -> None:
        try:
            result = decode_result(parts, DEFAULT_LIMITS)
        except ProtocolError as error:
            self.summary.rejected += 1
            log.warning("rejected a result message (%s)", error)
            return
        header = dict(result.header)
        config = header.pop(CONFIG_KEY, None)
        if config is not None and config != self._config:
            self._config = config
            self.writer.set_engine_config(config)
        for key in ("protocol", "kind", "arrays"):
            header.pop(key, None)
        if self.writer.add_result(header, result.arrays):
            self.summary.results += 1

    def _print_status(self, elapsed_s: float, *, final: bool = False) -> None:
        summary, stats = self.summary, self.writer.stats
        rate = stats.bytes_written / elapsed_s / 1e6 if elapsed_s > 0 else 0.0
        line = (
            f"recorded frames {summary.frames} (last seq {stats.last_frame_seq})"
            f"  results {summary.results}  MB/s {rate:.1f}  uncompressed {summary.uncompressed}"
            f"  missed {summary.missed}  rejected {summary.rejected}"
        )
        if final:
            line = f"done: {line}  ({summary.ended_by})"
        print(line, file=self.status, flush=True)
