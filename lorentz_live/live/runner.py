"""The live loop at the edge: bridge subscriber -> :class:`LivePipeline` -> results stream.

Runs the same whether it is its own process (``lorentz-live run``) or a thread
of the viewer: frames come from an :class:`acquisition_bridge.transport.Subscriber`
in latest-frame mode; every frame is answered at once by the engine's instant
method and the newest frame is refined by SIPRAD in the pipeline's thread
(:mod:`lorentz_live.live.pipeline`).  Results of both go out, from this thread
only, on a :class:`acquisition_bridge.results.ResultPublisher` (``method`` in
the header says which produced it) and to in-process listeners.  A bad frame
is counted, logged once per kind of problem, and skipped.
"""

from __future__ import annotations

import json
import logging
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import END_OF_STREAM, ENVELOPE_KEYS, FRAME, SERIES_END, Message
from acquisition_bridge.results import ResultPublisher
from acquisition_bridge.transport import Subscriber
from lorentz_live.errors import InputError
from lorentz_live.live.control import EngineControl
from lorentz_live.live.engine import LiveEngine, LiveFrame, LiveResult
from lorentz_live.live.guards import FrameGuard, GuardConfig
from lorentz_live.live.pipeline import LivePipeline
from lorentz_live.physics import MicroscopeParams

log = logging.getLogger("lorentz_live.live")

_NOT_METADATA = set(ENVELOPE_KEYS) | set(MICROSCOPE_KEYS) | {"shape", "dtype"}


@dataclass
class RunSummary:
    """Counters of one run; latencies in s.

    frames : frames answered (by the instant method).  refined : SIPRAD results.
    superseded : frames replaced by a newer one before SIPRAD was free.
    iterations : SIPRAD iterations per refined frame.  latencies_s : camera
    timestamp to instant answer; refine_latencies_s : to SIPRAD result.
    """

    frames: int = 0
    refined: int = 0
    superseded: int = 0
    refine_latencies_s: list[float] = field(default_factory=list)
    bad_frames: int = 0
    dropped: int = 0
    rejected: int = 0
    #: refused frames per reason (guards.BAD_REASONS) and rejected messages per
    #: protocol reason (acquisition_bridge.protocol.REASONS), non-zero ones only
    bad_reasons: dict[str, int] = field(default_factory=dict)
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    #: SIPRAD results that reached their iteration cap before converging
    capped: int = 0
    cold_starts: int = 0
    iterations: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    completed_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    ended_by: str = ""

    @property
    def fps(self) -> float:
        """Answered frames per second of the whole run (idle time included)."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """Answered frames per second between the first and the last answer."""
        if len(self.completed_s) < 2:
            return 0.0
        return (len(self.completed_s) - 1) / (self.completed_s[-1] - self.completed_s[0])

    def latency_percentile(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        return float(np.percentile(self.latencies_s, q))


def frame_from_message(message: Message) -> LiveFrame:
    """Engine frame from a bridge frame message; :class:`InputError` if its params are unusable."""
    params = MicroscopeParams.from_mapping(message.microscope())
    metadata = {key: value for key, value in message.header.items() if key not in _NOT_METADATA}
    if message.pixels is None:
        raise InputError(f"frame {message.seq}: the message carries no pixels")
    return LiveFrame(
        image=message.pixels,
        params=params,
        seq=message.seq,
        timestamp_ns=message.timestamp_ns,
        metadata=metadata,
    )


def result_header(result: LiveResult, summary: RunSummary, dropped: int) -> dict[str, Any]:
    """Header fields of a published result (docs/protocol.md, "Results stream")."""
    header: dict[str, Any] = {
        "method": result.method,
        "iterations": result.iterations,
        "loss": result.final_loss,
        "warm": result.warm,
        "restart_reason": result.restart_reason,
        "stop_reason": result.stop_reason,
        "held_back": result.held_back,
        "latency_s": result.latency_s,
        "compute_s": result.compute_s,
        "drift_px": list(result.drift_px),
        "dropped_so_far": dropped,
        "bad_frames_so_far": summary.bad_frames,
        "result_timestamp_ns": time.time_ns(),
        "frame": result.metadata,
        "census": result.census,
    }
    header.update(result.params.to_dict())
    return header


def result_arrays(result: LiveResult) -> dict[str, tuple[np.ndarray, str]]:
    """The arrays of a published result with their units."""
    return {
        "phi_m": (result.phi_m.numpy(), "rad"),
        "b_x": (result.b_x.numpy(), "T nm"),
        "b_y": (result.b_y.numpy(), "T nm"),
        "rgb": (
            (result.rgb.numpy() * 255.0 + 0.5).astype(np.uint8),
            "sRGB 0-255, hue = direction of B",
        ),
        "image_fit": (result.image_fit.numpy(), "mean-normalised intensity"),
        "loss": (np.asarray(result.loss, dtype=np.float32), "image MSE, mean-normalised units"),
    }


class LiveRunner:
    """Feed frames from a bridge to an engine and publish what comes out.

    Parameters
    ----------
    engine : the :class:`LiveEngine` (its listeners are called for every result).
    source : the bridge's live endpoint, e.g. ``"tcp://127.0.0.1:5555"``.
    results_bind : endpoint to publish results on, or ``None``.
    stats : file to write one JSON line per result to, or ``None``.
    max_frames : stop after this many answered frames (``None`` = no limit).
    stop_at_end : stop when the source sends end_of_stream.
    idle_timeout_s : stop after this long without a frame (``None`` = never).
    status : stream for the one-line status (``None`` = silent).
    result_subscribers : wait (up to 10 s) for this many results subscribers
        before taking frames, so none misses the first results.
    refine : run SIPRAD refinement (``False``: instant answers only).
    drain_timeout_s : at the end of the stream or after ``max_frames``, wait
        this long for the refinement of the last frame.
    guard : frame admission and glitch settings (:mod:`lorentz_live.live.guards`).
    subscriber_options, publisher_options : extra keyword arguments of the
        :class:`Subscriber` and :class:`ResultPublisher` (CURVE keys).
    tomo : a :class:`lorentz_live.tomo.collect.TiltSeriesCollector` that receives the
        instant phi_m of tilt-series frames and the series_end markers, or ``None``.
    control : operator commands (:mod:`lorentz_live.live.control`), applied
        before each frame.
    header_extras : called per published result; the keys it returns are added
        to the header (``tomo``: :class:`lorentz_live.live.tomo_status.TomoStatus`).
    """

    def __init__(
        self,
        engine: LiveEngine,
        source: str,
        *,
        results_bind: str | None = None,
        stats: Path | None = None,
        max_frames: int | None = None,
        stop_at_end: bool = True,
        idle_timeout_s: float | None = None,
        status: IO[str] | None = None,
        result_subscribers: int = 0,
        refine: bool = True,
        drain_timeout_s: float = 60.0,
        guard: GuardConfig | None = None,
        subscriber_options: dict[str, Any] | None = None,
        publisher_options: dict[str, Any] | None = None,
        tomo: Any = None,
        control: EngineControl | None = None,
        header_extras: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.engine = engine
        self.header_extras = header_extras
        self.guard = FrameGuard(engine, guard)  # before the listener below: it flags results
        self._options = (subscriber_options or {}, publisher_options or {})
        self._last_progress = 0.0
        if status is not None and hasattr(engine.refiner, "on_progress"):
            engine.refiner.on_progress = self._cold_progress
        self.source = source
        self.results_bind = results_bind
        self.stats_path = stats
        self.max_frames = max_frames
        self.stop_at_end = stop_at_end
        self.idle_timeout_s = idle_timeout_s
        self.status = status
        self.result_subscribers = result_subscribers
        self.refine = refine
        self.drain_timeout_s = drain_timeout_s
        self.tomo = tomo
        self.control = control
        self.summary = RunSummary()
        self.results_address: str | None = None
        self.pipeline: LivePipeline | None = None
        self._stop = threading.Event()
        self._logged: set[str] = set()
        self._started = threading.Event()
        self._results: queue.SimpleQueue[LiveResult] = queue.SimpleQueue()
        engine.add_listener(self._results.put)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current frame (any thread)."""
        self._stop.set()

    def wait_started(self, timeout_s: float) -> bool:
        """Block until the sockets are up (for callers running :meth:`run` in a thread)."""
        return self._started.wait(timeout_s)

    def run(self) -> RunSummary:
        """Process frames until a stop condition; return the counters."""
        summary = self.summary
        start = time.monotonic()
        last_frame = start
        publisher = (
            ResultPublisher(self.results_bind, **self._options[1]) if self.results_bind else None
        )
        self.results_address = publisher.address if publisher else None
        self._started.set()
        if publisher is not None and self.result_subscribers:
            publisher.wait_for_subscribers(self.result_subscribers, timeout_s=10.0)
        stats_file = self.stats_path.open("a") if self.stats_path else None
        subscriber = Subscriber(self.source, mode="latest", **self._options[0])
        pipeline = self.pipeline = LivePipeline(self.engine, refine=self.refine)
        interrupted = False
        self._last_status = 0.0

        def flush() -> None:
            self._publish_waiting(publisher, stats_file, start)

        try:
            while not self._stop.is_set():
                flush()
                if self.max_frames is not None and summary.frames >= self.max_frames:
                    summary.ended_by = f"{self.max_frames} frames"
                    self._drain(pipeline, flush)
                    break
                message = subscriber.recv(timeout_s=0.02)
                now = time.monotonic()
                self._count(subscriber)
                if message is None:
                    if self.idle_timeout_s is not None and now - last_frame > self.idle_timeout_s:
                        summary.ended_by = f"no frame for {self.idle_timeout_s:g} s"
                        break
                    continue
                if message.kind == END_OF_STREAM and self.stop_at_end:
                    summary.ended_by = "end of stream"
                    self._drain(pipeline, flush)
                    break
                if message.kind == SERIES_END and self.tomo is not None:
                    self.tomo.end_series(message.header.get("series_id"))
                if message.kind != FRAME:
                    continue
                last_frame = now
                result = self._process(message)
                if result is not None and self.tomo is not None:
                    self.tomo.add(result.metadata, result.phi_m, result.params.pixel_size_nm)
            else:
                summary.ended_by = summary.ended_by or "stopped"
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: do not wait for a long SIPRAD run
            interrupted = True
            raise
        finally:
            pipeline.close(timeout_s=0.2 if interrupted else 60.0)
            self.engine.close(timeout_s=0.2 if interrupted else 30.0)  # training threads
            flush()
            self._count(subscriber)  # the summary is final
            summary.superseded = pipeline.superseded
            summary.wall_s = time.monotonic() - start
            subscriber.close()
            if publisher is not None:
                publisher.close()
            if stats_file is not None:
                stats_file.close()
        if self.status is not None:
            self._print_status(None, summary.wall_s, final=True)
        return summary

    def _count(self, subscriber: Subscriber) -> None:
        counters = subscriber.stats
        summary = self.summary
        summary.dropped, summary.rejected = counters.dropped, counters.rejected_total
        summary.rejected_reasons = {k: v for k, v in counters.rejected.items() if v}

    def _cold_progress(self, stage: str, iteration: int, total: int, loss: float) -> None:
        """Status line of a cold start (called from the refinement thread)."""
        now = time.monotonic()
        if self.status is None or (now - self._last_progress < 0.5 and iteration < total):
            return
        self._last_progress = now
        terminal = self.status.isatty() if hasattr(self.status, "isatty") else False
        print(
            ("\r" if terminal else "")
            + f"siprad cold start: {stage} {iteration}/{total}  loss {loss:.3e}",
            end="" if terminal else "\n",
            file=self.status,
            flush=True,
        )

    def _drain(self, pipeline: LivePipeline, flush: Any) -> None:
        """Wait for the refinement of the last frame, publishing as results come."""
        deadline = time.monotonic() + self.drain_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if pipeline.wait_idle(0.05):
                break
            flush()

    def _publish_waiting(
        self, publisher: ResultPublisher | None, stats_file: IO[str] | None, start: float
    ) -> None:
        """Publish every result the engine has made since the last call (this thread only)."""
        summary = self.summary
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            if result.method == "siprad":
                summary.refined += 1
                summary.cold_starts = self.engine.cold_starts
                summary.iterations.append(result.iterations)
                summary.refine_latencies_s.append(result.latency_s)
                summary.capped += result.stop_reason == "max_iterations"
            if publisher is not None:
                header = result_header(result, summary, summary.dropped)
                if self.header_extras is not None:
                    header.update(self.header_extras())
                publisher.publish(
                    header,
                    result_arrays(result),
                    seq=result.seq,
                    timestamp_ns=result.timestamp_ns,
                )
            if stats_file is not None:
                stats_file.write(json.dumps(self._stats_line(result)) + "\n")
                stats_file.flush()
            now = time.monotonic()
            if self.status is not None and now - self._last_status >= 1.0:
                self._last_status = now
                self._print_status(result, now - start)

    def _process(self, message: Message) -> LiveResult | None:
        """Answer one frame message (its result reaches the queue via the listener)."""
        summary = self.summary
        try:
            frame = frame_from_message(message)
            if self.control is not None:  # operator commands, between frames
                frame = self.control.prepare(frame)
            assert self.pipeline is not None
            result = self.guard.submit(frame, self.pipeline.submit)
        except InputError as error:
            summary.bad_frames += 1
            reason = getattr(error, "reason", "params")
            summary.bad_reasons[reason] = summary.bad_reasons.get(reason, 0) + 1
            kind = str(error).split(":", 1)[-1].strip()[:40]
            if kind not in self._logged:
                self._logged.add(kind)
                log.warning(
                    "skipped bad frame seq %s: %s (similar ones counted silently)",
                    message.seq,
                    error,
                )
            return None
        summary.frames += 1
        summary.latencies_s.append(result.latency_s)
        summary.completed_s.append(time.monotonic())
        return result

    def _stats_line(self, result: LiveResult) -> dict[str, Any]:
        return {
            "seq": result.seq,
            "method": result.method,
            "latency_s": round(result.latency_s, 6),
            "compute_s": round(result.compute_s, 6),
            "iterations": result.iterations,
            "loss": result.final_loss,
            "warm": result.warm,
            "restart_reason": result.restart_reason,
            "stop_reason": result.stop_reason,
            "held_back": result.held_back,
            "drift_px": [round(v, 3) for v in result.drift_px],
            "dropped_so_far": self.summary.dropped,
            "bad_frames_so_far": self.summary.bad_frames,
            "bad_reasons": dict(self.summary.bad_reasons),
            "rejected_so_far": dict(self.summary.rejected_reasons),
            "guard": result.metadata.get("guard"),
        }

    def _print_status(
        self, result: LiveResult | None, elapsed_s: float, *, final: bool = False
    ) -> None:
        summary = self.summary
        recent = summary.iterations[-20:]
        fps = summary.frames / elapsed_s if elapsed_s > 0 else 0.0
        iterations = statistics.median(recent) if recent else 0
        latency = summary.latency_percentile(50)
        line = (
            f"frames {summary.frames}  fps {fps:.2f}  latency p50 {latency:.3f} s"
            f"  refined {summary.refined}  it/frame {iterations:.0f}  dropped {summary.dropped}"
            f"  bad {summary.bad_frames}{_reasons(summary.bad_reasons)}"
            f"  rejected {summary.rejected}{_reasons(summary.rejected_reasons)}"
            f"  capped {summary.capped}  cold {summary.cold_starts}"
        )
        if result is not None:
            state = "warm" if result.warm else "cold"
            line += f"  {result.method} loss {result.final_loss:.3e}  {state}"
        if final:
            line += f"  ({summary.ended_by})"
        if self.status is None:
            return
        terminal = self.status.isatty() if hasattr(self.status, "isatty") else False
        end = "\n" if final or not terminal else ""
        print(("\r" if terminal else "") + line, end=end, file=self.status, flush=True)


def _reasons(counts: dict[str, int]) -> str:
    """The non-zero counts as text, e.g. ' (size 2, glitch 1)'; empty for none."""
    shown = [f"{key} {value}" for key, value in counts.items() if value]
    return f" ({', '.join(shown)})" if shown else ""
