"""The method interface: instant SITIE, restarts by parameter equality, the pipeline, purity."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from lorentz_live.errors import InputError
from lorentz_live.live import Estimate, LiveEngine, LiveFrame, LivePipeline
from lorentz_live.live.interface import params_change
from lorentz_live.physics import sitie_phase
from tests.helpers import correlation
from tests.live.conftest import PARAMS, as_frame, b_correlation, movie


def test_engine_modules_load_neither_zmq_nor_the_bridge() -> None:
    code = (
        "import sys, lorentz_live.live.engine, lorentz_live.live.pipeline, acquisition_bridge.keys;"
        "bad = [m for m in ('zmq', 'msgpack', 'acquisition_bridge.transport') if m in sys.modules];"
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_restart_reasons_come_from_parameter_equality() -> None:
    assert params_change(None, PARAMS) is None
    assert params_change(PARAMS, PARAMS.replace()) is None
    reason = params_change(PARAMS, PARAMS.replace(kv=300.0, aperture_per_nm=0.5))
    assert "kv changed 200.0 -> 300.0" in reason and "aperture_per_nm" in reason


def test_instant_wiener_sitie_beats_plain_sitie_on_noisy_frames(live_config) -> None:
    """3 noise seeds x 3 frames at noise 0.5: the Wiener filter raised B correlation
    by +0.010..+0.014 on every frame (phase unchanged within 0.002)."""
    engine = LiveEngine(live_config)
    gains = []
    for seed in range(3):
        for seq, frame in enumerate(movie(3, seed=seed)):
            result = engine.answer(as_frame(frame, seq))
            assert (result.method, result.iterations, result.warm) == ("sitie", 0, False)
            plain = sitie_phase(torch.from_numpy(frame.image), PARAMS)
            gains.append(
                b_correlation(result.phi_m, frame.phase) - b_correlation(plain, frame.phase)
            )
            assert correlation(result.phi_m, frame.phase) > correlation(plain, frame.phase) - 0.01
    assert np.mean(gains) > 0.005
    assert engine.cold_starts == 0  # the instant path never touched SIPRAD


class SlowRefiner:
    """A stand-in refiner that blocks until released: a cold start that never ends."""

    method = "siprad"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.seen: list[int] = []

    def request_restart(self, reason: str) -> None:
        pass

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate:
        self.entered.set()
        assert self.release.wait(60.0)
        self.seen.append(frame.seq)
        zeros = torch.zeros_like(image)
        return Estimate(zeros, zeros + 1.0, [0.0], 1, "test", warm=False)


def test_pipeline_answers_every_frame_while_the_refiner_is_busy(live_config) -> None:
    refiner = SlowRefiner()
    engine = LiveEngine(live_config, refiner=refiner)
    results = []
    engine.add_listener(results.append)
    frames = movie(2)
    with LivePipeline(engine) as pipeline:
        answers = [pipeline.submit(as_frame(frames[0], 0))]
        assert refiner.entered.wait(60.0)  # frame 0 is in refinement
        answers += [pipeline.submit(as_frame(frames[seq % 2], seq)) for seq in range(1, 6)]
        with pytest.raises(InputError, match="frame 6"):
            pipeline.submit(as_frame(frames[0], 6, PARAMS.replace(defocus_nm=0.0)))
        assert [a.method for a in answers] == ["sitie"] * 6  # none waited for the refiner
        refiner.release.set()
        assert pipeline.wait_idle(60.0)
    # frame 0 was taken at once; of 1-5 only the newest waiting one is refined
    assert refiner.seen == [0, 5]
    assert pipeline.superseded == 4 and pipeline.refined == 2
    assert [r.method for r in results].count("siprad") == 2
