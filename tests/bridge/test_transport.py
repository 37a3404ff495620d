"""Publisher and Subscriber over real sockets on loopback (tcp and ipc)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from acquisition_bridge.protocol import DTYPES, Frame, encode_control, encode_frame
from acquisition_bridge.transport import Publisher, Subscriber
from tests.bridge.conftest import drain, ramp, wait_connected


def _endpoint(transport: str, tmp_path: Path) -> str:
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/live"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_every_dtype_arrives_with_its_metadata_on_both_paths(context, meta, transport, tmp_path):
    record = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/record"
    with (
        Publisher(_endpoint(transport, tmp_path), record_bind=record, context=context) as pub,
        Subscriber(pub.address, context=context) as live,
        Subscriber(pub.record_address, mode="all", context=context) as recorder,
    ):
        wait_connected(live, pub)
        wait_connected(recorder, pub)
        sent = []
        for index, dtype in enumerate(DTYPES):
            pixels = ramp((37, 31), dtype)
            sent.append(pixels)
            pub.publish(Frame(pixels, dict(meta, temperature_k=10.0 + index, lab="B12")))
            received = live.recv_frame(5.0)  # one at a time: the live path may skip frames
            assert received is not None
            np.testing.assert_array_equal(received.pixels, pixels)
            assert received.pixels.dtype == pixels.dtype
            assert received.microscope() == meta
            assert received.header["temperature_k"] == 10.0 + index
            assert received.header["lab"] == "B12"
        recorded = [recorder.recv_frame(5.0) for _ in DTYPES]
        assert [m.seq for m in recorded] == [0, 1, 2, 3]
        for message, pixels in zip(recorded, sent, strict=True):
            np.testing.assert_array_equal(message.pixels, pixels)
        assert live.stats.dropped == 0
        assert recorder.stats.dropped == 0
        assert live.stats.rejected_total == recorder.stats.rejected_total == 0


def _raw_frame(meta: dict[str, Any], seq: int, source: str = "cam") -> list:
    return encode_frame(ramp((4, 4), "<u2"), seq=seq, source=source, metadata=meta)


def test_gaps_in_seq_are_counted_as_missed(context, meta, raw_push):
    push, address = raw_push
    with Subscriber(address, mode="all", context=context) as sub:
        for seq in (0, 1, 2, 5, 6, 10):
            push.send_multipart(_raw_frame(meta, seq))
        # a control message carries the next seq: frames 11 and 12 were lost too
        push.send_multipart(encode_control("series_end", seq=13, source="cam"))
        messages = drain(sub, 0.5)
        assert [m.seq for m in messages] == [0, 1, 2, 5, 6, 10, 13]
        assert sub.stats.missed == 2 + 3 + 2
        # another source has its own numbering
        push.send_multipart(_raw_frame(meta, 100, source="other"))
        push.send_multipart(_raw_frame(meta, 101, source="other"))
        assert len(drain(sub, 0.5)) == 2
        assert sub.stats.missed == 7
        # seq going backwards is a restart of the source, not a gap
        push.send_multipart(_raw_frame(meta, 0))
        assert len(drain(sub, 0.5)) == 1
        assert (sub.stats.restarts, sub.stats.missed) == (1, 7)
        # so is a new stream_id, even when the new run's seq is already ahead
        for stream, seq in (("run-a", 1), ("run-a", 2), ("run-b", 40), ("run-b", 41)):
            parts = encode_frame(
                ramp((4, 4), "<u2"), seq=seq, source="cam", metadata=meta, stream_id=stream
            )
            push.send_multipart(parts)
        assert len(drain(sub, 0.5)) == 4
        assert (sub.stats.restarts, sub.stats.missed) == (2, 7)


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(context, meta):
    with (
        Publisher("tcp://127.0.0.1:*", context=context) as pub,
        Subscriber(pub.address, context=context) as sub,
    ):
        wait_connected(sub, pub)
        sent = 60
        for index in range(sent - 1):
            pub.publish(Frame(np.full((64, 64), index, "<u2"), meta))
            time.sleep(0.002)
        time.sleep(0.1)  # the last frame leaves an empty send queue: it is not dropped there
        pub.publish(Frame(np.full((64, 64), sent - 1, "<u2"), meta))
        time.sleep(0.3)  # the consumer is busy elsewhere
        newest = sub.recv_frame(1.0)
        assert newest is not None
        assert newest.seq == sent - 1  # not the oldest queued frame
        assert newest.pixels[0, 0] == sent - 1
        assert sub.recv(0.2) is None  # nothing stale left behind
        stats = sub.stats
        assert stats.delivered == 1
        assert stats.superseded + stats.missed == sent - 1
        assert stats.superseded > 0


def test_control_messages_are_never_superseded_and_keep_their_order(context, meta):
    with (
        Publisher("tcp://127.0.0.1:*", context=context) as pub,
        Subscriber(pub.address, context=context) as sub,
    ):
        wait_connected(sub, pub)
        for series in ("a", "b"):
            for _ in range(3):
                pub.publish(Frame(ramp((8, 8), "<u1"), dict(meta, series_id=series)))
                time.sleep(0.01)
        pub.end_of_stream(repeat=3, interval_s=0.01)
        time.sleep(0.3)
        kinds = [(m.kind, m.header.get("series_id"), m.seq) for m in drain(sub, 0.3)]
        assert kinds == [
            ("series_start", "a", 0),
            ("frame", "a", 2),
            ("series_end", "a", 3),
            ("series_start", "b", 3),
            ("frame", "b", 5),
            ("series_end", "b", 6),
            ("end_of_stream", None, 6),  # once, although sent three times
        ]
        assert sub.stats.ended
        assert sub.stats.superseded == 4


def test_lossless_path_delivers_every_frame_to_a_slow_recorder(context, meta):
    with (
        Publisher("tcp://127.0.0.1:*", record_bind="tcp://127.0.0.1:*", context=context) as pub,
        Subscriber(pub.record_address, mode="all", queue_size=2, context=context) as recorder,
    ):
        wait_connected(recorder, pub)
        count = 40
        for index in range(count):  # far more than every high-water mark together
            pub.publish(Frame(np.full((128, 128), index, "<u2"), dict(meta, series_id="rec")))
            if index % 10 == 0:
                time.sleep(0.05)
        pub.end_of_stream(repeat=1)
        frames = []
        while (message := recorder.recv(2.0)) is not None and message.kind != "end_of_stream":
            if message.kind == "frame":
                frames.append(message)
                time.sleep(0.005)  # a slow disk
        assert [m.pixels[0, 0] for m in frames] == list(range(count))
        assert pub.stats.record_dropped == 0
        assert recorder.stats.missed == 0
        assert message is not None and message.header["frames"] == count


def test_absent_recorder_costs_one_timeout_then_drops_are_counted(context, meta):
    with Publisher(
        "tcp://127.0.0.1:*", record_bind="tcp://127.0.0.1:*", record_timeout_s=0.2, context=context
    ) as pub:
        start = time.monotonic()
        for _ in range(20):
            pub.publish(Frame(ramp((8, 8), "<u2"), meta))
        elapsed = time.monotonic() - start
        assert pub.stats.record_dropped == 20
        assert 0.2 <= elapsed < 1.0  # waited once, not 20 times


def test_silence_is_detected_and_the_subscriber_reconnects(context, meta):
    with Subscriber(
        "tcp://127.0.0.1:1", heartbeat_timeout_s=0.2, reconnect_after_s=0.3, context=context
    ) as sub:
        time.sleep(0.8)
        stats = sub.stats
        assert stats.silent
        assert stats.reconnects >= 1
        assert sub.recv(0.05) is None


def test_curve_encrypts_and_plain_clients_get_nothing(context, meta):
    public, secret = zmq.curve_keypair()
    with (
        Publisher("tcp://127.0.0.1:*", curve_secret_key=secret, context=context) as pub,
        Subscriber(pub.address, curve_server_key=public, context=context) as sub,
        Subscriber(pub.address, context=context) as plain,
    ):
        wait_connected(sub, pub)
        pub.publish(Frame(ramp((5, 7), "<u2"), meta))
        message = sub.recv_frame(2.0)
        assert message is not None
        np.testing.assert_array_equal(message.pixels, ramp((5, 7), "<u2"))
        assert plain.recv(0.3) is None
        assert plain.stats.received == 0


def test_invalid_frames_are_counted_logged_once_and_dropped(context, meta, raw_push, caplog):
    push, address = raw_push
    nan = ramp((4, 4), "<f4")
    nan[2, 2] = np.nan
    with Subscriber(address, mode="all", context=context) as sub:
        for _ in range(5):
            push.send_multipart([b"\x00garbage"])
            push.send_multipart(encode_frame(nan, seq=0, source="c", metadata=meta))
        push.send_multipart([msgpack.packb({"protocol": "9.0"})])
        push.send_multipart(_raw_frame(meta, 1))
        good = sub.recv(2.0)
        assert good is not None and good.seq == 1
        rejected = sub.stats.rejected
        assert (rejected["malformed"], rejected["nonfinite"], rejected["version"]) == (5, 5, 1)
    warnings = [r.message for r in caplog.records if "invalid message" in r.message]
    assert len(warnings) == 3  # once per reason, not once per message
