"""FrameGuard logic: binning, intensity baseline, misfit rollback, errors (a scripted engine)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from lorentz_live.live.engine import LiveFrame
from lorentz_live.live.guards import BadFrame, FrameGuard, GuardConfig, bin_and_crop
from tests.live.conftest import PARAMS


@dataclass
class Result:
    final_loss: float
    warm: bool
    method: str = "siprad"
    metadata: dict = field(default_factory=dict)


class Refiner:
    """Its state is the seq of the last frame it took."""

    def __init__(self) -> None:
        self.state = None
        self.restarts: list[str] = []

    def request_restart(self, reason: str) -> None:
        self.restarts.append(reason)


class ScriptedEngine:
    """Answers and refines at once with the next scripted misfit (or raises it)."""

    def __init__(self, losses):
        self.losses = list(losses)
        self.refiner = Refiner()
        self.listeners = []
        self.seen: list[tuple[int, tuple[int, int], float]] = []

    def add_listener(self, listener) -> None:
        self.listeners.append(listener)

    def request_cold_restart(self, reason: str) -> None:
        self.refiner.request_restart(reason)

    def submit(self, frame: LiveFrame):
        loss = self.losses.pop(0)
        if isinstance(loss, Exception):
            raise loss
        self.seen.append((frame.seq, frame.image.shape, frame.params.pixel_size_nm))
        warm = self.refiner.state is not None and not self.refiner.restarts
        self.refiner.restarts.clear()
        self.refiner.state = frame.seq
        result = Result(loss, warm)
        for listener in self.listeners:
            listener(result)
        return result


class Guarded:
    """FrameGuard over a ScriptedEngine, called like the runner calls it."""

    def __init__(self, losses, config: GuardConfig | None = None) -> None:
        self.engine = ScriptedEngine(losses)
        self.guard = FrameGuard(self.engine, config)

    def __call__(self, frame: LiveFrame):
        return self.guard.submit(frame, self.engine.submit)


def frame(seq: int, image: np.ndarray) -> LiveFrame:
    return LiveFrame(image, PARAMS, seq, time.time_ns(), {})


def normal(seq: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seq)
    return (1000 * (1 + 0.3 * rng.standard_normal((size, size)))).clip(0).astype(np.uint16)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((4096, 4096), (8, 4096, 4096)),
        ((512, 512), (1, 512, 512)),
        ((513, 100), (2, 513 // 2 * 2, 100)),
        ((16, 4096), (2, 16, 1024)),
        ((1, 4096), (1, 1, 512)),
    ],
)
def test_bin_and_crop(shape, expected) -> None:
    assert bin_and_crop(shape, 512, 8) == expected


def test_large_frames_are_binned_and_tiny_ones_refused() -> None:
    run = Guarded([0.1], GuardConfig(max_side_px=64))
    run(frame(0, np.ones((256, 200), np.uint16) * 7))
    assert run.engine.seen == [(0, (64, 50), PARAMS.pixel_size_nm * 4)]
    with pytest.raises(BadFrame) as error:
        run(frame(1, np.ones((4, 300), np.uint16)))
    assert error.value.reason == "size" and run.guard.counts["size"] == 1


@pytest.mark.parametrize(
    "glitch",
    [
        np.full((32, 32), 2, np.uint16),  # beam blanked: dark level
        np.pad(np.full((1, 1), 60000, np.uint16), ((10, 21), (5, 26))),  # hot pixel on zeros
        (1000 * np.random.default_rng(0).random((32, 32)) ** 8).astype(np.uint16),  # spiky
    ],
    ids=["blanked", "hot-pixel", "spiky"],
)
def test_glitches_are_skipped_and_do_not_touch_the_state(glitch) -> None:
    run = Guarded([0.1] * 10)
    for seq in range(4):
        run(frame(seq, normal(seq)))
    with pytest.raises(BadFrame) as error:
        run(frame(4, glitch))
    assert error.value.reason == "glitch"
    assert run.engine.refiner.state == 3  # the glitch never reached the engine
    assert run(frame(5, normal(5))).warm


def test_a_lasting_intensity_change_becomes_the_new_baseline() -> None:
    run = Guarded([0.1] * 10, GuardConfig(accept_after=3))
    for seq in range(4):
        run(frame(seq, normal(seq)))
    brighter = [normal(seq) * 10 for seq in range(4, 7)]
    for seq, image in zip(range(4, 6), brighter, strict=False):
        with pytest.raises(BadFrame):
            run(frame(seq, image))
    result = run(frame(6, brighter[2]))  # the third in a row: accepted, cold
    assert not result.warm
    assert run.guard.counts["glitch"] == 2


def test_a_misfit_outlier_is_published_but_its_state_is_not_carried() -> None:
    run = Guarded([0.10, 0.11, 0.09, 0.10, 2.0, 0.1, 5.0, 5.0, 5.0, 0.1])
    for seq in range(4):
        run(frame(seq, normal(seq)))
    outlier = run(frame(4, normal(4)))
    assert "state not carried" in outlier.metadata["guard"]
    assert run.engine.refiner.state == 3  # rolled back to the last good frame
    assert run(frame(5, normal(5))).warm
    notes = [run(frame(seq, normal(seq))).metadata.get("guard") for seq in (6, 7, 8)]
    assert "next frame cold" in notes[-1]  # three outliers in a row: a real change
    assert not run(frame(9, normal(9))).warm


def test_an_engine_error_is_counted_and_the_next_frame_starts_cold() -> None:
    run = Guarded([0.1, RuntimeError("boom"), 0.1])
    run(frame(0, normal(0)))
    with pytest.raises(BadFrame) as error:
        run(frame(1, normal(1)))
    assert error.value.reason == "error" and "RuntimeError: boom" in str(error.value)
    assert not run(frame(2, normal(2))).warm
