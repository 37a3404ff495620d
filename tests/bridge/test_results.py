"""Results stream encoding: round trip, units, and hostile messages rejected by reason."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from acquisition_bridge.protocol import Limits, ProtocolError
from acquisition_bridge.results import decode_result, encode_result


def parts(**arrays) -> list:
    return encode_result({"iterations": 7}, arrays, seq=3, timestamp_ns=11, source="engine")


def test_round_trip_keeps_values_shapes_units_and_header() -> None:
    phase = np.arange(12, dtype=np.float64).reshape(3, 4)
    rgb = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
    result = decode_result(parts(phi_m=(phase, "rad"), rgb=(rgb, "sRGB"), loss=(np.ones(5), "")))
    np.testing.assert_array_equal(result.arrays["phi_m"], phase.astype(np.float32))
    np.testing.assert_array_equal(result.arrays["rgb"], rgb)
    assert result.arrays["loss"].shape == (5,)
    assert result.unit("phi_m") == "rad"
    assert (result.seq, result.header["iterations"], result.header["kind"]) == (3, 7, "result")


def _tamper(message: list, **changes) -> list:
    header = msgpack.unpackb(bytes(message[0]))
    header.update(changes)
    return [msgpack.packb(header), *message[1:]]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: m[:1], "parts"),
        (lambda m: [m[0], bytes(m[1])[:-4]], "size"),
        (lambda m: _tamper(m, protocol="2.0"), "version"),
        (lambda m: _tamper(m, kind="frame"), "kind"),
        (lambda m: _tamper(m, seq=-1), "field"),
        (lambda m: [b"\xc1garbage", *m[1:]], "malformed"),
    ],
)
def test_hostile_messages_are_rejected_with_a_reason(mutate, reason: str) -> None:
    message = parts(phi_m=(np.zeros((4, 4)), "rad"))
    with pytest.raises(ProtocolError) as error:
        decode_result(mutate(message))
    assert error.value.reason == reason


def test_array_specs_are_checked_before_allocation() -> None:
    message = parts(phi_m=(np.zeros((4, 4)), "rad"))
    bad_dtype = _tamper(
        message, arrays=[{"name": "phi_m", "shape": [4, 4], "dtype": "<f8", "unit": ""}]
    )
    with pytest.raises(ProtocolError, match="dtype"):
        decode_result(bad_dtype)
    huge = _tamper(
        message, arrays=[{"name": "phi_m", "shape": [10**6, 10**6], "dtype": "<f4", "unit": ""}]
    )
    with pytest.raises(ProtocolError, match="shape"):
        decode_result(huge, Limits(max_side=16384))
