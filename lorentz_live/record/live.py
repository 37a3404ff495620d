"""The engine's lossless results path: PUSH every result to a recorder (docs/protocol.md, 7.1).

The live results stream (XPUB) drops results for a slow viewer; this path is
the one a recorder connects to.  Same message as the results stream (made by
``acquisition_bridge.results.encode_result``); the engine waits up to
``timeout_s`` for a slow recorder, then drops the result (counted in
:attr:`ResultPusher.dropped`) and does not wait again until the recorder takes
one, so a missing recorder costs the live loop one timeout, not one per frame.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import zmq

from acquisition_bridge.results import encode_result
from acquisition_bridge.transport import RECORD_LINGER_S, set_curve_server
from lorentz_live.live.engine import LiveResult
from lorentz_live.live.runner import RunSummary, result_arrays, result_header
from lorentz_live.record.writer import RESULT_MAPS

log = logging.getLogger("lorentz_live.record")

#: Results queued for the recorder before the engine waits.
RECORD_RESULTS_HWM = 16
#: Key of a pushed result's header holding the engine's settings.
CONFIG_KEY = "engine_config"
_SKIP_ARRAYS = ("rgb", "image_fit")  # derived or display-only: not recorded


def result_record(
    result: LiveResult, summary: RunSummary | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays a session stores for one engine result.

    The header is the results-stream header (``result_header``, which names the
    ``method``) plus ``seq`` and ``timestamp_ns``; without the runner's ``summary`` the
    run-level counters (dropped and bad frames so far) are left out.
    """
    header = result_header(result, summary or RunSummary(), summary.dropped if summary else 0)
    if summary is None:
        header.pop("dropped_so_far")
        header.pop("bad_frames_so_far")
    header.update(seq=result.seq, timestamp_ns=result.timestamp_ns)
    arrays = {
        name: values for name, (values, _) in result_arrays(result).items() if name in RESULT_MAPS
    }
    arrays["loss"] = np.asarray(result.loss, dtype=np.float32)
    return header, arrays


class ResultPusher:
    """PUSH socket bound at ``bind``; one recorder connects a PULL (``lorentz-live record``).

    ``curve_secret_key`` (Z85) encrypts the path: the recorder then needs the
    matching public key (``lorentz-live record --results-curve-key``).
    """

    def __init__(
        self,
        bind: str,
        *,
        engine_config: Any = None,
        source: str = "lorentz-live",
        timeout_s: float = 1.0,
        context: zmq.Context | None = None,
        curve_secret_key: bytes | None = None,
    ) -> None:
        self.source = source
        self.sent = 0
        self.dropped = 0
        self._config = (
            dataclasses.asdict(engine_config)
            if dataclasses.is_dataclass(engine_config) and not isinstance(engine_config, type)
            else engine_config
        )
        self._timeout_ms = max(0, round(timeout_s * 1000))
        self._ready = True
        self._lock = threading.Lock()  # results come from the instant and the refiner thread
        # a context of its own: close() terminates it, which waits (up to
        # RECORD_LINGER_S) until the recorder has the results still queued
        self._context = context or zmq.Context()
        self._own_context = context is None
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.linger = 0
        self._socket.sndhwm = RECORD_RESULTS_HWM
        set_curve_server(self._socket, curve_secret_key)
        try:
            self._socket.bind(bind)
        except zmq.ZMQError:
            self._socket.close()
            if self._own_context:
                self._context.term()
            raise
        self.address: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def push(self, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bool:
        """Send one result (``header`` holds ``seq`` and ``timestamp_ns``); False if dropped."""
        fields = {key: value for key, value in header.items() if key not in ("seq", "timestamp_ns")}
        if self._config is not None:
            fields[CONFIG_KEY] = self._config
        units = {
            name: (np.asarray(values), RESULT_MAPS.get(name, "")) for name, values in arrays.items()
        }
        parts = encode_result(
            fields,
            units,
            seq=header["seq"],
            timestamp_ns=header["timestamp_ns"],
            source=self.source,
        )
        with self._lock:
            return self._send(parts)

    def _send(self, parts: list) -> bool:
        timeout = self._timeout_ms if self._ready else 0
        if self._socket.poll(timeout, zmq.POLLOUT):
            try:
                self._socket.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            else:
                self._ready = True
                self.sent += 1
                return True
        if self._ready:
            log.warning(
                "recorder on %s took no result within %d ms; dropping results (counted)",
                self.address,
                self._timeout_ms,
            )
        self._ready = False
        self.dropped += 1
        return False

    def listener(self, summary: Callable[[], RunSummary | None]) -> Callable[[LiveResult], None]:
        """A ``LiveEngine.add_listener`` callable pushing every result (``summary()``: counters)."""

        def push(result: LiveResult) -> None:
            self.push(*result_record(result, summary()))

        return push

    def close(self) -> None:
        """Close, delivering queued results to a connected recorder for up to RECORD_LINGER_S."""
        self._socket.close(linger=round(RECORD_LINGER_S * 1000))
        if self._own_context:
            self._context.term()
