"""The control socket: requests validated and answered at once, applied between frames."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from acquisition_bridge.protocol import Frame as WireFrame
from acquisition_bridge.results import ResultSubscriber
from acquisition_bridge.transport import Publisher
from lorentz_live.errors import InputError
from lorentz_live.live import LiveEngine
from lorentz_live.live.control import (
    MAX_REQUEST_BYTES,
    ControlClient,
    ControlError,
    ControlServer,
    EngineControl,
    parse_request,
)
from lorentz_live.live.runner import LiveRunner
from tests.live.conftest import PARAMS, as_frame, movie

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([1, 2], "msgpack map"),
        ({"command": "explode"}, "unknown command"),
        ({"command": "set_params", "params": {"defocus": -1e6}}, "not a microscope key"),
        ({"command": "set_params", "params": {"defocus_nm": float("nan")}}, "finite"),
        ({"command": "set_params", "params": {"defocus_nm": 1e9}}, "defocus"),
        ({"command": "set_params", "params": {}}, "non-empty"),
        ({"command": "set_budget"}, "set_budget needs"),
        ({"command": "set_budget", "warm_iterations": 0}, ">= 1"),
        ({"command": "set_budget", "time_budget_s": -1.0}, "> 0"),
        ({"command": "set_roi", "roi": [0, 0, 8, 64]}, "16"),
        ({"command": "set_roi", "roi": [0, 0, 64]}, "[y0, x0, height, width]"),
        ({"command": "reset", "colour": "red"}, "unknown argument"),
        ({"command": "set_sample"}, "set_sample needs"),
        ({"command": "set_sample", "amplitude": "magic"}, "amplitude must be one of"),
        ({"command": "set_sample", "mean_inner_potential_v": -3.0}, "> 0"),
        ({"command": "set_sample", "absorption_length_nm": float("nan")}, "finite"),
        ({"command": "set_sample", "island_thickness_nm": 0.0}, "> 0 or nil"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(request_, message) -> None:
    with pytest.raises(ControlError, match=message.replace("[", r"\[")):
        parse_request(request_)


def test_a_refused_request_changes_nothing(live_config) -> None:
    engine = LiveEngine(live_config)
    control = EngineControl(engine)
    reply = control.submit({"command": "set_budget", "warm_iterations": -3, "id": 7})
    assert reply == {"ok": False, "id": 7, "error": reply["error"]}
    assert control.apply_pending() == []
    assert engine.config == live_config


def test_commands_apply_between_frames(live_config) -> None:
    engine = LiveEngine(live_config)
    control = EngineControl(engine)
    for request in (
        {"command": "set_params", "params": {"defocus_nm": -8.0e5}},
        {"command": "set_budget", "warm_iterations": 7, "time_budget_s": 2.5},
        {"command": "set_roi", "roi": [4, 8, 32, 48]},
    ):
        assert control.submit(request)["ok"]
    assert engine.config.warm_max_iterations != 7  # nothing applied before the next frame
    frame = control.prepare(as_frame(movie(1)[0], 0))
    assert frame.params.defocus_nm == -8.0e5
    assert frame.params.kv == PARAMS.kv
    assert frame.image.shape == (32, 48)
    assert frame.metadata["roi"] == [4, 8, 32, 48]
    assert engine.config.warm_max_iterations == 7
    assert engine.config.time_budget_s == 2.5
    state = control.state()
    assert state["param_overrides"] == {"defocus_nm": -8.0e5}
    assert state["applied"] == 3 and state["pending"] == []
    control.submit({"command": "set_roi", "roi": [40, 40, 32, 32]})
    with pytest.raises(InputError, match="region of interest"):
        control.prepare(as_frame(movie(1)[0], 1))  # 64 px frame: does not fit


def test_server_answers_garbage_and_never_hangs(live_config) -> None:
    control = EngineControl(LiveEngine(live_config))
    with ControlServer("tcp://127.0.0.1:*", control) as server:
        raw = zmq.Context.instance().socket(zmq.REQ)
        raw.linger = 0
        raw.rcvtimeo = 5000
        try:
            raw.connect(server.address)
            raw.send(b"\xc1\xff not msgpack")
            reply = msgpack.unpackb(raw.recv())
            assert not reply["ok"] and "malformed" in reply["error"]
            raw.send(msgpack.packb({"command": "status"}))
            reply = msgpack.unpackb(raw.recv())
            assert reply["ok"] and reply["state"]["frames_done"] == 0
        finally:
            raw.close()
        # an oversized request is dropped by libzmq (ZMQ_MAXMSGSIZE); the server carries on
        with ControlClient(server.address) as client:
            client.send("status", padding="x" * (2 * MAX_REQUEST_BYTES))
            assert client.poll(0.5) == []
        with ControlClient(server.address) as client:
            assert client.request("status", timeout_s=10.0)["ok"]
        assert server.refused == 1


def test_off_loopback_needs_curve(live_config) -> None:
    control = EngineControl(LiveEngine(live_config))
    with pytest.raises(InputError, match="CURVE"):
        ControlServer("tcp://0.0.0.0:*", control)


def test_curve_server_refuses_plain_clients(live_config) -> None:
    public, secret = zmq.curve_keypair()
    control = EngineControl(LiveEngine(live_config))
    with ControlServer("tcp://127.0.0.1:*", control, curve_secret_key=secret) as server:
        with ControlClient(server.address) as plain:
            assert plain.request("status", timeout_s=1.0) is None
        with ControlClient(server.address, curve_server_key=public) as client:
            assert client.request("status", timeout_s=10.0)["ok"]


def refined(results: ResultSubscriber, seq: int, timeout_s: float = 120.0) -> dict:
    """The header of the SIPRAD result of frame ``seq`` (instant answers come first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = results.recv_latest(timeout_s=1.0)
        if result is not None and result.seq == seq and result.header["method"] == "siprad":
            return result.header
    raise AssertionError(f"no refined result for frame {seq}")


def test_defocus_edit_through_the_socket_restarts_the_engine_cold(live_config) -> None:
    """Engine in a thread, frames through a real bridge, command through the control socket."""
    publisher = Publisher("tcp://127.0.0.1:*", source="test-camera")
    engine = LiveEngine(live_config)
    server = ControlServer("tcp://127.0.0.1:*", EngineControl(engine))
    runner = LiveRunner(
        engine,
        publisher.address,
        results_bind="tcp://127.0.0.1:*",
        result_subscribers=1,
        control=server.control,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    results = client = None
    try:
        assert runner.wait_started(10.0)
        results = ResultSubscriber(runner.results_address)
        client = ControlClient(server.address)
        assert publisher.wait_for_subscribers(1, timeout_s=10.0)
        frames = movie(3)
        header = {**PARAMS.to_dict(), "temperature_k": 40.0}
        seen = []
        for index in range(3):
            if index == 2:
                reply = client.request("set_params", params={"defocus_nm": -8.0e5}, timeout_s=10.0)
                assert reply["ok"] and reply["applies"] == "before the next frame"
            seq = publisher.publish(WireFrame(np.asarray(frames[index].image, np.float32), header))
            seen.append(refined(results, seq))
        assert [h["warm"] for h in seen] == [False, True, False]
        assert "defocus_nm changed" in seen[2]["restart_reason"]
        assert seen[2]["defocus_nm"] == -8.0e5 and seen[1]["defocus_nm"] == PARAMS.defocus_nm
        assert seen[2]["census"]["phase"] in ("bubbles", "mixed", "stripes", "none")
        state = client.request("status", timeout_s=10.0)["state"]
        assert state["cold_starts"] == 2 and state["param_overrides"] == {"defocus_nm": -8.0e5}
    finally:
        runner.stop()
        thread.join(60.0)
        server.close()
        for closable in (results, client, publisher):
            if closable is not None:
                closable.close()


def test_cli_refuses_a_network_control_endpoint_without_curve(capsys) -> None:
    from lorentz_live.cli import main

    assert main(["run", "--control", "tcp://0.0.0.0:5999", "--frames", "1"]) == 2
    assert "CURVE" in capsys.readouterr().err


def test_set_sample_changes_the_material_and_restarts_cold(live_config) -> None:
    engine = LiveEngine(live_config)
    control = EngineControl(engine)
    request = {
        "command": "set_sample",
        "amplitude": "thickness",
        "mean_inner_potential_v": 12.5,
        "absorption_length_nm": 80.0,
        "island_thickness_nm": 10.0,
    }
    assert control.submit(request)["ok"]
    assert engine.config.siprad.amplitude == live_config.siprad.amplitude  # not yet applied
    control.prepare(as_frame(movie(1)[0], 0))
    siprad = engine.config.siprad
    assert siprad.amplitude == "thickness" and siprad.island_thickness_nm == 10.0
    assert siprad.material.mean_inner_potential_v == 12.5
    assert siprad.material.absorption_length_nm == 80.0
    assert control.state()["sample"] == {k: v for k, v in request.items() if k != "command"}
    assert control.submit({"command": "set_sample", "island_thickness_nm": None})["ok"]
    control.apply_pending()
    assert engine.config.siprad.island_thickness_nm is None
    assert engine.config.siprad.material.absorption_length_nm == 80.0  # others kept
