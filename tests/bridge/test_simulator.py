"""The field-cooling simulator plug-in (lorentz_live.simulator) as a bridge source."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
import torch

from acquisition_bridge.cli import main
from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.transport import Subscriber
from lorentz_live.physics import MicroscopeParams, forward_image, transfer_function
from lorentz_live.simulator import FieldCoolingMovie, FieldCoolingSettings, SimulateSource

PARAMS = MicroscopeParams(kv=300.0, pixel_size_nm=5.0, defocus_nm=-4.0e5)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """As the simulate source does: small frames are far faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _settings(**changes) -> FieldCoolingSettings:
    values = dict(size_px=48, params=PARAMS, ramp_frames=12, dose_e_per_px=0.0, seed=3)
    values.update(changes)
    return FieldCoolingSettings(**values)


def _read(source: SimulateSource, count: int) -> list:
    with source:
        return [source.read(1.0) for _ in range(count)]


def test_frame_metadata_carries_the_simulation_parameters(tmp_path) -> None:
    settings = _settings(dose_e_per_px=80.0)
    frames = _read(SimulateSource(settings, fps=0), 12)
    for index, frame in enumerate(frames):
        assert frame.pixels.dtype == np.dtype("<u2")
        assert frame.pixels.shape == (48, 48)
        assert {key: frame.metadata[key] for key in MICROSCOPE_KEYS} == PARAMS.to_dict()
        temperature, field_mt = settings.conditions(index)
        assert frame.metadata["temperature_k"] == temperature
        assert frame.metadata["field_mt"] == field_mt
        assert frame.metadata["extra"]["frame_index"] == index
        assert frame.metadata["series_role"] == "movie"
    temperatures = [f.metadata["temperature_k"] for f in frames]
    fields = [f.metadata["field_mt"] for f in frames]
    assert temperatures[0] == 300.0 and temperatures[-1] == 100.0
    assert fields[0] == 100.0 and fields[-1] == 250.0
    assert np.all(np.diff(temperatures) <= 0) and np.all(np.diff(fields) >= 0)
    # shot noise at the chosen dose: counts average the dose (the image is mean-normalised)
    counts = np.stack([f.pixels for f in frames]).astype(float)
    assert counts.mean() == pytest.approx(80.0, rel=0.02)


def test_truth_file_holds_the_phase_that_made_each_image(tmp_path) -> None:
    truth = tmp_path / "truth.h5"
    settings = _settings(contaminants=0, stage_drift_nm=(1.5, -0.5))
    frames = _read(SimulateSource(settings, fps=0, truth=truth), 8)
    transfer = transfer_function((48, 48), PARAMS)
    with h5py.File(truth, "r") as handle:
        assert handle["phi_m"].shape == (8, 48, 48)
        assert handle.attrs["defocus_nm"] == PARAMS.defocus_nm
        for index, frame in enumerate(frames):
            phi_m = torch.from_numpy(handle["phi_m"][index])
            image = forward_image(phi_m, transfer).numpy()
            np.testing.assert_allclose(frame.pixels, image, rtol=1e-4, atol=1e-5)
            assert handle["temperature_k"][index] == frame.metadata["temperature_k"]
            assert handle["bubbles"][index] == frame.metadata["extra"]["bubbles"]
            np.testing.assert_allclose(handle["stage_shift_nm"][index], (1.5 * index, -0.5 * index))
        # above the Curie temperature there is no magnetisation, hence no phase
        assert np.abs(handle["phi_m"][0]).max() == 0.0
        assert np.abs(handle["phi_m"][5]).max() > 0.1


def test_bubbles_nucleate_while_cooling_and_collapse_in_field() -> None:
    settings = _settings(size_px=64, ramp_frames=20)
    movie = FieldCoolingMovie(settings)
    counts = [len(movie.next().bubbles) for _ in range(20)]
    cooled = 9  # frames 0-9 cool at constant field, then the field rises
    assert settings.conditions(cooled)[1] == settings.field_start_mt
    assert settings.conditions(cooled + 1)[1] > settings.field_start_mt
    assert counts[0] == 0  # above the Curie temperature
    assert counts[cooled] == max(counts) > 5
    assert np.all(np.diff(counts[: cooled + 1]) >= 0)  # only gained while cooling
    assert np.all(np.diff(counts[cooled:]) <= 0)  # only lost while the field rises
    assert counts[-1] < counts[cooled] / 2


def test_movie_is_reproducible_from_its_seed() -> None:
    first = FieldCoolingMovie(_settings(dose_e_per_px=50.0, contaminants=3))
    second = FieldCoolingMovie(_settings(dose_e_per_px=50.0, contaminants=3))
    other = FieldCoolingMovie(_settings(dose_e_per_px=50.0, contaminants=3, seed=4))
    for _ in range(7):
        a, b, c = first.next(), second.next(), other.next()
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.phi_m, b.phi_m)
    assert not np.array_equal(a.image, c.image)


def test_bubbles_jiggle_and_the_lattice_drifts() -> None:
    movie = FieldCoolingMovie(_settings(ramp_frames=4, jiggle_nm=3.0, lattice_drift_nm=(0.0, 2.0)))
    frames = [movie.next() for _ in range(12)]
    late = [np.array([(b.y_nm, b.x_nm) for b in f.bubbles]) for f in frames[4:]]
    steps = np.diff(np.stack(late), axis=0)  # the same sites stay occupied after the ramp
    size = 48 * PARAMS.pixel_size_nm
    steps = (steps + size / 2) % size - size / 2
    assert np.mean(steps[..., 1]) == pytest.approx(2.0, abs=0.5)  # drift along x
    assert 0.3 < np.std(steps[..., 0]) < 5.0  # thermal jiggle along y


def test_simulate_command_publishes_frames_that_match_the_truth_file(tmp_path) -> None:
    truth = tmp_path / "truth.h5"
    record = f"ipc://{tmp_path}/record"
    args = ["simulate", "--bind", "tcp://127.0.0.1:*", "--record-bind", record, "--frames", "6"]
    args += ["--fps", "0", "--size", "32", "--dose", "40", "--truth", str(truth), "--quiet"]
    codes: list[int] = []
    with Subscriber(record, mode="all") as recorder:
        thread = threading.Thread(target=lambda: codes.append(main(args)))
        thread.start()
        frames = []
        while (message := recorder.recv(20.0)) is not None and message.kind != "end_of_stream":
            if message.kind == "frame":
                frames.append(message)
        thread.join(20.0)
    assert codes == [0]
    assert [m.seq for m in frames] == list(range(6))
    with h5py.File(truth, "r") as handle:
        assert handle["phi_m"].shape == (6, 32, 32)
        for message in frames:
            assert message.header["extra"]["frame_index"] == message.seq
            assert message.header["temperature_k"] == handle["temperature_k"][message.seq]
            assert message.header["extra"]["bubbles"] == handle["bubbles"][message.seq]
            assert message.microscope()["defocus_nm"] == -1.0e6
            assert message.pixels.dtype == np.dtype("<u2")
