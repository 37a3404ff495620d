"""Simulated tilt series -> live phase maps -> collector -> tomogram (no sockets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from acquisition_bridge.sources import EndOfSource, SourceError
from lorentz_live.tilt_simulator import TiltSeriesSource
from lorentz_live.tomo.collect import TiltSeriesCollector
from lorentz_live.tomo.fields import nrmse
from lorentz_live.tomo.projector import tilt_phase


def test_simulated_tilt_series_headers_and_images(tmp_path: Path) -> None:
    truth = tmp_path / "truth.npz"
    source = TiltSeriesSource(size_px=16, limit_deg=10, step_deg=5, fps=None, truth=truth)
    frames = []
    with source:
        while True:
            try:
                frame = source.read(1.0)
            except EndOfSource:
                break
            frames.append(frame)
    assert [f.metadata["series_role"] for f in frames] == ["tilt_x"] * 5 + ["tilt_y"] * 5
    assert [f.metadata["tilt_x_deg"] for f in frames[:5]] == [-10, -5, 0, 5, 10]
    assert [f.metadata["tilt_y_deg"] for f in frames[5:]] == [-10, -5, 0, 5, 10]
    assert len({f.metadata["series_id"] for f in frames}) == 2
    image = frames[2].pixels
    assert image.shape == (16, 16) and abs(float(image.mean()) - 1.0) < 0.05
    assert image.std() > 1e-3  # the texture shows up in the defocused image
    with np.load(truth) as data:
        assert data["b"].shape == (3, 16, 16, 16)
    with pytest.raises(SourceError, match="texture"):
        TiltSeriesSource(texture="donut")


def test_collector_reconstructs_a_completed_pair_from_live_phase_maps() -> None:
    # stand in for the engine: the phase maps it would reconstruct from the frames
    source = TiltSeriesSource(size_px=24, limit_deg=60, step_deg=5, fps=None, seed=2)
    results = []
    collector = TiltSeriesCollector(lambda result, info: results.append((result, info)))
    with source:
        for axis, angle in source.plan:
            phi_m = tilt_phase(source._mu0_m, [angle], axis, source.params.pixel_size_nm)[0]
            kept = collector.add(source.metadata(axis, angle), phi_m, source.params.pixel_size_nm)
            assert kept
        assert not collector.add({"series_role": "movie"}, phi_m, 5.0)
        ids = sorted({source.metadata(a, 0.0)["series_id"] for a in "xy"})
        assert collector.progress()[ids[0]]["tilts"] == 25
        assert not collector.end_series(ids[0])  # one series alone is not enough
        assert collector.end_series(ids[1])
        assert collector.wait(timeout_s=120)
    assert len(results) == 1
    result, info = results[0]
    assert info["tilts_x"] == info["tilts_y"] == 25
    assert result.b.shape == (3, 24, 24, 24)
    from lorentz_live.tomo.textures import generate_sample

    sample = generate_sample(source.texture, 24, 2)
    assert nrmse(result.b, sample.induction_t, sample.mask) < 0.4
    assert torch.isfinite(result.b_vfet).all()
