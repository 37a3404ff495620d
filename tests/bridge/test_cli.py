"""``lorentz-bridge``: one-line errors with exit code 2, and a bridge process end to end."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest
import zmq

from acquisition_bridge.cli import is_loopback, main
from acquisition_bridge.transport import Publisher, Subscriber


@pytest.fixture
def stack_file(tmp_path, meta):
    path = tmp_path / "stack.npy"
    np.save(path, np.arange(5 * 24 * 16, dtype="<u2").reshape(5, 24, 16))
    (tmp_path / "stack.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nikon"], "unknown source 'nikon'"),
        (["replay", "{missing}"], "file not found"),
        (["replay", "{stack}", "--fps", "-1"], "--fps must be >= 0"),
        (["replay", "{stack}", "--frames", "-3"], "--frames must be >= 0"),
        (["replay", "{stack}", "--fps", "fast"], "invalid float value: 'fast'"),
        (["replay", "{stack}", "--bind", "tcp://nowhere:x"], "cannot bind"),
        (["replay", "{stack}", "--meta", "{missing}"], "metadata file not found"),
        (["replay", "{stack}", "--curve-secret", "{stack}"], "no Z85 CURVE secret key"),
        (["watch", "{missing}"], "watch folder not found"),
        (["simulate", "--size", "3"], "size must be 16 to 4096 px"),
        (["simulate", "--defocus-nm", "1e9"], "defocus_nm = 1e+09 nm is implausible"),
        (["simulate", "--dose", "-5"], "dose must be"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, stack_file, capsys, args, message):
    args = [a.format(stack=stack_file, missing=tmp_path / "missing.npy") for a in args]
    assert main([*args, "--bind", "tcp://127.0.0.1:*"] if "--bind" not in args else args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lorentz-bridge")
    assert message in lines[0]
    assert "Traceback" not in err


def test_usage_without_a_source_lists_the_sources(capsys):
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "replay" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/cam", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_loopback_detection(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_non_loopback_bind_warns(stack_file, caplog):
    assert main(["replay", str(stack_file), "--bind", "tcp://0.0.0.0:0", "--fps", "0"]) == 0
    assert any("reachable from the network" in r.message for r in caplog.records)


def test_replay_process_streams_the_stack_then_ends_the_stream(
    tmp_path, stack_file, bridge_process
):
    endpoint = f"ipc://{tmp_path}/bridge"
    with Subscriber(endpoint, mode="latest") as sub:
        bridge = bridge_process(
            [
                "replay",
                str(stack_file),
                "--bind",
                endpoint,
                "--fps",
                "20",
                "--heartbeat-s",
                "0.1",
                "--wait-subscribers",
                "1",
            ]
        )
        assert sub.wait_for_publisher(20.0), "the bridge never started listening"
        frames = []
        while (message := sub.recv(5.0)) is not None and message.kind != "end_of_stream":
            if message.kind == "frame":
                frames.append(message)
        assert message is not None, "no end_of_stream"
        code, err = bridge.wait()  # a replay without --loop ends by itself
    assert code == 0
    assert "done: frames" in err
    assert [m.seq for m in frames] == list(range(5))  # 20 fps: a subscriber keeps up
    stack = np.load(stack_file)
    for message in frames:
        np.testing.assert_array_equal(message.pixels, stack[message.seq])
        assert message.header["series_id"] == "stack"


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_subscriber_recovers_after_the_bridge_is_killed_and_restarted(
    tmp_path, stack_file, bridge_process, transport
):
    if transport == "tcp":
        probe = zmq.Context.instance().socket(zmq.PUB)
        port = probe.bind_to_random_port("tcp://127.0.0.1")
        probe.close(linger=0)  # a free port the restarted bridge can bind again
        endpoint = f"tcp://127.0.0.1:{port}"
    else:
        endpoint = f"ipc://{tmp_path}/bridge"
    args = ["replay", str(stack_file), "--bind", endpoint, "--fps", "40", "--loop"]
    with Subscriber(endpoint, heartbeat_timeout_s=0.5, reconnect_after_s=1.0) as sub:
        first = bridge_process([*args, "--heartbeat-s", "0.1"])
        assert sub.recv_frame(20.0) is not None, "no frame from the first bridge"
        first.check_alive()
        while sub.stats.frames < 8:
            assert sub.recv_frame(5.0) is not None
        first.kill()  # SIGKILL: no end_of_stream, the stream just stops
        deadline = time.monotonic() + 5.0
        while not sub.stats.silent:
            sub.recv(0.1)
            assert time.monotonic() < deadline, "silence was not detected"
        second = bridge_process([*args, "--heartbeat-s", "0.1"])
        received = sub.stats.frames
        deadline = time.monotonic() + 20.0
        while sub.stats.frames < received + 5:
            sub.recv(0.2)
            assert time.monotonic() < deadline, "no frames after the restart"
        second.check_alive()
        stats = sub.stats
        code, err = second.stop()  # SIGTERM ends the stream cleanly
        assert code == 0, err
        assert "done: frames" in err
    assert not stats.silent
    assert stats.restarts == 1  # seq started again at 0
    assert stats.rejected_total == 0


def test_keygen_keys_encrypt_a_bridge_that_listen_can_read(tmp_path, stack_file, capsys, caplog):
    caplog.set_level(logging.INFO, logger="acquisition_bridge")
    assert main(["keygen", str(tmp_path / "keys")]) == 0
    assert "public key" in capsys.readouterr().out
    secret = tmp_path / "keys" / "bridge.key_secret"
    public = tmp_path / "keys" / "bridge.key"
    endpoint = f"ipc://{tmp_path}/enc"
    codes: list[int] = []
    args = ["replay", str(stack_file), "--bind", endpoint, "--fps", "50"]
    args += ["--curve-secret", str(secret), "--wait-subscribers", "1", "--quiet"]
    listener = threading.Thread(
        target=lambda: codes.append(
            main(["listen", "--connect", endpoint, "--curve-server-key", str(public)])
        )
    )
    listener.start()
    assert main(args) == 0
    listener.join(20.0)
    assert codes == [0]  # listen stops at end_of_stream
    done = [r.message for r in caplog.records if r.message.startswith("done: frames")]
    # the bridge sent five frames and the listener decrypted all five
    assert len(done) == 2
    assert all(line.startswith("done: frames 5 ") for line in done), done


def test_wait_for_subscribers_times_out_without_one(context):
    with Publisher("tcp://127.0.0.1:*", context=context) as pub:
        start = time.monotonic()
        assert not pub.wait_for_subscribers(1, timeout_s=0.2)
        assert time.monotonic() - start < 1.0
        with Subscriber(pub.address, context=context):
            assert pub.wait_for_subscribers(1, timeout_s=5.0)
        assert pub.subscriptions == 1
