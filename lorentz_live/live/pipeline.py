"""Every frame answered: the instant method inline, SIPRAD on the newest frame in a thread.

:meth:`LivePipeline.submit` answers a frame at once with the engine's instant
method (its result goes to the engine's listeners) and leaves the frame for the
refinement thread, which takes the newest waiting frame whenever SIPRAD is
free; a frame replaced before SIPRAD took it is counted in ``superseded``.  A
cold start (seconds) therefore never delays an instant answer.  No sockets.
"""

from __future__ import annotations

import logging
import threading

from lorentz_live.errors import InputError
from lorentz_live.live.engine import LiveEngine, LiveFrame, LiveResult

log = logging.getLogger("lorentz_live.live")


class LivePipeline:
    """Run ``engine``'s instant path inline and its refiner in a background thread.

    refine : start the refinement thread (``False``: instant answers only).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, engine: LiveEngine, *, refine: bool = True) -> None:
        self.engine = engine
        self.refined = 0
        self.superseded = 0
        self.refine_errors = 0
        self._pending: LiveFrame | None = None
        self._busy = False
        self._closed = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        if refine:
            self._thread = threading.Thread(target=self._refine_loop, name="siprad", daemon=True)
            self._thread.start()

    def submit(self, frame: LiveFrame) -> LiveResult:
        """Answer ``frame`` now and queue it for refinement (newest wins).

        Raises :class:`InputError` for a bad frame (which is not queued).
        """
        result = self.engine.answer(frame)
        if self._thread is not None:
            with self._condition:
                if self._pending is not None:
                    self.superseded += 1
                self._pending = frame
                self._condition.notify_all()
        return result

    def idle(self) -> bool:
        """True when nothing waits for or is in refinement."""
        with self._condition:
            return self._pending is None and not self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until :meth:`idle` (or ``timeout_s``); returns whether it is."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._pending is None and not self._busy, timeout_s
            )

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the refinement thread after its current frame."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> LivePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refine_loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                frame, self._pending, self._busy = self._pending, None, True
            try:
                assert frame is not None
                self.engine.process(frame)
                self.refined += 1
            except InputError as error:  # the instant path has refused it already
                log.debug("refinement skipped frame: %s", error)
            except Exception:  # the engine never dies on one frame
                self.refine_errors += 1
                log.exception("refinement of frame %s failed", frame.seq if frame else "?")
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
