"""Lossless results path engine -> recorder, and export to TIFF / GIF / MP4."""

from __future__ import annotations

import threading
import time

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest
import tifffile
import zmq

from lorentz_live.errors import InputError
from lorentz_live.live import LiveConfig
from lorentz_live.record import SessionReader, SessionWriter
from lorentz_live.record.export import colour_movie, export_movie, export_tiff
from lorentz_live.record.live import ResultPusher
from lorentz_live.record.recorder import Recorder

pytestmark = pytest.mark.timeout(120)
SHAPE = (24, 40)


def fake_result(seq: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seq)
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    angle = 0.3 * seq
    arrays = {
        "phi_m": rng.normal(size=SHAPE).astype(np.float32),
        "b_x": (np.cos(angle) * (1 + x / SHAPE[1])).astype(np.float32),
        "b_y": (np.sin(angle) * (1 + y / SHAPE[0])).astype(np.float32),
        "loss": np.linspace(1.0, 0.1, 5, dtype=np.float32),
    }
    header = {
        "seq": seq,
        "timestamp_ns": 10**18 + seq,
        "iterations": 5 + seq,
        "warm": seq > 0,
        "pixel_size_nm": 2.5,
        "method": "siprad",
        "census": {"bubbles": 10 + seq},
    }
    return header, arrays


def test_every_pushed_result_is_recorded(tmp_path) -> None:
    pusher = ResultPusher("tcp://127.0.0.1:*", engine_config=LiveConfig(warm_max_iterations=7))
    endpoint = pusher.address
    writer = SessionWriter(tmp_path / "s")
    recorder = Recorder(writer, source=None, results=endpoint, idle_timeout_s=2.0)
    thread = threading.Thread(target=recorder.run)
    thread.start()
    try:
        for seq in range(12):  # faster than a recorder fsyncs: back-pressure, not loss
            assert pusher.push(*fake_result(seq))
    finally:
        thread.join(60)
        pusher.close()
        writer.close()
    assert recorder.summary.results == 12 and pusher.dropped == 0
    with SessionReader(tmp_path / "s") as reader:
        assert list(reader.result_seqs) == list(range(12))
        header = reader.result_headers[5]
        assert header["census"] == {"bubbles": 15} and header["iterations"] == 10
        np.testing.assert_allclose(header["loss"], np.linspace(1.0, 0.1, 5), rtol=1e-6)
        np.testing.assert_array_equal(reader.result(5)[0]["phi_m"], fake_result(5)[1]["phi_m"])
        assert reader.engine["config"]["warm_max_iterations"] == 7
        assert "engine_config" not in header


def test_a_missing_recorder_costs_one_timeout_then_none(tmp_path) -> None:
    pusher = ResultPusher("tcp://127.0.0.1:*", timeout_s=0.2)
    try:
        assert not pusher.push(*fake_result(0))
        assert not pusher.push(*fake_result(1))
        assert pusher.dropped == 2
    finally:
        pusher.close()


@pytest.fixture
def results_session(tmp_path):
    with SessionWriter(tmp_path / "s") as writer:
        for seq in range(4):
            header, arrays = fake_result(seq)
            assert writer.add_result(header, arrays)
    return tmp_path / "s"


def test_tiff_export_keeps_values_and_metadata(tmp_path, results_session) -> None:
    with SessionReader(results_session) as reader:
        phi_path, b_path = export_tiff(reader, tmp_path / "talk")
        with pytest.raises(InputError, match="exists"):
            export_tiff(reader, tmp_path / "talk")
    with tifffile.TiffFile(phi_path) as tiff:
        np.testing.assert_array_equal(tiff.asarray()[2], fake_result(2)[1]["phi_m"])
        meta = tiff.shaped_metadata[0]
        assert meta["unit"] == "rad" and '"seq": [0, 1, 2, 3]' in meta["info"]
        x_resolution = tiff.pages[0].tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(1e7 / 2.5)
    b = tifffile.imread(b_path)
    assert b.shape == (4, 2, *SHAPE)
    np.testing.assert_array_equal(b[3, 1], fake_result(3)[1]["b_y"])


def test_colour_movie_follows_the_field_direction(results_session) -> None:
    with SessionReader(results_session) as reader:
        movie = colour_movie(reader)
    assert movie.shape == (4, *SHAPE, 3) and movie.dtype == np.uint8
    # frame 0: B along +x -> red dominates; frame 3 (0.9 rad): green rises
    red, green = movie[0, 10, 20, 0], movie[0, 10, 20, 1]
    assert red > 150 and green < 0.1 * red and movie[0, 10, 20, 2] < 0.1 * red
    assert movie[3, 10, 20, 1] > movie[0, 10, 20, 1]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_movie_export_writes_every_frame(tmp_path, results_session, suffix) -> None:
    out = tmp_path / f"talk{suffix}"
    with SessionReader(results_session) as reader:
        export_movie(reader, out, fps=5)
    if suffix == ".mp4":  # count with ffmpeg itself (imageio's mp4 reader leaks file handles)
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(out)
        assert frames == 4 and seconds == pytest.approx(4 / 5, abs=0.05)
        return
    frames = imageio.mimread(out)
    assert len(frames) == 4 and frames[0].shape[:2] == SHAPE


def test_engine_results_reach_the_session_through_run_record_results(tmp_path) -> None:
    from lorentz_live.live import LiveEngine
    from lorentz_live.record.cli import record_results
    from tests.live.conftest import as_frame, movie
    from tests.record.test_reprocess import small_config

    config = small_config()
    engine = LiveEngine(config)
    pusher = record_results(engine, "tcp://127.0.0.1:*", config, lambda: None)
    writer = SessionWriter(tmp_path / "s")
    in_process = SessionWriter(tmp_path / "button")  # the viewer's record button: same writer
    engine.add_listener(in_process.listener())
    recorder = Recorder(writer, source=None, results=pusher.address, idle_timeout_s=60.0)
    thread = threading.Thread(target=recorder.run)
    thread.start()
    try:
        live = [engine.process(as_frame(frame, seq)) for seq, frame in enumerate(movie(2))]
        deadline = time.monotonic() + 30
        while recorder.summary.results < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        recorder.stop()
    finally:
        thread.join(60)
        pusher.close()
        writer.close()
        in_process.close()
    with SessionReader(tmp_path / "button") as button:
        np.testing.assert_array_equal(button.result(1)[0]["b_x"], live[1].b_x.numpy())
        assert "dropped_so_far" not in button.result_headers[1]  # no runner counters in process
    with SessionReader(tmp_path / "s") as reader:
        assert reader.result_count == 2
        maps, header = reader.result(1)
        np.testing.assert_array_equal(maps["phi_m"], live[1].phi_m.numpy())
        np.testing.assert_array_equal(maps["b_y"], live[1].b_y.numpy())
        assert header["iterations"] == live[1].iterations and header["warm"] is True
        assert header["method"] == "siprad" and header["frame"] == {"temperature_k": 30.0}
        assert header["loss"] == pytest.approx(live[1].loss, rel=1e-6)
        assert reader.engine["config"]["siprad"]["pretrain_iterations"] == 40


def test_export_takes_the_siprad_results_of_a_mixed_session(tmp_path) -> None:
    with SessionWriter(tmp_path / "s") as writer:
        for seq in range(3):  # instant answers of frames 0-2, SIPRAD refinement of frame 1
            header, arrays = fake_result(seq)
            assert writer.add_result({**header, "method": "sitie"}, arrays)
        assert writer.add_result(*fake_result(1))
    with SessionReader(tmp_path / "s") as reader:
        assert reader.result_indices() == [3]
        assert reader.result_indices("sitie") == [0, 1, 2]
        phi_path, _ = export_tiff(reader, tmp_path / "x")
        assert colour_movie(reader, method="sitie").shape[0] == 3
        with pytest.raises(InputError, match="no reconstructions by amortised"):
            export_tiff(reader, tmp_path / "y", method="amortised")
    with tifffile.TiffFile(phi_path) as tiff:
        assert tiff.asarray().shape == (1, *SHAPE)
        assert '"method": "siprad"' in tiff.shaped_metadata[0]["info"]


def test_an_encrypted_results_path_reaches_only_the_recorder_with_the_key(tmp_path) -> None:
    public, secret = zmq.curve_keypair()
    for key, expected in ((None, 0), (public, 3)):
        pusher = ResultPusher("tcp://127.0.0.1:*", timeout_s=5.0, curve_secret_key=secret)
        writer = SessionWriter(tmp_path / f"s{expected}")
        recorder = Recorder(
            writer, source=None, results=pusher.address, idle_timeout_s=2.0, results_curve_key=key
        )
        thread = threading.Thread(target=recorder.run)
        thread.start()
        try:  # without the key the handshake fails: the engine times out, nothing arrives
            sent = [pusher.push(*fake_result(seq)) for seq in range(3)]
        finally:
            thread.join(60)
            pusher.close()
            writer.close()
        assert recorder.summary.results == expected
        assert sum(sent) == expected


def test_an_encrypted_bridge_records_with_its_public_key(tmp_path) -> None:
    from acquisition_bridge.protocol import Frame
    from acquisition_bridge.transport import Publisher
    from tests.bridge.conftest import CAMERA_MICROSCOPE

    public, secret = zmq.curve_keypair()
    frames = np.arange(3 * 6 * 5, dtype="<u2").reshape(3, 6, 5)
    with Publisher(
        "tcp://127.0.0.1:*",
        record_bind="tcp://127.0.0.1:*",
        record_timeout_s=10.0,
        curve_secret_key=secret,
    ) as publisher:
        writer = SessionWriter(tmp_path / "s")
        recorder = Recorder(
            writer,
            source=publisher.record_address,
            idle_timeout_s=5.0,
            curve_server_key=public,
        )
        thread = threading.Thread(target=recorder.run)
        thread.start()
        try:  # the record path waits for the recorder (lossless): no frame is lost
            for pixels in frames:
                publisher.publish(Frame(pixels, dict(CAMERA_MICROSCOPE)))
            publisher.end_of_stream()
        finally:
            thread.join(60)
            writer.close()
    assert recorder.summary.frames == 3
    with SessionReader(tmp_path / "s") as reader:
        np.testing.assert_array_equal(reader.frame(2)[0], frames[2])
