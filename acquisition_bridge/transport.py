"""ZeroMQ transport of the wire protocol: a :class:`Publisher` and a :class:`Subscriber`.

Two delivery paths (docs/protocol.md, "Sockets"):

* **live** (fan-out): the publisher binds a PUB socket; any number of SUB
  subscribers connect.  A slow subscriber never slows the camera: frames it
  cannot take are dropped, at the publisher's send high-water mark or by the
  subscriber's one-slot "latest frame" buffer, and every drop is counted.
* **record** (lossless): the publisher binds a PUSH socket; one recorder
  connects a PULL.  The publisher waits (up to ``record_timeout_s``) for a slow
  recorder, so nothing is lost unless the recorder stalls; a frame that still
  cannot be sent is counted by the publisher and seen as a seq gap by the recorder.

ZMQ_CONFLATE does not work with multipart messages, so "latest frame" is an
application-level one-slot buffer filled by a receiver thread that drains the
socket continuously.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import zmq
import zmq.utils.monitor

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import (
    DEFAULT_LIMITS,
    END_OF_STREAM,
    FRAME,
    HEARTBEAT,
    MAX_UINT64,
    REASONS,
    SERIES_END,
    SERIES_START,
    Frame,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode_control,
    encode_frame,
    wire_array,
)

log = logging.getLogger("acquisition_bridge")

#: Messages the PUB socket queues per subscriber before dropping (frames).
LIVE_SEND_HWM = 8
#: Messages the SUB socket queues before the receiver thread takes them.
LIVE_RECV_HWM = 4
#: Messages queued on the lossless path at each end.
RECORD_HWM = 16
#: Seconds a closing publisher keeps delivering the lossless path's queued messages.
RECORD_LINGER_S = 10.0
#: Largest message an XPUB accepts from a subscriber, bytes: a subscription is
#: one byte plus its topic (the protocol's is empty); a larger one drops the
#: connection instead of growing the publisher's subscription table.  The limit
#: also applies to the CURVE handshake, whose INITIATE command needs > 256 bytes.
MAX_SUBSCRIPTION_BYTES = 1024
#: libzmq monitor events that mean the security handshake failed.
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def set_curve_server(socket: zmq.Socket, secret_key: bytes | None) -> None:
    """Make a binding socket a CURVE server with ``secret_key`` (Z85); nothing if None."""
    if secret_key is None:
        return
    socket.curve_secretkey = secret_key
    socket.curve_publickey = zmq.curve_public(secret_key)
    socket.curve_server = True


def set_curve_client(
    socket: zmq.Socket,
    server_key: bytes | None,
    client_keys: tuple[bytes, bytes] | None = None,
) -> None:
    """Make a connecting socket a CURVE client of ``server_key`` (Z85 public key).

    ``client_keys`` (public, secret) identify the client; by default a fresh
    pair is made (the protocol's version 1.0 does not authenticate clients).
    Nothing if ``server_key`` is None.
    """
    if server_key is None:
        return
    public, secret = client_keys or zmq.curve_keypair()
    socket.curve_serverkey = server_key
    socket.curve_publickey = public
    socket.curve_secretkey = secret


@dataclass
class PublisherStats:
    """Counters of a :class:`Publisher` (frames, bytes of pixels, record-path drops)."""

    frames: int = 0
    pixel_bytes: int = 0
    messages: int = 0
    record_dropped: int = 0


class Publisher:
    """Publish frames on the live path (PUB) and optionally the lossless path (PUSH).

    Parameters
    ----------
    bind : live endpoint, e.g. ``"tcp://127.0.0.1:5555"``, ``"ipc:///tmp/cam"``;
        port ``*`` picks a free port (see :attr:`address`).
    record_bind : lossless endpoint, or ``None`` for no recording path.
    source : name of the source, sent in every header.
    live_hwm, record_hwm : send high-water marks, in messages.
    record_timeout_s : how long a frame waits for a slow recorder before it is
        dropped and counted; after one such timeout, frames do not wait again until
        the recorder accepts a message.
    heartbeat_s : :meth:`tick` sends a heartbeat when nothing was sent for this long, s.
    curve_secret_key : Z85 CURVE secret key; encrypts both paths (clients need the
        matching public key).
    """

    def __init__(
        self,
        bind: str = "tcp://127.0.0.1:5555",
        *,
        record_bind: str | None = None,
        source: str = "camera",
        context: zmq.Context | None = None,
        live_hwm: int = LIVE_SEND_HWM,
        record_hwm: int = RECORD_HWM,
        record_timeout_s: float = 1.0,
        heartbeat_s: float = 1.0,
        curve_secret_key: bytes | None = None,
    ) -> None:
        self.source = source
        #: Names this run of the publisher; a new one after every restart.
        self.stream_id = secrets.token_hex(8)
        self.heartbeat_s = heartbeat_s
        self.stats = PublisherStats()
        self._context = context or zmq.Context.instance()
        self._seq = 0
        self._series: Any = None
        self._series_frames = 0
        self._last_send = 0.0
        self._record_timeout_ms = max(0, round(record_timeout_s * 1000))
        self._recorder_ready = True
        # XPUB sends like PUB and also reports subscriptions (wait_for_subscribers)
        self._live = self._context.socket(zmq.XPUB)
        self.subscriptions = 0
        self._record: zmq.Socket | None = None
        try:
            self._live.linger = 0
            self._live.sndhwm = live_hwm
            self._live.setsockopt(zmq.XPUB_VERBOSE, 1)
            self._live.maxmsgsize = MAX_SUBSCRIPTION_BYTES
            set_curve_server(self._live, curve_secret_key)
            self._live.bind(bind)
            self.address: str = self._live.last_endpoint.decode()
            self.record_address: str | None = None
            if record_bind is not None:
                self._record = self._context.socket(zmq.PUSH)
                self._record.linger = 0
                self._record.sndhwm = record_hwm
                set_curve_server(self._record, curve_secret_key)
                self._record.bind(record_bind)
                self.record_address = str(self._record.last_endpoint.decode())  # type: ignore[union-attr]
        except zmq.ZMQError:
            self.close()
            raise

    @property
    def next_seq(self) -> int:
        """The seq the next frame will carry."""
        return self._seq

    def publish(self, frame: Frame) -> int:
        """Send one frame on both paths; returns its seq.

        A change of ``metadata["series_id"]`` ends the previous series and starts
        a new one (series_start / series_end messages).  Raises
        :class:`~acquisition_bridge.protocol.ProtocolError` for an invalid frame,
        before anything is sent.
        """
        self._read_subscriptions()
        pixels = wire_array(frame.pixels)
        parts = encode_frame(
            pixels,
            seq=self._seq,
            source=self.source,
            metadata=frame.metadata,
            stream_id=self.stream_id,
        )
        series = frame.metadata.get("series_id")
        if series != self._series:
            self._end_series()
            if series is not None:
                fields = {key: frame.metadata[key] for key in MICROSCOPE_KEYS}
                fields["series_id"] = series
                if "series_role" in frame.metadata:
                    fields["series_role"] = frame.metadata["series_role"]
                self._control(SERIES_START, fields)
            self._series, self._series_frames = series, 0
        self._send(parts, frame=True)
        self.stats.frames += 1
        self.stats.pixel_bytes += pixels.nbytes
        self._series_frames += 1
        self._seq += 1
        return self._seq - 1

    def tick(self) -> None:
        """Send a heartbeat if nothing was sent for ``heartbeat_s``; call this when idle."""
        self._read_subscriptions()
        if time.monotonic() - self._last_send >= self.heartbeat_s:
            self.heartbeat()

    def _read_subscriptions(self, timeout_ms: int = 0) -> None:
        # subscription messages queue up on the XPUB socket until read
        while self._live.poll(timeout_ms, zmq.POLLIN):
            message = self._live.recv()
            if message[:1] == b"\x01":
                self.subscriptions += 1
            timeout_ms = 0

    def wait_for_subscribers(self, count: int, timeout_s: float | None = None) -> bool:
        """Send heartbeats until ``count`` live subscriptions arrived; ``False`` on timeout.

        PUB/SUB delivers nothing to a subscriber before its subscription has
        reached the publisher ("slow joiner"), so a short replay or a test
        waits here before its first frame.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.subscriptions < count:
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._read_subscriptions(timeout_ms=50)
            self.tick()
        return True

    def heartbeat(self) -> None:
        """Send a heartbeat on the live path (and, without waiting, on the record path)."""
        parts = encode_control(
            HEARTBEAT, seq=self._seq, source=self.source, stream_id=self.stream_id
        )
        self._live.send_multipart(parts)
        if self._record is not None:
            with contextlib.suppress(zmq.Again):
                self._record.send_multipart(parts, flags=zmq.NOBLOCK)
        self._last_send = time.monotonic()
        self.stats.messages += 1

    def end_of_stream(self, *, repeat: int = 3, interval_s: float = 0.05) -> None:
        """End the open series, then announce that no more frames will come.

        On the live path the announcement is sent ``repeat`` times ``interval_s``
        apart, since it may drop any one message under load; subscribers ignore
        repeats (same source and seq).
        """
        self._end_series()
        self._control(END_OF_STREAM, {"frames": self.stats.frames})
        parts = encode_control(
            END_OF_STREAM,
            seq=self._seq,
            source=self.source,
            fields={"frames": self.stats.frames},
            stream_id=self.stream_id,
        )
        for _ in range(repeat - 1):  # the record path is ordered and lossless: once is enough
            time.sleep(interval_s)
            self._live.send_multipart(parts)

    def _end_series(self) -> None:
        if self._series is not None:
            self._control(SERIES_END, {"series_id": self._series, "frames": self._series_frames})
            self._series = None

    def _control(self, kind: str, fields: dict[str, Any]) -> None:
        parts = encode_control(
            kind, seq=self._seq, source=self.source, fields=fields, stream_id=self.stream_id
        )
        self._send(parts)

    def _send(self, parts: list[Any], *, frame: bool = False) -> None:
        # live first: a slow recorder must not delay live consumers
        self._live.send_multipart(parts, copy=False)
        if self._record is not None and not self._send_record(parts) and frame:
            self.stats.record_dropped += 1
        self._last_send = time.monotonic()
        self.stats.messages += 1

    def _send_record(self, parts: list[Any]) -> bool:
        assert self._record is not None
        timeout = self._record_timeout_ms if self._recorder_ready else 0
        if self._record.poll(timeout, zmq.POLLOUT):
            try:
                self._record.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                return False
            if not self._recorder_ready:
                log.info("recorder on %s is taking frames again", self.record_address)
            self._recorder_ready = True
            return True
        if self._recorder_ready:
            log.warning(
                "recorder on %s did not take a message within %d ms; dropping (counted)",
                self.record_address,
                self._record_timeout_ms,
            )
        self._recorder_ready = False
        return False

    def close(self) -> None:
        """Close both sockets.

        Live messages still queued are discarded (linger 0); the lossless path
        keeps delivering what it has queued (the last frames and end_of_stream)
        to a connected recorder for up to :data:`RECORD_LINGER_S`.
        """
        self._live.close(linger=0)
        if self._record is not None:
            self._record.close(linger=round(RECORD_LINGER_S * 1000))

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class SubscriberStats:
    """Counters of a :class:`Subscriber`; a snapshot, safe to keep.

    received : valid messages (every kind).  frames : valid frames received.
    delivered : frames handed to the consumer.  superseded : frames replaced in
    the one-slot buffer by a newer one before the consumer took them.  missed :
    frames never received, from seq gaps.  rejected : invalid messages per reason
    (``protocol.REASONS``).  restarts : sources whose seq went backwards.
    reconnects : socket re-creations after silence.  silent : no message for
    ``heartbeat_timeout_s``.  ended : an end_of_stream arrived (reset by the next
    message).  pixel_bytes : bytes of valid frames.  handshake_failures : failed
    security handshakes (the publisher wants CURVE, or the keys differ).
    """

    received: int = 0
    frames: int = 0
    delivered: int = 0
    superseded: int = 0
    missed: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    restarts: int = 0
    reconnects: int = 0
    overflow: int = 0
    silent: bool = False
    ended: bool = False
    pixel_bytes: int = 0
    handshake_failures: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def dropped(self) -> int:
        """Frames the consumer did not get: superseded plus missed."""
        return self.superseded + self.missed


class Subscriber:
    """Receive, validate and hand over messages from a :class:`Publisher`.

    Parameters
    ----------
    address : endpoint to connect to (the publisher's ``bind`` or ``record_bind``).
    mode : ``"latest"`` (live path, SUB): the consumer gets the newest frame,
        older unread frames are dropped and counted; control messages
        (series_start, series_end, end_of_stream) are never dropped and keep their
        order with the frames.  ``"all"`` (record path, PULL): every message, in
        order; a full queue of ``queue_size`` stops reading, which slows the
        publisher down (lossless).
    heartbeat_timeout_s : silence after which :attr:`SubscriberStats.silent` is set, s.
    reconnect_after_s : silence after which the socket is closed and connected
        again, s (default 2 x ``heartbeat_timeout_s``).
    limits : size limits for incoming messages.
    curve_server_key : the publisher's Z85 CURVE public key, to connect encrypted.
    curve_client_keys : (public, secret) Z85 key pair of this client (default: a
        fresh pair per connection).

    Sockets are created, used and closed by one receiver thread only.
    """

    def __init__(
        self,
        address: str,
        *,
        mode: Literal["latest", "all"] = "latest",
        heartbeat_timeout_s: float = 3.0,
        reconnect_after_s: float | None = None,
        limits: Limits = DEFAULT_LIMITS,
        queue_size: int = RECORD_HWM,
        check_finite: bool = True,
        curve_server_key: bytes | None = None,
        curve_client_keys: tuple[bytes, bytes] | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if mode not in ("latest", "all"):
            raise ValueError(f"mode must be 'latest' or 'all', got {mode!r}")
        self.address = address
        self.mode = mode
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reconnect_after_s = reconnect_after_s or 2.0 * heartbeat_timeout_s
        self.limits = limits
        self.check_finite = check_finite
        self._queue_size = queue_size
        self._curve_server_key = curve_server_key
        self._curve_client_keys = curve_client_keys
        self._context = context or zmq.Context.instance()
        self._stats = SubscriberStats()
        self._lock = threading.Condition()
        self._queue: collections.deque[Message] = collections.deque()
        self._next_seq: dict[str, int] = {}
        self._stream: dict[str, str | None] = {}
        self._ended: set[tuple[str, int]] = set()
        self._logged: set[str] = set()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="subscriber", daemon=True)
        self._thread.start()

    # ---- consumer side -------------------------------------------------------------
    def recv(self, timeout_s: float | None = None) -> Message | None:
        """Next frame or control message (never heartbeats); ``None`` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while not self._queue:
                if self._error is not None:
                    raise RuntimeError("subscriber receiver thread failed") from self._error
                if self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(0.1 if remaining is None else min(remaining, 0.1))
            message = self._queue.popleft()
            if message.kind == FRAME:
                self._stats.delivered += 1
            self._lock.notify_all()
            return message

    def recv_frame(self, timeout_s: float | None = None) -> Message | None:
        """Next frame, skipping control messages; ``None`` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            message = self.recv(remaining)
            if message is None or message.kind == FRAME:
                return message

    def wait_for_publisher(self, timeout_s: float) -> bool:
        """Block until a valid message (e.g. a heartbeat) arrived; ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._stats.received == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._error is not None:
                    return False
                self._lock.wait(min(remaining, 0.05))
        return True

    @property
    def stats(self) -> SubscriberStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return replace(self._stats, rejected=dict(self._stats.rejected))

    def close(self) -> None:
        """Stop the receiver thread and close its socket (waits at most a few seconds)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- receiver thread -----------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        socket = self._context.socket(zmq.SUB if self.mode == "latest" else zmq.PULL)
        socket.linger = 0
        socket.rcvhwm = LIVE_RECV_HWM if self.mode == "latest" else self._queue_size
        socket.reconnect_ivl = 100
        socket.reconnect_ivl_max = 1000
        if self.mode == "latest":
            # ZMTP heartbeats let libzmq notice a dead TCP peer and reconnect.  Not on the
            # lossless path: there a full receive queue (back-pressure) is normal, and a
            # heartbeat timeout while input is stopped aborts the process in libzmq
            # (assert !_io_error, zeromq/libzmq#3937, #4767); silence is caught below.
            socket.heartbeat_ivl = 1000
            socket.heartbeat_timeout = 3000
        socket.maxmsgsize = max(self.limits.max_pixel_bytes, self.limits.max_header_bytes)
        set_curve_client(socket, self._curve_server_key, self._curve_client_keys)
        if self.mode == "latest":
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._monitor = socket.get_monitor_socket(_HANDSHAKE_FAILED)
        socket.connect(self.address)
        return socket

    def _check_handshake(self) -> None:
        """Count failed security handshakes and say once what they probably mean."""
        while self._monitor.poll(0):
            event = zmq.utils.monitor.recv_monitor_message(self._monitor)
            if not event["event"] & _HANDSHAKE_FAILED:
                continue
            with self._lock:
                self._stats.handshake_failures += 1
            if "handshake" not in self._logged:
                self._logged.add("handshake")
                log.warning(
                    "security handshake with %s failed: %s",
                    self.address,
                    "the publisher is encrypted (CURVE): give its public key (--curve-server-key)"
                    if self._curve_server_key is None
                    else "the publisher is not encrypted or has another key",
                )

    def _close_socket(self, socket: zmq.Socket) -> None:
        with contextlib.suppress(zmq.ZMQError):
            socket.disable_monitor()
        self._monitor.close(linger=0)
        socket.close(linger=0)

    def _run(self) -> None:
        socket = None
        try:
            socket = self._socket()
            last_message = last_connect = time.monotonic()
            while not self._stop.is_set():
                if socket.poll(50, zmq.POLLIN):
                    parts = self._recv_parts(socket)
                    if self._handle(parts):
                        last_message = time.monotonic()
                    continue
                self._check_handshake()
                now = time.monotonic()
                quiet = now - last_message
                if quiet > self.heartbeat_timeout_s and not self._stats.silent:
                    with self._lock:
                        self._stats.silent = True
                    log.warning("no message from %s for %.1f s", self.address, quiet)
                if min(quiet, now - last_connect) > self.reconnect_after_s:
                    self._close_socket(socket)
                    socket = self._socket()
                    last_connect = now
                    with self._lock:
                        self._stats.reconnects += 1
        except BaseException as exc:  # surfaced to the consumer by recv()
            self._error = exc
            with self._lock:
                self._lock.notify_all()
        finally:
            if socket is not None:
                self._close_socket(socket)

    @staticmethod
    def _recv_parts(socket: zmq.Socket) -> list[zmq.Frame]:
        parts = [socket.recv(copy=False)]
        while parts[-1].more:
            part = socket.recv(copy=False)
            if len(parts) < 3:  # enough to reject; never accumulate a hostile part count
                parts.append(part)
            elif not part.more:
                break
        return parts

    def _reject(self, error: ProtocolError) -> None:
        header = error.header
        with self._lock:
            self._stats.rejected[error.reason] += 1
            # a rejected frame that names its place in the stream is not a lost one
            if header is not None and header.get("kind") == FRAME:
                seq, source = header.get("seq"), header.get("source")
                if isinstance(source, str) and type(seq) is int and 0 <= seq <= MAX_UINT64:
                    self._account(source, seq, FRAME, header.get("stream_id"))
        if error.reason not in self._logged:
            self._logged.add(error.reason)
            log.warning(
                "dropping invalid message from %s (%s); further ones counted", self.address, error
            )

    def _handle(self, parts: list[zmq.Frame]) -> bool:
        """Validate one message and queue it; True if it was valid."""
        try:
            message = decode(parts, self.limits, check_finite=self.check_finite)
        except ProtocolError as error:
            self._reject(error)
            return False
        kind, seq, source = message.kind, message.seq, message.source
        if kind == END_OF_STREAM and (source, seq) in self._ended:
            return True  # a repeat of an end_of_stream already handed over
        with self._lock:
            stats = self._stats
            stats.received += 1
            stats.silent = False
            stats.ended = kind == END_OF_STREAM
            self._account(source, seq, kind, message.header.get("stream_id"))
            if kind == FRAME:
                stats.frames += 1
                stats.pixel_bytes += message.pixels.nbytes  # type: ignore[union-attr]
            if kind == HEARTBEAT:
                self._lock.notify_all()
                return True
            self._enqueue(message)
            self._lock.notify_all()
        return True

    def _account(self, source: str, seq: int, kind: str, stream: Any) -> None:
        """Count lost frames and restarts from ``seq`` (called with the lock held).

        A new ``stream_id``, a ``seq`` that goes backwards, or one that jumps
        ahead by more than ``limits.max_seq_gap`` is a restart of the source.
        """
        expected = self._next_seq.get(source)
        # a new stream_id is a restarted source: its seq starts again, nothing was lost
        restarted = expected is not None and (
            (isinstance(stream, str) and self._stream.get(source) not in (None, stream))
            or seq < expected
            or seq - expected > self.limits.max_seq_gap
        )
        self._stream[source] = stream if isinstance(stream, str) else None
        if restarted:
            self._stats.restarts += 1
            log.info("source %r restarted (seq %d, expected %d)", source, seq, expected)
        elif expected is not None and seq > expected:
            self._stats.missed += seq - expected
        if kind == END_OF_STREAM:
            self._next_seq.pop(source, None)
            self._ended = {(source, seq)}
        else:
            self._next_seq[source] = seq + 1 if kind == FRAME else seq

    def _enqueue(self, message: Message) -> None:
        """Called with the lock held."""
        queue = self._queue
        if self.mode == "latest":
            if message.kind == FRAME and queue and queue[-1].kind == FRAME:
                queue[-1] = message
                self._stats.superseded += 1
                return
            queue.append(message)
            if len(queue) > 4 * self._queue_size:  # only control messages pile up here
                queue.popleft()
                self._stats.overflow += 1
            return
        while len(queue) >= self._queue_size and not self._stop.is_set():
            self._lock.wait(0.05)
        queue.append(message)


__all__ = [
    "LIVE_RECV_HWM",
    "LIVE_SEND_HWM",
    "RECORD_HWM",
    "Publisher",
    "PublisherStats",
    "Subscriber",
    "SubscriberStats",
    "set_curve_client",
    "set_curve_server",
]
