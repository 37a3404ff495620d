"""The ``tomo`` block of results headers: progress of live tilt series, written volumes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from acquisition_bridge.protocol import Frame as WireFrame
from acquisition_bridge.protocol import pack_header, unpack_header
from acquisition_bridge.results import RESULT_LIMITS, ResultSubscriber
from acquisition_bridge.transport import Publisher
from lorentz_live.live import LiveEngine
from lorentz_live.live.runner import LiveRunner
from lorentz_live.live.tomo_status import SERIES_LISTED, TomoStatus
from lorentz_live.tomo.collect import TiltSeriesCollector
from tests.live.conftest import PARAMS, movie

pytestmark = pytest.mark.timeout(240)


def tilt(role: str, series_id: str, angle: float) -> dict:
    return {"series_role": role, "series_id": series_id, f"{role}_deg": angle, "series_tilts": 3}


def test_block_lists_series_progress_and_written_volumes(tmp_path: Path) -> None:
    collector = TiltSeriesCollector(lambda result, info: None)
    status = TomoStatus(collector.progress)
    assert status.header() == {"series": {}, "volumes": []}
    phase = torch.zeros(8, 8)
    for angle in (-10.0, 0.0):
        collector.add(tilt("tilt_x", "sx", angle), phase, 2.0)
    collector.add(tilt("tilt_y", "sy", 5.0), phase, 2.0)
    info = {"series_x": "sx", "tilts_x": 2, "voxel_size_nm": 2}
    status.written(tmp_path / "tomo_sx_sy.npz", info)
    block = status.header()
    assert block["series"]["sx"] == {
        "role": "tilt_x",
        "tilts": 2,
        "range_deg": [-10.0, 0.0],
        "complete": False,
    }
    assert block["series"]["sy"]["tilts"] == 1
    (volume,) = block["volumes"]
    assert volume["path"] == str((tmp_path / "tomo_sx_sy.npz").resolve())
    assert volume["series_x"] == "sx" and volume["voxel_size_nm"] == 2.0
    packed = pack_header({"tomo": block})  # msgpack-able
    assert unpack_header(packed, RESULT_LIMITS)["tomo"] == block
    for index in range(2 * SERIES_LISTED):
        collector.add(tilt("tilt_x", f"later{index}", 0.0), phase, 2.0)
    assert list(status.header()["series"]) == [f"later{i}" for i in range(SERIES_LISTED, 8)]


def test_runner_adds_the_block_to_every_published_result(live_config) -> None:
    collector = TiltSeriesCollector(lambda result, info: None)
    status = TomoStatus(collector.progress)
    publisher = Publisher("tcp://127.0.0.1:*", source="tilt-camera")
    runner = LiveRunner(
        LiveEngine(live_config),
        publisher.address,
        results_bind="tcp://127.0.0.1:*",
        result_subscribers=1,
        refine=False,
        tomo=collector,
        header_extras=lambda: {"tomo": status.header()},
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    results = None
    try:
        assert runner.wait_started(10.0)
        results = ResultSubscriber(runner.results_address)
        assert publisher.wait_for_subscribers(1, timeout_s=10.0)
        images = movie(2)
        seen: list[dict] = []
        for index, angle in enumerate((-10.0, 10.0)):
            header = {**PARAMS.to_dict(), **tilt("tilt_x", "sx", angle)}
            publisher.publish(WireFrame(np.asarray(images[index].image), header))
            deadline = time.monotonic() + 60.0
            while len(seen) <= index and time.monotonic() < deadline:
                result = results.recv_latest(timeout_s=0.5)
                if result is not None:
                    seen.append(result.header)
        assert len(seen) == 2
        assert seen[0]["frame"]["series_tilts"] == 3  # frame metadata pass through
        # the collector takes a frame's phase after its result is published
        assert seen[1]["tomo"]["series"]["sx"]["tilts"] >= 1
        assert seen[1]["tomo"]["volumes"] == []
    finally:
        runner.stop()
        thread.join(30.0)
        if results is not None:
            results.close()
        publisher.close()


def test_run_tomo_out_announces_every_written_volume(tmp_path: Path) -> None:
    """The wiring of ``run --tomo-out``: the collector's writer reports to the status."""
    from types import SimpleNamespace

    from lorentz_live.cli import _tomo_collector

    collector, status = _tomo_collector(str(tmp_path))
    b = torch.zeros(3, 4, 4, 4)
    info = {"series_x": "sx", "series_y": "sy", "tilts_x": 5, "tilts_y": 6, "voxel_size_nm": 3.0}
    collector.on_result(SimpleNamespace(b=b, b_vfet=b), info)
    (volume,) = status.header()["volumes"]
    assert Path(volume["path"]) == (tmp_path / "tomo_sx_sy.npz").resolve()
    assert Path(volume["path"]).is_file() and volume["tilts_y"] == 6
