"""The results stream: reconstructed maps published by the engine (docs/protocol.md).

Same framing as frames: a msgpack header, then one raw little-endian
C-contiguous buffer per array.  The header's ``arrays`` list names each buffer
with its shape, dtype and unit, in part order, so a client needs only numpy and
msgpack.  Message kind ``"result"``; the envelope keys (``protocol``, ``seq``,
``timestamp_ns``, ``source``) mean what they mean for frames, ``seq`` and
``timestamp_ns`` being those of the camera frame the result belongs to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from acquisition_bridge.protocol import (
    PROTOCOL_MAJOR,
    PROTOCOL_VERSION,
    Limits,
    ProtocolError,
    pack_header,
    unpack_header,
)
from acquisition_bridge.transport import (
    MAX_SUBSCRIPTION_BYTES,
    set_curve_client,
    set_curve_server,
)

log = logging.getLogger("acquisition_bridge.results")

RESULT = "result"
#: Array types allowed on the results stream.
RESULT_DTYPES: tuple[str, ...] = ("<f4", "<u1")
#: Most arrays one result may carry.
MAX_ARRAYS = 16
#: Messages queued per subscriber before the publisher drops (results are large).
RESULTS_SEND_HWM = 4
#: Limits of the results stream: one array part at most 256 MiB (8192² float32;
#: the engine sends maps of at most its maximum reconstruction size), headers as
#: for frames.  Also the libzmq receive limit (ZMQ_MAXMSGSIZE) of a subscriber.
RESULT_LIMITS = Limits(max_pixel_bytes=256 << 20)
#: Header keys a publisher never drops to fit a header into the limit.
_ESSENTIAL = frozenset(("protocol", "kind", "seq", "timestamp_ns", "source", "arrays"))


@dataclass(frozen=True, eq=False)
class Result:
    """A decoded result: header (every key kept) and named arrays (read-only views)."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def seq(self) -> int:
        return self.header["seq"]

    def unit(self, name: str) -> str:
        """The unit string the publisher gave array ``name``."""
        for spec in self.header["arrays"]:
            if spec["name"] == name:
                return spec["unit"]
        raise KeyError(name)


def encode_result(
    header: Mapping[str, Any],
    arrays: Mapping[str, tuple[np.ndarray, str]],
    *,
    seq: int,
    timestamp_ns: int,
    source: str,
    limits: Limits = RESULT_LIMITS,
) -> list[bytes | memoryview]:
    """Parts ``[header, array_0, array_1, ...]`` of a result message.

    ``arrays`` maps a name to (array, unit); float arrays are sent as float32,
    uint8 as is (e.g. an RGB display image [h, w, 3]).  ``header`` holds any
    other msgpack-able fields (iterations, latency_s, ...).  A header that
    would exceed ``limits.max_header_bytes`` loses its largest optional fields
    (named in the key ``truncated``) until it fits, so every subscriber accepts it.
    """
    if len(arrays) > MAX_ARRAYS:
        raise ProtocolError("parts", f"at most {MAX_ARRAYS} arrays per result, got {len(arrays)}")
    specs, buffers = [], []
    for name, (values, unit) in arrays.items():
        given = np.asarray(values)
        wire_name = "<u1" if given.dtype == np.uint8 else "<f4"  # numpy spells uint8 "|u1"
        wire = np.ascontiguousarray(given, dtype=np.dtype(wire_name))
        specs.append({"name": name, "shape": list(wire.shape), "dtype": wire_name, "unit": unit})
        buffers.append(memoryview(wire.data).cast("B"))
    full = dict(header)
    full.update(
        protocol=PROTOCOL_VERSION,
        kind=RESULT,
        seq=seq,
        timestamp_ns=timestamp_ns,
        source=source,
        arrays=specs,
    )
    return [_fitting_header(full, limits.max_header_bytes), *buffers]


def _fitting_header(header: dict[str, Any], max_bytes: int) -> bytes:
    """Packed ``header``, its largest optional fields dropped while it exceeds ``max_bytes``."""
    packed = pack_header(header)
    dropped: list[str] = []
    while len(packed) > max_bytes:
        optional = [key for key in header if key not in _ESSENTIAL and key != "truncated"]
        if not optional:
            raise ProtocolError("oversize", f"result header of {len(packed)} bytes")
        largest = max(optional, key=lambda key: len(pack_header({key: header[key]})))
        header = {key: value for key, value in header.items() if key != largest}
        dropped.append(largest)
        header["truncated"] = dropped
        packed = pack_header(header)
    return packed


def decode_result(parts: Sequence[Any], limits: Limits = RESULT_LIMITS) -> Result:
    """Check and decode a result message; raises :class:`ProtocolError` for anything wrong."""
    if not 1 <= len(parts) <= MAX_ARRAYS + 1:
        raise ProtocolError("parts", f"a result has 1 to {MAX_ARRAYS + 1} parts, got {len(parts)}")
    header = unpack_header(parts[0], limits)
    version = header.get("protocol")
    if not isinstance(version, str) or version.split(".", 1)[0] != str(PROTOCOL_MAJOR):
        raise ProtocolError(
            "version", f"protocol {version!r} is not compatible with {PROTOCOL_VERSION}"
        )
    if header.get("kind") != RESULT:
        raise ProtocolError("kind", f"expected a result message, got kind {header.get('kind')!r}")
    for key in ("seq", "timestamp_ns"):
        value = header.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError("field", f"{key} must be an integer >= 0, got {value!r}")
    specs = header.get("arrays")
    if not isinstance(specs, list) or len(specs) != len(parts) - 1:
        raise ProtocolError("parts", f"header lists {specs!r} arrays for {len(parts) - 1} parts")
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for spec, part in zip(specs, parts[1:], strict=True):
        name, array = _decode_array(spec, part, limits)
        total += array.nbytes
        if total > limits.max_pixel_bytes:
            raise ProtocolError("oversize", f"result arrays exceed {limits.max_pixel_bytes} bytes")
        arrays[name] = array
    return Result(header, arrays)


def _decode_array(spec: Any, part: Any, limits: Limits) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ProtocolError("field", f"array spec must be a map with a name, got {spec!r}")
    dtype, shape = spec.get("dtype"), spec.get("shape")
    if dtype not in RESULT_DTYPES:
        raise ProtocolError(
            "dtype", f"array {spec['name']!r}: dtype must be one of {RESULT_DTYPES}"
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 3
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= limits.max_side
            for n in shape
        )
    ):
        raise ProtocolError("shape", f"array {spec['name']!r}: bad shape {shape!r}")
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = memoryview(getattr(part, "buffer", part))
    if buffer.nbytes != expected:
        raise ProtocolError(
            "size", f"array {spec['name']!r}: {buffer.nbytes} bytes, expected {expected}"
        )
    return spec["name"], np.frombuffer(buffer, dtype=dtype).reshape(shape)


class ResultPublisher:
    """XPUB socket for results; a slow subscriber loses old results, never blocks the engine.

    ``curve_secret_key`` (Z85) encrypts the stream: subscribers then need the
    matching public key.  A subscription message above
    ``transport.MAX_SUBSCRIPTION_BYTES`` drops that subscriber's connection.
    """

    def __init__(
        self,
        bind: str,
        *,
        source: str = "lorentz-live",
        context: zmq.Context | None = None,
        curve_secret_key: bytes | None = None,
    ):
        self.source = source
        self.sent = 0
        self.subscriptions = 0
        self._socket = (context or zmq.Context.instance()).socket(zmq.XPUB)
        self._socket.linger = 0
        self._socket.sndhwm = RESULTS_SEND_HWM
        self._socket.maxmsgsize = MAX_SUBSCRIPTION_BYTES
        try:
            set_curve_server(self._socket, curve_secret_key)
            self._socket.bind(bind)
        except zmq.ZMQError:
            self._socket.close()
            raise
        self.address: str = self._socket.last_endpoint.decode()

    def _read_subscriptions(self, timeout_ms: int = 0) -> None:
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            if self._socket.recv()[:1] == b"\x01":
                self.subscriptions += 1
            timeout_ms = 0

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` subscriptions arrived (PUB/SUB "slow joiner"); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.subscriptions < count:
            if time.monotonic() > deadline:
                return False
            self._read_subscriptions(timeout_ms=50)
        return True

    def publish(
        self,
        header: Mapping[str, Any],
        arrays: Mapping[str, tuple[np.ndarray, str]],
        *,
        seq: int,
        timestamp_ns: int,
    ) -> None:
        """Send one result (never blocks: a full queue drops it for that subscriber)."""
        self._read_subscriptions()
        parts = encode_result(
            header, arrays, seq=seq, timestamp_ns=timestamp_ns, source=self.source
        )
        self._socket.send_multipart(parts, copy=False)
        self.sent += 1

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> ResultPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResultSubscriber:
    """SUB socket for results with a latest-result policy and counters.

    :meth:`recv_latest` drains everything queued and returns the newest valid
    result; older ones are counted in ``superseded``, invalid ones in ``rejected``.
    No thread: made for a GUI timer or a recorder loop.  libzmq drops a
    connection that sends a part above ``limits.max_pixel_bytes`` (ZMQ_MAXMSGSIZE)
    before anything is allocated for it, and does not reconnect after such a
    protocol error: after ``reconnect_after_s`` without a valid result the
    socket is made anew (also recovering from a restarted engine).
    ``curve_server_key``: the engine's CURVE public key, for an encrypted results stream.
    """

    def __init__(
        self,
        address: str,
        *,
        limits: Limits = RESULT_LIMITS,
        context: zmq.Context | None = None,
        curve_server_key: bytes | None = None,
        reconnect_after_s: float = 10.0,
    ):
        self.address = address
        self.limits = limits
        self.received = 0
        self.superseded = 0
        self.rejected = 0
        self.reconnects = 0
        self.reconnect_after_s = reconnect_after_s
        self._context = context or zmq.Context.instance()
        self._curve_server_key = curve_server_key
        self._logged: set[str] = set()
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = self._context.socket(zmq.SUB)
        socket.linger = 0
        socket.rcvhwm = RESULTS_SEND_HWM
        socket.maxmsgsize = max(self.limits.max_pixel_bytes, self.limits.max_header_bytes)
        set_curve_client(socket, self._curve_server_key)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(self.address)
        self._quiet_since = time.monotonic()
        return socket

    def _take(self, flags: int) -> Result | None:
        parts = self._socket.recv_multipart(flags, copy=False)
        try:
            result = decode_result(parts, self.limits)
        except ProtocolError as error:
            self.rejected += 1
            if error.reason not in self._logged:
                self._logged.add(error.reason)
                log.warning("rejected result message (%s); further ones counted silently", error)
            return None
        self.received += 1
        return result

    def recv_latest(self, timeout_s: float = 0.0) -> Result | None:
        """Newest result within ``timeout_s`` seconds, or ``None``."""
        newest = None
        if not self._socket.poll(round(timeout_s * 1000)):
            if time.monotonic() - self._quiet_since > self.reconnect_after_s:
                self._socket.close(linger=0)
                self._socket = self._connect()
                self.reconnects += 1
            return None
        while True:
            try:
                result = self._take(zmq.NOBLOCK)
            except zmq.Again:
                if newest is not None:
                    self._quiet_since = time.monotonic()
                return newest
            if result is not None:
                if newest is not None:
                    self.superseded += 1
                newest = result

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> ResultSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
