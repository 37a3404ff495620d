"""The drift-registered running mean behind the instant answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lorentz_live.live import LiveConfig, LiveEngine
from lorentz_live.live.average import RunningMean
from lorentz_live.live.methods import SitieMethod, TransferCache, wiener_sitie
from tests.live.conftest import PARAMS, MovieFrame, as_frame, b_correlation, movie


def image_of(frame: MovieFrame) -> torch.Tensor:
    return torch.from_numpy(frame.image.astype(np.float32))


def rolled(frames: list[MovieFrame], step_px: int) -> list[MovieFrame]:
    """The movie with an extra drift of ``step_px`` px per frame in y and x (periodic field)."""
    return [
        MovieFrame(
            np.roll(frame.image, (i * step_px, i * step_px), (0, 1)),
            torch.roll(frame.phase, (i * step_px, i * step_px), (0, 1)),
        )
        for i, frame in enumerate(frames)
    ]


@pytest.mark.parametrize("step_px", [0, 3])
def test_running_mean_beats_the_single_frame(step_px: int) -> None:
    """Noise 0.5, frames 4-7 of 3 seeds: the running mean (weight 0.3) raised B
    correlation over single-frame Wiener-SITIE on every frame, measured
    +0.001..+0.020 with the movie's own 0.25 px/frame drift; with 3 px/frame
    more the registration keeps it above too (it would smear without)."""
    gains = []
    for seed in range(3):
        single, mean = SitieMethod(), SitieMethod(average=0.3)
        for seq, frame in enumerate(rolled(movie(8, seed=seed), step_px)):
            one = single.reconstruct(as_frame(frame, seq), image_of(frame))
            answer = mean.reconstruct(as_frame(frame, seq), image_of(frame))
            if seq >= 4:
                assert answer.stop_reason == "one pass, running mean"
                assert abs(answer.drift_px[0] - step_px) < 1.5
                gains.append(
                    b_correlation(answer.phi_m, frame.phase) - b_correlation(one.phi_m, frame.phase)
                )
    assert min(gains) > -0.005 and np.mean(gains) > 0.003, gains


def test_the_mean_restarts_when_frames_do_not_pair() -> None:
    """First frame, a defocus change, a gap in seq and a new texture (low noise:
    at noise 0.5 one frame cannot tell it from noise) each restart the mean."""
    frames = movie(4, noise=0.05, seed=1)
    other = movie(1, noise=0.05, seed=2)[0]
    other = MovieFrame(np.ascontiguousarray(other.image.T), other.phase.T)  # a new texture
    transfers = TransferCache()
    mean = RunningMean(0.3)
    changed = PARAMS.replace(defocus_nm=-8.0e5)
    cases = [
        (frames[0], 0, PARAMS, "first frame"),
        (frames[1], 1, PARAMS, None),
        (frames[2], 2, changed, "new microscope parameters or shape"),
        (frames[3], 5, changed, "seq 2 -> 5"),
        (frames[3], 6, changed, None),
        (other, 7, changed, "frame change ratio"),
    ]
    for frame, seq, params, reason in cases:
        norm = image_of(frame) / image_of(frame).mean()
        update = mean.update(norm, seq, params, transfers(tuple(norm.shape), params))
        assert update.reset == (reason is not None)
        if reason is None:
            assert not torch.equal(update.mean, norm)
        else:
            assert update.reason is not None and update.reason.startswith(reason)
            assert torch.equal(update.mean, norm)
    assert mean.resets == 1  # the texture change; the others did not pair at all


def test_engine_instant_path_uses_the_configured_mean() -> None:
    frames = movie(3, seed=0)
    plain = LiveEngine(LiveConfig(instant_average=1.0))
    default = LiveEngine(LiveConfig())
    for seq, frame in enumerate(frames):
        one = plain.answer(as_frame(frame, seq))
        averaged = default.answer(as_frame(frame, seq))
    assert (one.method, averaged.method) == ("sitie", "sitie")
    assert one.stop_reason == "one pass" and averaged.stop_reason == "one pass, running mean"
    default.request_cold_restart("test")
    restarted = default.answer(as_frame(frames[0], 3))
    assert restarted.stop_reason == "one pass"


def fading_movie(count: int, keep_from: int, seed: int) -> list[MovieFrame]:
    """``count`` still frames of a 64 px bubble lattice (noise 0.5, own noise per frame);
    from frame ``keep_from`` on only every third bubble is left (the rest vanished)."""
    from lorentz_live.physics import (
        bubble_texture,
        film_magnetic_phase,
        hexagonal_lattice,
        simulate_image,
    )
    from tests.live.conftest import PIXEL_NM, SHAPE

    bubbles = hexagonal_lattice(SHAPE, PIXEL_NM, 100.0, 30.0, jitter_nm=4.0, seed=3)
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for index in range(count):
        kept = bubbles if index < keep_from else bubbles[::3]
        phase = film_magnetic_phase(bubble_texture(SHAPE, PIXEL_NM, kept), 2.0e5, 100.0, PIXEL_NM)
        image = simulate_image(phase, PARAMS) + 0.5 * torch.randn(SHAPE, generator=generator)
        frames.append(MovieFrame(image.numpy(), phase))
    return frames


def test_the_mean_follows_a_fading_texture_and_not_the_noise() -> None:
    """Noise 0.5 (64 px): on still frames the signal-power ratio of frame to mean
    stays near 1 and the weight at its 0.3; when two thirds of the bubbles vanish
    the ratio falls and the mean restarts from the frame (so no ghost of the old
    lattice is left), which the frame-difference test alone does not do at this
    noise.  Measured over seeds 0-2: still ratios 0.93-1.15 (frames 2-5),
    vanished 0.13-0.15; B of the old mean 0.59-0.61 against 0.93-0.96 for the
    frame alone."""
    transfers = TransferCache()
    still, vanished = [], []
    for seed in range(3):
        frames = fading_movie(7, keep_from=6, seed=seed)
        mean, plain = RunningMean(0.3), RunningMean(0.3, follow_fading=False)
        for seq, frame in enumerate(frames):
            norm = image_of(frame) / image_of(frame).mean()
            transfer = transfers(tuple(norm.shape), PARAMS)
            update = mean.update(norm, seq, PARAMS, transfer)
            old = plain.update(norm, seq, PARAMS, transfer)
            if 2 <= seq < 6:
                assert not update.reset and update.weight == pytest.approx(0.3)
                still.append(update.texture_ratio)
            elif seq == 6:
                vanished.append(update.texture_ratio)
                assert update.reset and update.reason is not None
                assert update.reason.startswith("texture fading")
                assert not old.reset  # the frame-difference test alone misses it
                one = b_correlation(wiener_sitie(norm, PARAMS, transfer)[0], frame.phase)
                ghost = b_correlation(wiener_sitie(old.mean, PARAMS, transfer)[0], frame.phase)
                assert ghost < one - 0.05, (ghost, one)
    assert min(still) > 0.7 and max(vanished) < 0.4, (still, vanished)
