"""Cold starts: pre-trained weights cached per (shape, microscope, settings); capped fits go on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lorentz_live.errors import InputError
from lorentz_live.live import LiveConfig, LiveEngine
from lorentz_live.live.pretrained import PretrainedCache, pretrained_key
from lorentz_live.siprad import SipradReconstructor
from tests.live.conftest import PARAMS, as_frame, movie


@pytest.fixture(scope="module")
def frames():
    return movie(3)


@pytest.fixture
def quick(live_config) -> LiveConfig:
    """Short pre-training and fit (the cache, not the accuracy, is tested), cached on disk."""
    siprad = live_config.siprad.replace(pretrain_iterations=20, max_iterations=10)
    return dataclasses.replace(live_config, siprad=siprad, pretrained_cache="disk")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LORENTZ_LIVE_CACHE", str(tmp_path))
    return tmp_path


class PretrainCounter:
    """Records the iterations of every pre-training (any SipradReconstructor) that ran."""

    def __init__(self, monkeypatch) -> None:
        self.runs: list[int] = []
        original = SipradReconstructor._pretrain

        def counted(reconstructor, *args, **kwargs):
            done = original(reconstructor, *args, **kwargs)
            if done:
                self.runs.append(done)
            return done

        monkeypatch.setattr(SipradReconstructor, "_pretrain", counted)


def test_second_cold_start_with_the_same_key_skips_pretraining(
    frames, quick, cache_dir, monkeypatch
) -> None:
    counter = PretrainCounter(monkeypatch)
    # the cached Adam state kept: exactly the miss's fit
    exact = dataclasses.replace(quick, pretrain_top_up=0, cached_learning_rate_scale=None)
    first = LiveEngine(exact)
    result = first.process(as_frame(frames[0], 0))
    assert counter.runs == [quick.siprad.pretrain_iterations]
    assert (first.refiner.pretrained.hits, first.refiner.pretrained.misses) == (0, 1)
    assert len(list(cache_dir.glob("*.pt"))) == 1
    # a new engine (another session): the weights come from disk, no pre-training
    second = LiveEngine(exact)
    again = second.process(as_frame(frames[0], 0))
    assert counter.runs == [quick.siprad.pretrain_iterations]
    assert (second.refiner.pretrained.hits, second.refiner.pretrained.misses) == (1, 0)
    assert not again.warm and again.restart_reason == "first frame"
    # same weights, same input, same seeds: the same result as the pre-training run
    torch.testing.assert_close(again.phi_m, result.phi_m, atol=1e-5, rtol=0)
    # with a top-up: only that many pre-training iterations, on the new frame,
    # and the fit with a fresh Adam at the scaled rate
    config = dataclasses.replace(quick, pretrain_top_up=3, cached_learning_rate_scale=0.5)
    third = LiveEngine(config)
    cold = third.process(as_frame(frames[1], 1))
    assert not cold.warm
    assert counter.runs == [quick.siprad.pretrain_iterations, 3]
    adam = third.refiner.state.optimiser
    assert {group["lr"] for group in adam["param_groups"]} == {0.5 * quick.siprad.learning_rate}
    assert {float(s["step"]) for s in adam["state"].values()} == {3.0 + cold.iterations}
    # the carried policy: the next warm frame keeps the moments, at the configured rate
    warm = third.process(as_frame(frames[2], 2))
    assert warm.warm
    adam = third.refiner.state.optimiser
    assert {group["lr"] for group in adam["param_groups"]} == {quick.siprad.learning_rate}
    steps = {float(s["step"]) for s in adam["state"].values()}
    assert steps == {3.0 + cold.iterations + warm.iterations}
    # an operator restart in the same engine: a hit from memory
    third.request_cold_restart()
    assert not third.process(as_frame(frames[2], 2)).warm
    assert counter.runs[-1] == 3 and third.refiner.pretrained.hits == 2


def test_a_different_microscope_or_shape_is_a_miss(frames, quick, cache_dir, monkeypatch) -> None:
    counter = PretrainCounter(monkeypatch)
    engine = LiveEngine(dataclasses.replace(quick, cold_from_other_conditions=False))
    engine.process(as_frame(frames[0], 0))
    other = PARAMS.replace(defocus_nm=-8.0e5)
    result = engine.process(as_frame(frames[1], 1, other))
    assert not result.warm and "defocus_nm" in result.restart_reason
    assert counter.runs == [quick.siprad.pretrain_iterations] * 2
    assert engine.refiner.pretrained.misses == 2
    assert len(list(cache_dir.glob("*.pt"))) == 2
    key = pretrained_key((64, 64), PARAMS, quick.siprad, "cpu")
    assert key == pretrained_key((64, 64), PARAMS, quick.siprad, "cpu")
    assert key != pretrained_key((64, 64), other, quick.siprad, "cpu")
    assert key != pretrained_key((64, 32), PARAMS, quick.siprad, "cpu")
    assert key != pretrained_key((64, 64), PARAMS, quick.siprad.replace(seed=2), "cpu")
    assert key != pretrained_key(
        (64, 64), PARAMS, quick.siprad.replace(pretrain_iterations=21), "cpu"
    )


def test_unreadable_cache_file_is_a_miss_and_is_rewritten(frames, quick, cache_dir) -> None:
    key = pretrained_key((64, 64), PARAMS, quick.siprad, "cpu")
    path = cache_dir / f"{key}.pt"
    path.write_bytes(b"not a torch file")
    engine = LiveEngine(quick)
    engine.process(as_frame(frames[0], 0))
    assert engine.refiner.pretrained.misses == 1
    assert PretrainedCache(cache_dir).get(key) is not None


def test_cache_off_writes_nothing_and_bad_setting_is_refused(
    frames, quick, cache_dir, monkeypatch
) -> None:
    counter = PretrainCounter(monkeypatch)
    engine = LiveEngine(dataclasses.replace(quick, pretrained_cache="off"))
    engine.request_cold_restart()
    engine.process(as_frame(frames[0], 0))
    engine.request_cold_restart()
    engine.process(as_frame(frames[1], 1))
    assert counter.runs == [quick.siprad.pretrain_iterations] * 2
    assert not list(cache_dir.glob("*.pt"))
    with pytest.raises(InputError, match="pretrained_cache"):
        LiveConfig(pretrained_cache="nowhere")


def test_a_capped_cold_fit_is_continued_on_the_next_frame(frames, quick) -> None:
    """A cap shorter than one iteration stops the cold fit after its first
    iteration, whatever the machine's speed; the next frame continues it with
    ``recover_iterations`` (no time cap), the one after gets a warm budget."""
    config = dataclasses.replace(
        quick,
        cold_budget_s=1e-9,
        cold_min_iterations=0,
        pretrained_cache="memory",
        recover_iterations=40,
    )
    engine = LiveEngine(config)
    first = engine.process(as_frame(frames[0], 0))
    assert not first.warm and first.stop_reason == "time budget" and first.iterations == 1
    second = engine.process(as_frame(frames[1], 1))
    assert second.warm and second.stop_reason != "time budget"
    assert engine.refiner.last_budget == (40, "cold start continued")
    assert second.iterations > 1
    third = engine.process(as_frame(frames[2], 2))
    assert third.warm
    assert engine.refiner.last_budget[1] in ("still", "changing", "large change")
    assert third.iterations <= max(quick.warm_max_iterations, quick.recover_iterations)


def test_on_a_miss_the_cold_budget_covers_pre_training_and_the_fit_has_a_floor(
    frames, quick
) -> None:
    """A cap shorter than one iteration, on a cache miss: pre-training stops after
    one of its (many) iterations and is not cached, the fit still runs
    ``cold_min_iterations``, whatever the machine's speed; a later cold start
    under the same conditions is a miss again."""
    siprad = quick.siprad.replace(pretrain_iterations=100_000)
    config = dataclasses.replace(
        quick,
        siprad=siprad,
        cold_budget_s=1e-9,
        cold_budget_covers_pretraining=True,
        cold_min_iterations=12,
        pretrained_cache="memory",
    )
    engine = LiveEngine(config)
    first = engine.process(as_frame(frames[0], 0))
    assert not first.warm and first.stop_reason == "time budget"
    assert first.iterations >= 12
    cache = engine.refiner.pretrained
    assert (cache.hits, cache.misses) == (0, 1)
    engine.request_cold_restart("test")
    engine.process(as_frame(frames[1], 1))
    assert (cache.hits, cache.misses) == (0, 2)


@pytest.mark.parametrize("fallback", [True, False])
def test_new_conditions_start_from_the_weights_of_other_conditions(frames, quick, fallback) -> None:
    """Weights pre-trained at another defocus start a cold start under new
    conditions (no pre-training) unless ``cold_from_other_conditions`` is off."""
    config = dataclasses.replace(
        quick, pretrained_cache="memory", cold_budget_s=None, cold_from_other_conditions=fallback
    )
    engine = LiveEngine(config)
    image = torch.from_numpy(frames[0].image.astype(np.float32))
    engine.refiner.pretrain(image, PARAMS.replace(defocus_nm=-8.0e5))
    first = engine.process(as_frame(frames[0], 0))
    assert not first.warm
    assert engine.refiner.last_cold_source == ("other conditions" if fallback else "pre-trained")
    assert engine.refiner.pretrained.misses == 1  # its own conditions were not cached
