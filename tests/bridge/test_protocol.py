"""The wire format as pure functions: round trips and hostile input, without sockets."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import (
    DTYPES,
    KINDS,
    PROTOCOL_VERSION,
    REASONS,
    Limits,
    ProtocolError,
    decode,
    encode_control,
    encode_frame,
    wire_array,
)
from tests.bridge.conftest import ramp

SHAPES = [(37, 31), (1, 1), (1, 513), (300, 2)]


def _frame_parts(meta: dict[str, Any], pixels: np.ndarray | None = None, **header: Any) -> list:
    pixels = ramp((3, 4), "<u2") if pixels is None else pixels
    parts = encode_frame(pixels, seq=7, source="cam", metadata=meta, timestamp_ns=123)
    if header:
        fields = msgpack.unpackb(parts[0])
        fields.update(header)
        parts[0] = msgpack.packb({k: v for k, v in fields.items() if v is not _DELETE})
    return [bytes(part) for part in parts]


_DELETE = object()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_frame_round_trips_every_dtype_and_odd_shape(meta, dtype, shape) -> None:
    pixels = ramp(shape, dtype)
    if dtype == "<f4":
        pixels = pixels * np.float32(0.37) - 5  # negative and fractional values
    metadata = dict(meta, temperature_k=81.5, series_id="s1", extra={"note": "ö"}, vendor_gain=2)
    parts = encode_frame(pixels, seq=41, source="K3", metadata=metadata, timestamp_ns=99)
    message = decode([bytes(part) for part in parts])
    assert message.kind == "frame"
    assert message.pixels.dtype == np.dtype(dtype)
    assert message.pixels.shape == shape
    np.testing.assert_array_equal(message.pixels, pixels)
    assert (message.seq, message.source, message.timestamp_ns) == (41, "K3", 99)
    assert message.microscope() == meta
    assert message.header["protocol"] == PROTOCOL_VERSION
    # optional and unknown keys survive unchanged
    assert message.header["temperature_k"] == 81.5
    assert message.header["extra"] == {"note": "ö"}
    assert message.header["vendor_gain"] == 2


def test_pixel_part_is_not_copied(meta) -> None:
    pixels = ramp((16, 8), "<u2")
    parts = encode_frame(pixels, seq=0, source="cam", metadata=meta)
    assert np.shares_memory(np.frombuffer(parts[1], "<u2"), pixels)
    buffer = bytearray(parts[1])
    message = decode([parts[0], buffer])
    buffer[0] = 255
    assert message.pixels[0, 0] == 255  # a view of the received buffer


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "frame"])
def test_control_messages_round_trip(kind) -> None:
    parts = encode_control(kind, seq=12, source="cam", fields={"series_id": "a", "frames": 3})
    assert len(parts) == 1
    message = decode(parts)
    assert (message.kind, message.seq, message.pixels) == (kind, 12, None)
    assert message.header["frames"] == 3


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        (np.array([[-1, 2]], dtype=np.int16), "<f4"),
        (np.array([[1, 2]], dtype=np.int16), "<u2"),
        (np.array([[1.5, 2]], dtype=np.float64), "<f4"),
        (np.array([[True, False]]), "<u1"),
        (np.array([[1, 2]], dtype=">u2"), "<u2"),
        (np.array([[1, 2]], dtype=np.int64), "<f4"),
    ],
)
def test_wire_array_converts_to_a_wire_dtype(pixels, expected) -> None:
    converted = wire_array(pixels)
    assert converted.dtype == np.dtype(expected)
    np.testing.assert_array_equal(converted.astype(np.float64), pixels.astype(np.float64))


def test_wire_array_keeps_wire_dtypes_without_copy() -> None:
    pixels = ramp((4, 4), "<u2")
    assert wire_array(pixels) is pixels
    assert wire_array(pixels.T).flags.c_contiguous


def test_encode_refuses_what_a_receiver_would_reject(meta) -> None:
    pixels = ramp((2, 2), "<u2")
    with pytest.raises(ProtocolError, match="defocus_nm") as info:
        encode_frame(pixels, seq=0, source="cam", metadata={**meta, "defocus_nm": "1 mm"})
    assert info.value.reason == "field"
    missing = {k: v for k, v in meta.items() if k != "kv"}
    with pytest.raises(ProtocolError, match="'kv'"):
        encode_frame(pixels, seq=0, source="cam", metadata=missing)
    with pytest.raises(ProtocolError) as info:
        encode_frame(pixels.astype("<i8"), seq=0, source="cam", metadata=meta)
    assert info.value.reason == "dtype"
    with pytest.raises(ProtocolError, match="protocol key"):
        encode_frame(pixels, seq=0, source="cam", metadata={**meta, "seq": 3})
    with pytest.raises(ProtocolError, match="series_role"):
        encode_frame(pixels, seq=0, source="cam", metadata={**meta, "series_role": "zoom"})


def _hostile_cases(meta: dict[str, Any]) -> list[tuple[str, list, str]]:
    good = _frame_parts(meta)
    nan = ramp((3, 4), "<f4")
    nan[1, 2] = np.nan
    inf = ramp((3, 4), "<f4")
    inf[0, 0] = -np.inf
    big_header = msgpack.packb({"protocol": "1.0", "pad": "x" * (64 * 1024)})
    return [
        ("no parts", [], "parts"),
        ("three parts", [*good, b""], "parts"),
        ("frame without pixels", good[:1], "parts"),
        ("truncated pixels", [good[0], good[1][:-1]], "size"),
        ("extra pixel bytes", [good[0], good[1] + b"\0\0"], "size"),
        ("truncated header", [good[0][:-5], good[1]], "malformed"),
        ("garbage header", [b"\xc1\xff\x00garbage", good[1]], "malformed"),
        ("header not a map", [msgpack.packb([1, 2, 3]), good[1]], "malformed"),
        ("integer map keys", [msgpack.packb({1: 2}), good[1]], "malformed"),
        ("oversize header", [big_header, good[1]], "oversize"),
        ("wrong version", _frame_parts(meta, protocol="2.0"), "version"),
        ("no version", _frame_parts(meta, protocol=_DELETE), "version"),
        ("numeric version", _frame_parts(meta, protocol=1.0), "version"),
        ("unknown kind", _frame_parts(meta, kind="snapshot"), "kind"),
        ("negative seq", _frame_parts(meta, seq=-1), "field"),
        ("boolean seq", _frame_parts(meta, seq=True), "field"),
        ("missing microscope key", _frame_parts(meta, kv=_DELETE), "field"),
        ("string defocus", _frame_parts(meta, defocus_nm="-1e6"), "field"),
        ("NaN defocus", _frame_parts(meta, defocus_nm=float("nan")), "field"),
        ("non-numeric temperature", _frame_parts(meta, temperature_k="cold"), "field"),
        ("extra not a map", _frame_parts(meta, extra=[1]), "field"),
        ("unknown dtype", _frame_parts(meta, dtype="<f8"), "dtype"),
        ("big-endian dtype", _frame_parts(meta, dtype=">u2"), "dtype"),
        ("dtype does not match size", _frame_parts(meta, dtype="<u4"), "size"),
        ("shape does not match size", _frame_parts(meta, shape=[4, 4]), "size"),
        ("3-D shape", _frame_parts(meta, shape=[1, 3, 4]), "shape"),
        ("zero shape", _frame_parts(meta, shape=[0, 4]), "shape"),
        ("huge shape", _frame_parts(meta, shape=[10**9, 10**9]), "shape"),
        ("float shape", _frame_parts(meta, shape=[3.0, 4.0]), "shape"),
        ("NaN pixels", _frame_parts(meta, nan), "nonfinite"),
        ("Inf pixels", _frame_parts(meta, inf), "nonfinite"),
        (
            "heartbeat with pixels",
            [encode_control("heartbeat", seq=0, source="c")[0], b"x"],
            "parts",
        ),
    ]


def test_hostile_messages_raise_protocol_errors_naming_the_reason(meta) -> None:
    cases = _hostile_cases(meta)
    seen = set()
    for name, parts, reason in cases:
        with pytest.raises(ProtocolError) as info:
            decode(parts)
        assert info.value.reason == reason, name
        seen.add(reason)
    assert seen == set(REASONS)  # every reason is exercised


def test_pixel_limit_is_checked_before_the_buffer(meta) -> None:
    parts = _frame_parts(meta, ramp((64, 64), "<u2"))
    with pytest.raises(ProtocolError) as info:
        decode(parts, Limits(max_pixel_bytes=1024))
    assert info.value.reason == "oversize"
    with pytest.raises(ProtocolError) as info:
        decode(parts, Limits(max_side=32))
    assert info.value.reason == "shape"
    assert decode(parts).pixels.shape == (64, 64)


def test_nonfinite_check_can_be_switched_off(meta) -> None:
    pixels = ramp((3, 4), "<f4")
    pixels[0, 0] = np.nan
    message = decode(_frame_parts(meta, pixels), check_finite=False)
    assert np.isnan(message.pixels[0, 0])


def test_newer_minor_version_and_unknown_keys_are_accepted(meta) -> None:
    message = decode(_frame_parts(meta, protocol="1.7", detector={"mode": "counting"}))
    assert message.header["detector"] == {"mode": "counting"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.binary(max_size=200), min_size=0, max_size=4))
def test_random_bytes_only_ever_raise_protocol_error(parts) -> None:
    try:
        decode(parts)
    except ProtocolError as error:
        assert error.reason in REASONS


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(
        [
            "protocol",
            "kind",
            "seq",
            "timestamp_ns",
            "source",
            "shape",
            "dtype",
            *MICROSCOPE_KEYS,
            "series_role",
            "extra",
            "temperature_k",
        ]
    ),
    value=_values,
    data=st.binary(max_size=64),
)
def test_mutated_headers_only_ever_raise_protocol_error(key, value, data) -> None:
    meta = dict.fromkeys(MICROSCOPE_KEYS, 1.0)
    header = msgpack.unpackb(_frame_parts(meta)[0])
    header[key] = value
    try:
        message = decode([msgpack.packb(header), data])
    except ProtocolError as error:
        assert error.reason in REASONS
    else:  # accepted only if the pixels fit the (possibly mutated) header exactly
        assert message.pixels.nbytes == len(data)


_json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in _RESERVED),
        _json_like,
        max_size=5,
    ),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    dtype=st.sampled_from(DTYPES),
)
def test_any_unknown_metadata_round_trips_unchanged(extra, height, width, dtype) -> None:
    meta = dict.fromkeys(MICROSCOPE_KEYS, 2.5)
    pixels = ramp((height, width), dtype)
    parts = encode_frame(pixels, seq=3, source="s", metadata={**meta, **extra})
    message = decode([bytes(part) for part in parts])
    for key, value in extra.items():
        assert _same(message.header[key], value), key
    np.testing.assert_array_equal(message.pixels, pixels)


_RESERVED = {
    "protocol", "kind", "seq", "timestamp_ns", "source", "shape", "dtype", "extra",
    "series_id", "series_role", "tilt_x_deg", "tilt_y_deg", "temperature_k", "field_mt",
    "current_ma", "exposure_s", *MICROSCOPE_KEYS,
}  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and tuples as lists (msgpack arrays)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)
