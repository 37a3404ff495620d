"""The viewer under pytest-qt (offscreen): real sockets in, displayed images and counters out."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6 import QtCore

from acquisition_bridge.protocol import Frame as WireFrame
from acquisition_bridge.results import ResultPublisher
from acquisition_bridge.transport import Publisher
from gui.model import SIGN_CONVENTIONS
from gui.streams import StreamReceiver
from gui.window import MainWindow
from lorentz_live.live import LiveConfig, LiveEngine
from lorentz_live.live.control import ControlClient, ControlServer, EngineControl
from lorentz_live.live.runner import LiveRunner
from lorentz_live.siprad import NetworkConfig, SipradConfig
from tests.live.conftest import PARAMS, movie

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def settings(tmp_path):
    return QtCore.QSettings(str(tmp_path / "viewer.ini"), QtCore.QSettings.Format.IniFormat)


def make_window(qtbot, settings, tmp_path, *, source=None, results=None, control=None):
    window = MainWindow(
        StreamReceiver(source, results),
        ControlClient(control) if control else None,
        settings=settings,
        snapshot_dir=tmp_path / "snapshots",
    )
    qtbot.addWidget(window)
    window.show()
    return window


def window_on_streams(qtbot, settings, tmp_path, camera_name: str):
    """A window subscribed to a fresh result publisher and camera publisher (both connected)."""
    publisher = ResultPublisher("tcp://127.0.0.1:*")
    camera = Publisher("tcp://127.0.0.1:*", source=camera_name)
    window = make_window(
        qtbot, settings, tmp_path, source=camera.address, results=publisher.address
    )
    assert publisher.wait_for_subscribers(1, timeout_s=10.0)
    assert camera.wait_for_subscribers(1, timeout_s=10.0)
    return window, publisher, camera


def result_arrays(seq: int, size: int = 48) -> dict[str, tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seq)
    phi = rng.normal(size=(size, size)).astype(np.float32)
    rgb = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    return {
        "phi_m": (phi, "rad"),
        "b_x": (np.ones((size, size), np.float32), "T nm"),
        "b_y": (np.zeros((size, size), np.float32), "T nm"),
        "rgb": (rgb, "sRGB"),
        "loss": (np.geomspace(1.0, 1e-3, 30).astype(np.float32), "mse"),
    }


def test_results_and_frames_through_sockets_update_images_and_counters(
    qtbot, settings, tmp_path
) -> None:
    window, publisher, camera = window_on_streams(qtbot, settings, tmp_path, "cam-a")
    try:
        frame = np.arange(64 * 80, dtype="<u2").reshape(64, 80)
        header = {**PARAMS.to_dict(), "temperature_k": 77.0, "field_mt": 12.5}
        camera.publish(WireFrame(frame, header))
        census = {"count": 7, "ccw": 4, "cw": 3, "diameter_mean_nm": 60.0, "phase": "bubbles"}
        for seq in range(3):
            arrays = result_arrays(seq)
            publisher.publish(
                {
                    "iterations": 12,
                    "loss": 1e-3 * (seq + 1),
                    "warm": seq > 0,
                    "restart_reason": None if seq else "first frame",
                    "latency_s": 0.5,
                    "dropped_so_far": 4,
                    "bad_frames_so_far": 1,
                    "result_timestamp_ns": time.time_ns(),
                    "census": census,
                    "frame": {"temperature_k": 77.0 + seq},
                    **PARAMS.to_dict(),
                },
                arrays,
                seq=seq,
                timestamp_ns=time.time_ns(),
            )
            qtbot.waitUntil(lambda s=seq: window.model.results == s + 1, timeout=10000)
        qtbot.waitUntil(lambda: window.model.frames == 1, timeout=10000)
        np.testing.assert_array_equal(window.raw_panel.image.image, frame)
        np.testing.assert_array_equal(window.phase_panel.image.image, arrays["phi_m"][0])
        np.testing.assert_array_equal(window.b_panel.image.image, arrays["rgb"][0])
        assert window.loss_iter_curve.getData()[0].size == 30
        window._slow_refresh()
        status = window.status.text()
        assert "raw: live" in status and "results: live" in status
        assert "dropped 4" in status and "bad 1" in status and "it/frame 12" in status
        assert list(window.model.census["count"].arrays()[1]) == [7, 7, 7]
        assert list(window.model.census_temperature["count"].arrays()[0]) == [77.0, 78.0, 79.0]
        assert window.model.metadata["field_mt"].last == 12.5
        assert "underfocus 1.00 mm" in window.info.text()
        assert "7 bubbles (4 ccw / 3 cw)" in window.census_text.text()
        # the raw frame prefills the parameters (our sign: negative = underfocus)
        assert window.defocus.value() == pytest.approx(PARAMS.defocus_nm / 1000)
        png, npz = window.snapshot(tmp_path / "snap")
        assert png.stat().st_size > 1000
        with np.load(npz) as saved:
            np.testing.assert_array_equal(saved["phi_m"], arrays["phi_m"][0])
            np.testing.assert_array_equal(saved["raw"], frame)
    finally:
        window.close()
        publisher.close()
        camera.close()


def test_window_says_when_a_stream_stops(qtbot, settings, tmp_path) -> None:
    camera = Publisher("tcp://127.0.0.1:*", source="cam-b", heartbeat_s=0.2)
    window = make_window(qtbot, settings, tmp_path, source=camera.address)
    try:
        assert camera.wait_for_subscribers(1, timeout_s=10.0)
        camera.publish(WireFrame(np.ones((32, 32), "<u2"), PARAMS.to_dict()))
        qtbot.waitUntil(lambda: window.model.frames == 1, timeout=10000)
        camera.close()
        window.receiver._raw.heartbeat_timeout_s = 0.5

        def says_silent() -> bool:
            window._slow_refresh()
            return "raw: silent" in window.status.text()

        qtbot.waitUntil(says_silent, timeout=15000)
        window.refresh()  # still responsive: the timer tick returns with nothing to show
    finally:
        window.close()


def test_defocus_sign_convention_is_per_microscope(qtbot, settings, tmp_path) -> None:
    window = make_window(qtbot, settings, tmp_path)
    try:
        window.convention.setCurrentText(SIGN_CONVENTIONS[1])  # "positive = underfocus"
        window.defocus.setValue(800.0)  # the microscope shows +800 µm
        assert window.defocus_nm() == pytest.approx(-8.0e5)  # underfocus in our convention
        assert window.focus_label.text().startswith("underfocus 800 µm")
        assert settings.value("sign_convention/default") == SIGN_CONVENTIONS[1]
    finally:
        window.close()


def _small_engine() -> LiveEngine:
    siprad = SipradConfig(
        network=NetworkConfig(width=8, depth=3, max_width=32),
        pretrain_iterations=50,
        max_iterations=100,
        seed=1,
    )
    return LiveEngine(LiveConfig(siprad=siprad, warm_max_iterations=10))


def test_parameter_edit_reaches_the_engine_and_restarts_it_cold(qtbot, settings, tmp_path) -> None:
    camera = Publisher("tcp://127.0.0.1:*", source="cam-c")
    engine = _small_engine()
    server = ControlServer("tcp://127.0.0.1:*", EngineControl(engine))
    runner = LiveRunner(
        engine, camera.address, results_bind="tcp://127.0.0.1:*", control=server.control
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.wait_started(10.0)
    window = make_window(
        qtbot,
        settings,
        tmp_path,
        source=camera.address,
        results=runner.results_address,
        control=server.address,
    )
    try:
        assert camera.wait_for_subscribers(2, timeout_s=10.0)  # the engine and the viewer
        frames = movie(2)
        header = {**PARAMS.to_dict(), "temperature_k": 40.0}
        window.map_source.setCurrentText("refined only")

        def refined(seq: int) -> bool:
            shown = window.last_result
            return shown is not None and shown.header["seq"] == seq

        camera.publish(WireFrame(np.asarray(frames[0].image, np.float32), header))
        qtbot.waitUntil(lambda: refined(0), timeout=120000)
        assert window.last_result.header["method"] == "siprad"
        assert window.last_result.header["warm"] is False

        window.defocus.setValue(-800.0)  # µm as shown, our sign
        ident = window.send_params()
        qtbot.waitUntil(
            lambda: any(r.get("id") == ident for r in window.control_replies), timeout=10000
        )
        assert "accepted" in window.control_reply.text()
        refused = window.send("set_budget", warm_iterations=0)  # a bad command
        qtbot.waitUntil(
            lambda: any(r.get("id") == refused for r in window.control_replies), timeout=10000
        )
        assert window.control_reply.text().startswith("refused: warm_iterations")

        camera.publish(WireFrame(np.asarray(frames[1].image, np.float32), header))
        qtbot.waitUntil(lambda: refined(1), timeout=120000)
        result = window.last_result.header
        assert result["method"] == "siprad"
        assert window.model.results >= 3  # the instant answers arrive as well
        assert result["warm"] is False
        assert "defocus_nm changed" in result["restart_reason"]
        assert result["defocus_nm"] == pytest.approx(-8.0e5)
        assert engine.config.warm_max_iterations == 10  # the refused command changed nothing
        assert "census" in result
    finally:
        window.close()
        runner.stop()
        thread.join(60.0)
        server.close()
        camera.close()


def test_closing_the_window_stops_its_threads_and_sockets(qtbot, settings, tmp_path) -> None:
    before = set(threading.enumerate())
    camera = Publisher("tcp://127.0.0.1:*", source="cam-d")
    results = ResultPublisher("tcp://127.0.0.1:*")
    server = ControlServer("tcp://127.0.0.1:*", EngineControl(_small_engine()))
    window = make_window(
        qtbot,
        settings,
        tmp_path,
        source=camera.address,
        results=results.address,
        control=server.address,
    )
    started = set(threading.enumerate()) - before
    assert {t.name for t in started} >= {"viewer-receiver", "subscriber", "control"}
    window.close()
    server.close()
    assert window.receiver.alive is False
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leaked == []
    camera.close()
    results.close()


def test_screenshot_and_exit_from_the_command_line(tmp_path) -> None:
    shot = tmp_path / "viewer.png"
    unused = "tcp://127.0.0.1:9"  # nothing listens: the viewer must still render and exit
    done = subprocess.run(
        [sys.executable, "-m", "lorentz_live.cli", "gui", "--source", unused, "--results", unused,
         "--control", unused, "--screenshot", str(shot), "--exit-after", "1"],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [sys.executable, "-m", "lorentz_live.cli", "gui", "--screenshot", str(tmp_path / "x.jpg")],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--screenshot must name a .png" in bad.stderr


def test_record_button_writes_what_the_viewer_receives_to_a_session(
    qtbot, settings, tmp_path
) -> None:
    from lorentz_live.record import SessionReader

    window, publisher, camera = window_on_streams(qtbot, settings, tmp_path, "cam-rec")
    window.session_dir = tmp_path / "sessions"
    try:
        window.record_action.trigger()  # the toolbar button
        writer = window.receiver.recording
        assert writer is not None
        sent = []
        for seq in range(3):
            frame = np.full((32, 40), 100 + seq, dtype="<u2")
            frame[seq, seq] = 7
            sent.append(frame)
            camera.publish(WireFrame(frame, {**PARAMS.to_dict(), "temperature_k": 50.0 + seq}))
            qtbot.waitUntil(lambda s=seq: writer.stats.frames == s + 1, timeout=10000)
        publisher.publish(
            {"iterations": 3, "loss": 1e-3, **PARAMS.to_dict()},
            result_arrays(0, size=32),
            seq=0,
            timestamp_ns=time.time_ns(),
        )
        qtbot.waitUntil(lambda: writer.stats.results == 1, timeout=10000)
        window._slow_refresh()
        assert "REC 3 frames / 1 results" in window.status.text()
        window.record_action.trigger()  # stop: the session is finished off the GUI thread
        assert window.receiver.recording is None
        qtbot.waitUntil(lambda: writer._frames is None, timeout=10000)
        with SessionReader(writer.folder) as session:
            assert session.frame_count == 3 and session.result_count == 1
            for index, frame in enumerate(sent):
                pixels, header = session.frame(index)
                np.testing.assert_array_equal(pixels, frame)
                assert header["temperature_k"] == 50.0 + index
        # a second recording into the same folder is refused, the display goes on
        assert window.start_recording(writer.folder) is None
        assert "never overwrites" in window.control_reply.text()
        assert not window.record_action.isChecked()
    finally:
        window.close()
        publisher.close()
        camera.close()


def test_plots_stay_bounded_over_many_results(qtbot, settings, tmp_path) -> None:
    """The viewer's memory must not grow with the session: each plot holds at most
    ``display_points`` points and one symbol in pyqtgraph's atlas (a colour given as a
    tuple becomes a new pen at every redraw, and the atlas kept each one)."""
    window = make_window(qtbot, settings, tmp_path)
    window.display_points = 40
    census = {"count": 7, "ccw": 4, "cw": 3, "diameter_mean_nm": 60.0, "hexatic_order": 0.5}
    arrays = {name: array for name, (array, _) in result_arrays(0, size=16).items()}
    for seq in range(150):
        header = {
            "method": "siprad",
            "loss": 1e-3 / (seq + 1),
            "census": {**census, "count": seq % 9},
            "frame": {"temperature_k": 100.0 - 0.1 * seq},
            **PARAMS.to_dict(),
        }
        window.receiver._put_result(arrays, header)
        window.refresh()
        window._slow_refresh()
        window._slow_refresh()  # nothing new: no redraw
    assert window.model.results == 150
    curves = [window.loss_frame_curve] + [curve for _, curve in window.census_plots.values()]
    curves += [curve for _, curve in window.metadata_plots.values()]
    drawn = [curve for curve in curves if curve.getData()[0] is not None]
    assert len(drawn) >= 5  # loss, census count, diameter, hexatic order, temperature
    for curve in drawn:
        assert len(curve.getData()[0]) <= 40
        if curve.opts["symbol"] is not None:
            assert len(curve.scatter.fragmentAtlas) == 1
    assert window.loss_frame_curve.getData()[0][-1] == window.model.loss_per_frame.arrays()[0][-1]
    window.census_axis.setCurrentText("against temperature")
    window._slow_refresh()
    t, _ = window.census_plots["count"][1].getData()
    assert t[-1] == pytest.approx(100.0 - 14.9)
