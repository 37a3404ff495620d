"""The lorentz-live wire protocol (docs/protocol.md), as pure functions without sockets.

Every message is a list of parts: ``[header]`` or, for frames, ``[header, pixels]``.
The header is a msgpack map; the pixels are the raw C-contiguous little-endian
buffer of a [h, w] image.  :func:`encode` builds the parts, :func:`decode` checks
every part and returns a :class:`Message` or raises :class:`ProtocolError`
whose ``reason`` names the kind of problem (for counting).

Example
-------
>>> import numpy as np
>>> parts = encode_frame(np.zeros((3, 5), "<u2"), seq=0, source="cam",
...                      metadata=dict.fromkeys(MICROSCOPE_KEYS, 1.0))
>>> decode(parts).pixels.shape
(3, 5)
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import msgpack
import numpy as np

from acquisition_bridge.keys import MICROSCOPE_KEYS

#: Protocol version "MAJOR.MINOR".  A receiver accepts any minor version of its
#: major (minor versions only add optional keys); another major is rejected.
PROTOCOL_VERSION = "1.1"
PROTOCOL_MAJOR = 1

FRAME = "frame"
HEARTBEAT = "heartbeat"
SERIES_START = "series_start"
SERIES_END = "series_end"
END_OF_STREAM = "end_of_stream"
KINDS: tuple[str, ...] = (FRAME, HEARTBEAT, SERIES_START, SERIES_END, END_OF_STREAM)

#: Pixel types on the wire (numpy type strings, little-endian).
DTYPES: tuple[str, ...] = ("<u1", "<u2", "<u4", "<f4")
SERIES_ROLES: tuple[str, ...] = ("movie", "tilt_x", "tilt_y", "focal")

#: Optional numeric header keys and their units (in the names).
OPTIONAL_NUMBERS: tuple[str, ...] = (
    "tilt_x_deg",
    "tilt_y_deg",
    "temperature_k",
    "field_mt",
    "current_ma",
    "exposure_s",
)
#: Largest ``seq`` and ``timestamp_ns``: what msgpack's uint64 holds.
MAX_UINT64 = (1 << 64) - 1

#: Keys the protocol itself sets; metadata handed to :func:`encode_frame` may not.
ENVELOPE_KEYS: tuple[str, ...] = (
    "protocol",
    "kind",
    "seq",
    "timestamp_ns",
    "source",
    "stream_id",
)
#: Reasons a message is rejected (the keys of the subscriber's error counters).
REASONS: tuple[str, ...] = (
    "parts",  # wrong number of parts for the kind
    "oversize",  # header or pixel part above the limits
    "malformed",  # header is not a msgpack map with string keys
    "version",  # missing or incompatible protocol version
    "kind",  # unknown message kind
    "field",  # a required key missing, or a key of the wrong type or range
    "dtype",  # pixel type not in DTYPES
    "shape",  # shape not [h, w] with 1 <= h, w <= max_side
    "size",  # pixel part length differs from h * w * itemsize
    "nonfinite",  # NaN or Inf pixels
)


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        #: the decoded header map when the header itself was readable, else None
        #: (a receiver keeps its seq accounting for a rejected frame)
        self.header: dict[str, Any] | None = None


@dataclass(frozen=True)
class Limits:
    """Size limits a receiver enforces before allocating anything.

    max_header_bytes : largest header part, bytes (msgpack strings, arrays and
        maps inside it are bounded by the same number).
    max_side : largest image height or width, px.
    max_pixel_bytes : largest pixel part, bytes (default 1 GiB = 16384² float32).
    max_seq_gap : largest jump of ``seq`` counted as lost frames; a larger jump,
        forwards or backwards, is a restart of the source (a camera counter that
        wraps or is reset), not 2**64 losses.
    """

    max_header_bytes: int = 64 * 1024
    max_side: int = 16384
    max_pixel_bytes: int = 1 << 30
    max_seq_gap: int = 1_000_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, eq=False)
class Message:
    """A decoded message: its header (every key, unknown ones included) and pixels.

    ``pixels`` is an [h, w] view of the received buffer for frames (no copy;
    writeable when that buffer is, as a received zmq message is), ``None`` for
    the other kinds.
    """

    header: dict[str, Any]
    pixels: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def seq(self) -> int:
        return self.header["seq"]

    @property
    def source(self) -> str:
        return self.header["source"]

    @property
    def timestamp_ns(self) -> int:
        """Acquisition (frames) or sending time, ns since the Unix epoch, UTC."""
        return self.header["timestamp_ns"]

    def microscope(self) -> dict[str, float | None]:
        """The microscope keys of the header (see ``acquisition_bridge.keys``)."""
        return {key: self.header[key] for key in MICROSCOPE_KEYS if key in self.header}


@dataclass(eq=False)
class Frame:
    """One image as a source produces it, before the publisher numbers it.

    pixels : [h, w] array of a wire dtype (:func:`wire_array` converts others).
    metadata : header keys: every microscope key, optional keys
        (``temperature_k``, ``series_id``, ...), ``timestamp_ns`` of acquisition
        if known (else the publisher stamps the sending time), anything else.
    """

    pixels: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


def now_ns() -> int:
    """Current UTC time, ns since the Unix epoch."""
    return time.time_ns()


def wire_dtype_name(dtype: np.dtype) -> str | None:
    """The protocol's name of ``dtype`` ("<u2", and "<u1" for bytes), ``None`` if big-endian."""
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big"):
        return None
    return f"<{dtype.kind}{dtype.itemsize}"


def wire_array(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous little-endian [h, w] array of a wire dtype.

    Wire dtypes pass through without a copy when already contiguous; other
    integer types become the unsigned type of the same size when no value is
    negative and float32 otherwise; other float types become float32; bool becomes
    uint8.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ProtocolError("shape", f"an image must be 2-D [h, w], got shape {array.shape}")
    kind, size = array.dtype.kind, array.dtype.itemsize
    target: np.dtype
    if kind == "b":
        target = np.dtype("<u1")
    elif kind == "u" and size in (1, 2, 4):
        target = np.dtype(f"<u{size}")
    elif kind in "iu":
        negative = kind == "i" and array.size > 0 and array.min() < 0
        target = np.dtype("<f4") if negative or size > 4 else np.dtype(f"<u{size}")
    elif kind == "f":
        target = np.dtype("<f4")
    else:
        raise ProtocolError("dtype", f"cannot send pixels of type {array.dtype}")
    return np.ascontiguousarray(array, dtype=target)


def pack_header(header: Mapping[str, Any]) -> bytes:
    """msgpack bytes of a header map; :class:`ProtocolError` if a value cannot be packed."""
    try:
        return msgpack.packb(dict(header), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("field", f"header cannot be packed: {exc}") from None


def encode_frame(
    pixels: np.ndarray,
    *,
    seq: int,
    source: str,
    metadata: Mapping[str, Any],
    timestamp_ns: int | None = None,
    stream_id: str | None = None,
) -> list[bytes | memoryview]:
    """Parts ``[header, pixels]`` of a frame message; the pixel part is not copied.

    ``pixels`` must already have a wire dtype and be C-contiguous (see
    :func:`wire_array`); the caller must not modify it until it has been sent.
    ``metadata`` must hold every microscope key; ``timestamp_ns`` defaults to
    ``metadata["timestamp_ns"]`` and then to now.  ``stream_id`` (optional)
    names this run of the source, so receivers tell a restart from a gap.
    Raises :class:`ProtocolError` for a header a receiver would reject.
    """
    if not isinstance(pixels, np.ndarray) or wire_dtype_name(pixels.dtype) not in DTYPES:
        dtype = getattr(pixels, "dtype", type(pixels).__name__)
        raise ProtocolError("dtype", f"pixels must be a numpy array of {DTYPES}, got {dtype}")
    if pixels.ndim != 2 or not pixels.flags.c_contiguous:
        raise ProtocolError("shape", "pixels must be a C-contiguous 2-D array")
    reserved = ("protocol", "kind", "seq", "source", "stream_id", "shape", "dtype")
    clash = [key for key in reserved if key in metadata]
    if clash:
        raise ProtocolError("field", f"metadata may not set protocol key {clash[0]!r}")
    header = dict(metadata)
    stamp = timestamp_ns if timestamp_ns is not None else header.get("timestamp_ns", now_ns())
    header.update(
        protocol=PROTOCOL_VERSION,
        kind=FRAME,
        seq=seq,
        timestamp_ns=stamp,
        source=source,
        shape=[int(pixels.shape[0]), int(pixels.shape[1])],
        dtype=wire_dtype_name(pixels.dtype),
    )
    if stream_id is not None:
        header["stream_id"] = stream_id
    validate_header(header)
    return [pack_header(header), memoryview(pixels.data).cast("B")]


def encode_control(
    kind: str,
    *,
    seq: int,
    source: str,
    fields: Mapping[str, Any] | None = None,
    stream_id: str | None = None,
) -> list[bytes]:
    """Parts ``[header]`` of a heartbeat, series_start, series_end or end_of_stream.

    ``seq`` is the seq the *next* frame will carry, so a receiver can tell
    whether frames before this message were lost.
    """
    if kind not in KINDS or kind == FRAME:
        raise ProtocolError("kind", f"not a control message kind: {kind!r}")
    header = dict(fields or {})
    header.update(
        protocol=PROTOCOL_VERSION, kind=kind, seq=seq, timestamp_ns=now_ns(), source=source
    )
    if stream_id is not None:
        header["stream_id"] = stream_id
    validate_header(header)
    return [pack_header(header)]


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_header(header: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`ProtocolError` unless ``header`` is a valid header; unknown keys pass."""
    version = header.get("protocol")
    if not isinstance(version, str):
        raise ProtocolError("version", f"protocol must be a version string, got {version!r}")
    major = version.split(".", 1)[0]
    if major != str(PROTOCOL_MAJOR):
        raise ProtocolError(
            "version", f"protocol {version!r} is not compatible with {PROTOCOL_VERSION}"
        )
    kind = header.get("kind")
    if kind not in KINDS:
        raise ProtocolError("kind", f"unknown message kind {kind!r}")
    for key in ("seq", "timestamp_ns"):
        value = header.get(key)
        if not _is_int(value) or not 0 <= value <= MAX_UINT64:
            raise ProtocolError("field", f"{key} must be an integer 0 .. 2**64-1, got {value!r}")
    if not isinstance(header.get("source"), str):
        raise ProtocolError("field", f"source must be a string, got {header.get('source')!r}")
    if "stream_id" in header and not isinstance(header["stream_id"], str):
        raise ProtocolError("field", f"stream_id must be a string, got {header['stream_id']!r}")
    _validate_optional(header)
    if kind != FRAME:
        return
    for key in MICROSCOPE_KEYS:
        if key not in header:
            raise ProtocolError("field", f"frame header lacks microscope key {key!r}")
        value = header[key]
        if not (_is_number(value) or (value is None and key == "aperture_per_nm")):
            raise ProtocolError("field", f"{key} must be a finite number, got {value!r}")
    dtype = header.get("dtype")
    if dtype not in DTYPES:
        raise ProtocolError("dtype", f"dtype must be one of {DTYPES}, got {dtype!r}")
    shape = header.get("shape")
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 2
        or not all(_is_int(n) and 1 <= n <= limits.max_side for n in shape)
    ):
        raise ProtocolError(
            "shape", f"shape must be [h, w] with 1 <= h, w <= {limits.max_side}, got {shape!r}"
        )


def _validate_optional(header: Mapping[str, Any]) -> None:
    for key in OPTIONAL_NUMBERS:
        if key in header and not _is_number(header[key]):
            raise ProtocolError("field", f"{key} must be a finite number, got {header[key]!r}")
    if "series_id" in header and not isinstance(header["series_id"], (str, int)):
        raise ProtocolError("field", "series_id must be a string or integer")
    role = header.get("series_role")
    if role is not None and role not in SERIES_ROLES:
        raise ProtocolError("field", f"series_role must be one of {SERIES_ROLES}, got {role!r}")
    if "extra" in header and not isinstance(header["extra"], dict):
        raise ProtocolError("field", "extra must be a map")


def unpack_header(part: Any, limits: Limits) -> dict[str, Any]:
    """The header map of a message part, size-limited before msgpack allocates anything."""
    buffer = memoryview(getattr(part, "buffer", part))
    if buffer.nbytes > limits.max_header_bytes:
        raise ProtocolError(
            "oversize", f"header of {buffer.nbytes} bytes exceeds {limits.max_header_bytes}"
        )
    bound = limits.max_header_bytes
    try:
        header = msgpack.unpackb(
            buffer,
            raw=False,
            strict_map_key=True,
            max_str_len=bound,
            max_bin_len=bound,
            max_array_len=bound,
            max_map_len=bound,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several types for hostile bytes
        raise ProtocolError(
            "malformed", f"header is not valid msgpack ({type(exc).__name__})"
        ) from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed", f"header must be a map, got {type(header).__name__}")
    return header


def decode(
    parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS, *, check_finite: bool = True
) -> Message:
    """Check and decode the parts of one message (bytes, memoryviews or zmq Frames).

    Frames get an [h, w] view of the pixel part (no copy).  Float
    pixels are checked for NaN/Inf unless ``check_finite`` is false.
    Raises :class:`ProtocolError`; never anything else for any input.
    """
    if not 1 <= len(parts) <= 2:
        raise ProtocolError("parts", f"a message has 1 or 2 parts, got {len(parts)}")
    header = unpack_header(parts[0], limits)
    try:
        return _decode_checked(header, parts, limits, check_finite)
    except ProtocolError as error:
        error.header = header
        raise


def _decode_checked(
    header: dict[str, Any], parts: Sequence[Any], limits: Limits, check_finite: bool
) -> Message:
    validate_header(header, limits)
    expected_parts = 2 if header["kind"] == FRAME else 1
    if len(parts) != expected_parts:
        raise ProtocolError(
            "parts", f"a {header['kind']} message has {expected_parts} part(s), got {len(parts)}"
        )
    if expected_parts == 1:
        return Message(header)
    height, width = header["shape"]
    dtype = np.dtype(header["dtype"])
    expected = height * width * dtype.itemsize
    if expected > limits.max_pixel_bytes:
        raise ProtocolError("oversize", f"{expected} pixel bytes exceed {limits.max_pixel_bytes}")
    buffer = memoryview(getattr(parts[1], "buffer", parts[1]))
    if buffer.nbytes != expected:
        raise ProtocolError(
            "size", f"pixel part has {buffer.nbytes} bytes, shape and dtype need {expected}"
        )
    pixels = np.frombuffer(buffer, dtype=dtype).reshape(height, width)
    if check_finite and dtype.kind == "f" and not all_finite(pixels):
        raise ProtocolError("nonfinite", "NaN or Inf pixels")
    return Message(header, pixels)


def all_finite(pixels: np.ndarray) -> bool:
    """True if no pixel is NaN or Inf (about 6 ms for 4096² float32 on one core)."""
    return bool(np.isfinite(pixels).all())
