"""A hypothesis-fuzzed stream of >= 10k hostile messages over a real socket.

The subscriber must count and drop every invalid message, stay alive, and still
deliver the good frame sent after each batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import ProtocolError, decode, encode_frame
from acquisition_bridge.transport import Subscriber

META = dict.fromkeys(MICROSCOPE_KEYS, 1.0)
GOOD = [bytes(p) for p in encode_frame(np.ones((4, 6), "<f4"), seq=0, source="f", metadata=META)]
GOOD_HEADER = msgpack.unpackb(GOOD[0])
BATCH = 20  # larger batches overrun hypothesis's per-example data budget
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "520"))  # 10,400 messages

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def _mutated(key: str, value: Any, pixels: bytes) -> list[bytes]:
    header = dict(GOOD_HEADER)
    header[key] = value
    return [msgpack.packb(header), pixels]


def _with_pixels(values: list[float], index: int, bad: float) -> list[bytes]:
    pixels = np.array(values, "<f4")
    pixels[index] = bad  # at least one NaN or Inf among any values
    return [GOOD[0], pixels.tobytes()]


hostile = st.one_of(
    st.lists(st.binary(max_size=80), min_size=1, max_size=5),  # garbage, any part count
    st.builds(  # one header key replaced by anything
        _mutated,
        st.sampled_from([*GOOD_HEADER, "extra", "series_role"]),
        _values,
        st.binary(max_size=95),  # never the 96 bytes the good header needs
    ),
    st.integers(0, len(GOOD[0]) - 1).map(lambda n: [GOOD[0][:n], GOOD[1]]),  # truncated header
    st.integers(0, len(GOOD[1]) - 1).map(lambda n: [GOOD[0], GOOD[1][:n]]),  # truncated pixels
    st.builds(  # float pixels with NaN/Inf among them
        _with_pixels,
        st.lists(st.floats(width=32), min_size=24, max_size=24),
        st.integers(0, 23),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
    st.binary(min_size=1, max_size=40).map(lambda tail: [GOOD[0] + tail, GOOD[1]]),
)


@pytest.fixture(scope="module")
def fuzz_link() -> Iterator[tuple[zmq.Socket, Subscriber]]:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 0
    port = push.bind_to_random_port("tcp://127.0.0.1")
    subscriber = Subscriber(f"tcp://127.0.0.1:{port}", mode="all", context=context)
    yield push, subscriber
    subscriber.close()
    push.close(linger=0)
    context.destroy(linger=0)


def _locally_valid(parts: list[bytes]) -> bool:
    try:
        decode(parts)
    except ProtocolError:
        return False
    return True


@pytest.mark.timeout(120)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(hostile, min_size=BATCH, max_size=BATCH))
def test_ten_thousand_hostile_messages_never_stop_good_frames(fuzz_link, batch) -> None:
    push, subscriber = fuzz_link
    before = subscriber.stats
    for parts in batch:
        push.send_multipart(parts)
    sentinel = np.arange(12, dtype="<u2").reshape(3, 4)
    push.send_multipart(encode_frame(sentinel, seq=0, source="sentinel", metadata=META))
    while True:  # messages that happened to be valid arrive first, in order
        message = subscriber.recv(5.0)
        assert message is not None, "the good frame after the batch never arrived"
        if message.source == "sentinel":
            break
    np.testing.assert_array_equal(message.pixels, sentinel)
    after = subscriber.stats
    invalid = sum(not _locally_valid(parts) for parts in batch)
    assert after.rejected_total - before.rejected_total == invalid
    assert after.received - before.received == BATCH - invalid + 1
    assert invalid >= 0.9 * BATCH  # the strategies make hostile messages, not valid ones


def test_fuzzed_stream_was_at_least_ten_thousand_messages(fuzz_link) -> None:
    # runs after the fuzz test in file order, with the same subscriber
    _, subscriber = fuzz_link
    stats = subscriber.stats
    if stats.received == 0:
        pytest.skip("counts the stream of the fuzz test above; run the whole module")
    assert stats.rejected_total + stats.received >= EXAMPLES * BATCH
    assert stats.rejected_total >= 0.9 * EXAMPLES * BATCH
