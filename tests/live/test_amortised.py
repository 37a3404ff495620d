"""The amortised network: starts as Wiener-SITIE, learns through the forward model, causal."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from lorentz_live.live import LiveEngine
from lorentz_live.live.amortised import AmortisedConfig, AmortisedMethod
from lorentz_live.live.methods import SitieMethod
from tests.helpers import correlation
from tests.live.conftest import PARAMS, MovieFrame, as_frame, b_correlation, movie


def image_of(frame) -> torch.Tensor:
    return torch.from_numpy(frame.image.astype(np.float32))


def test_untrained_network_answers_wiener_sitie() -> None:
    frame = as_frame(movie(1)[0], 0)
    answer = AmortisedMethod(background=False).reconstruct(frame, image_of(frame))
    sitie = SitieMethod().reconstruct(frame, image_of(frame))
    torch.testing.assert_close(answer.phi_m, sitie.phi_m, atol=1e-5, rtol=0)
    assert (answer.warm, answer.restart_reason) == (False, "untrained: Wiener-SITIE")


def test_training_through_the_forward_model_lowers_the_image_misfit() -> None:
    """Low noise (0.05): after 5 frames of next-frame training the answer fits its
    own frame better than Wiener-SITIE, for each of 3 seeds (measured misfit
    ratios 0.157-0.167)."""
    ratios = []
    for seed in range(3):
        frames = movie(6, noise=0.05, seed=seed)
        method = AmortisedMethod(AmortisedConfig(seed=seed), background=False)
        for seq, frame in enumerate(frames[:5]):
            method.reconstruct(as_frame(frame, seq), image_of(frame))
            assert method.train_pending() == (0 if seq == 0 else 30)
        last = as_frame(frames[5], 5)
        answer = method.reconstruct(last, image_of(frames[5]))
        sitie = SitieMethod().reconstruct(last, image_of(frames[5]))
        ratios.append(answer.loss[0] / sitie.loss[0])
        assert method.steps == 120
    assert max(ratios) < 0.5, ratios


def test_online_training_on_a_still_texture_beats_its_sitie_input() -> None:
    """The network alone (no running mean), a still texture, noise 0.5, 9 pairs of
    consecutive frames (270 steps): B correlation of the 10th answer against
    single-frame Wiener-SITIE of that frame, measured 0.949 / 0.968 / 0.958 against
    0.921 / 0.921 / 0.920 for seeds 0-2 (the network integrates the frames)."""
    gains = []
    for seed in range(3):
        still = movie(1, noise=0.0)[0]
        rng = np.random.default_rng(seed)
        method = AmortisedMethod(AmortisedConfig(seed=seed, average=1.0), background=False)
        for seq in range(10):
            pixels = (still.image + 0.5 * rng.standard_normal(still.image.shape)).astype(np.float32)
            frame = as_frame(MovieFrame(pixels, still.phase), seq)
            answer = method.reconstruct(frame, torch.from_numpy(pixels))
            sitie = SitieMethod().reconstruct(frame, torch.from_numpy(pixels))
            method.train_pending()
        gains.append(
            b_correlation(answer.phi_m, still.phase) - b_correlation(sitie.phi_m, still.phase)
        )
    assert min(gains) > 0.01 and np.mean(gains) > 0.02, gains


def test_pairs_are_consecutive_frames() -> None:
    """A gap in seq forms no training pair (and drops the old ones)."""
    frames = movie(3)
    method = AmortisedMethod(background=False)
    for seq, frame in zip((0, 1), frames, strict=False):
        method.reconstruct(as_frame(frame, seq), image_of(frame))
    assert len(method._pairs) == 1
    method.reconstruct(as_frame(frames[2], 5), image_of(frames[2]))
    assert len(method._pairs) == 0 and method.train_pending() == 0


@pytest.mark.parametrize("keep_weights", [True, False])
def test_a_microscope_change_keeps_or_resets_the_weights(keep_weights: bool) -> None:
    """After a defocus change the running mean restarts; a fresh network answers
    exactly its input (Wiener-SITIE of the frame), a kept one does not."""
    frames = movie(3)
    method = AmortisedMethod(AmortisedConfig(keep_weights=keep_weights), background=False)
    for seq, frame in enumerate(frames[:2]):
        method.reconstruct(as_frame(frame, seq), image_of(frame))
        method.train_pending()
    changed = as_frame(frames[2], 2, PARAMS.replace(defocus_nm=-8.0e5))
    answer = method.reconstruct(changed, image_of(frames[2]))
    sitie = SitieMethod().reconstruct(changed, image_of(frames[2]))
    same = torch.allclose(answer.phi_m, sitie.phi_m, atol=1e-5, rtol=0)
    assert same != keep_weights and method.resets == (0 if keep_weights else 1)


def test_background_training_and_a_microscope_change_drops_the_pairs() -> None:
    frames = movie(3)
    method = AmortisedMethod()
    try:
        for seq, frame in enumerate(frames):
            method.reconstruct(as_frame(frame, seq), image_of(frame))
        deadline = time.monotonic() + 60.0
        while method.steps < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert method.steps >= 30
        changed = as_frame(frames[0], 3, PARAMS.replace(defocus_nm=-8.0e5))
        method.reconstruct(changed, image_of(frames[0]))
        assert len(method._pairs) == 0  # a new forward model: no pair across the change
    finally:
        method.close()
    assert method._thread is not None and not method._thread.is_alive()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_method_runs_on_cuda(live_config) -> None:
    """The instant, amortised and SIPRAD paths on the GPU; results come back on the CPU."""
    config = dataclasses.replace(live_config, device="cuda", instant="amortised")
    engine = LiveEngine(config)
    frames = movie(3)
    for seq, frame in enumerate(frames):
        answer = engine.answer(as_frame(frame, seq))
        refined = engine.process(as_frame(frame, seq))
        for result in (answer, refined):
            assert result.phi_m.device.type == "cpu"
            assert bool(torch.isfinite(result.phi_m).all())
    assert correlation(refined.phi_m, frames[-1].phase) > 0.8
    engine.instant.close()
