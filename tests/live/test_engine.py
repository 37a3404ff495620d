"""The warm-started engine in-process: accuracy, warm/cold decisions, recovery, bad frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lorentz_live.errors import InputError
from lorentz_live.live import LiveEngine
from lorentz_live.physics import sitie_phase
from tests.helpers import correlation
from tests.live.conftest import PARAMS, as_frame, b_correlation, movie

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def frames():
    return movie(5)


@pytest.fixture(scope="module")
def seeded_runs(live_config):
    """Per seed (noise and network): the movie and the engine's results on it."""
    runs = []
    for seed in SEEDS:
        frames = movie(5, seed=seed)
        engine = LiveEngine(
            dataclasses.replace(live_config, siprad=live_config.siprad.replace(seed=seed))
        )
        runs.append((frames, [engine.process(as_frame(f, seq)) for seq, f in enumerate(frames)]))
    return runs


@pytest.fixture(scope="module")
def warm_run(seeded_runs, live_config):
    frames, _ = seeded_runs[0]
    engine = LiveEngine(live_config)
    seen = []
    engine.add_listener(seen.append)
    results = [engine.process(as_frame(frame, seq)) for seq, frame in enumerate(frames[:3])]
    return engine, seen, results


def test_listeners_get_every_result_and_only_the_first_frame_is_cold(warm_run) -> None:
    engine, seen, results = warm_run
    assert seen == results
    assert [r.warm for r in results] == [False, True, True]
    assert results[0].restart_reason == "first frame"
    assert engine.cold_starts == 1
    for result in results:
        assert result.rgb.shape == (64, 64, 3)
        assert result.latency_s >= result.compute_s > 0


def test_warm_frames_beat_sitie_on_average_with_far_fewer_iterations(
    seeded_runs, live_config
) -> None:
    """Mean over 3 seeds x 5 frames: measured mean gains over plain SITIE were
    phase +0.013..+0.017 and B +0.023..+0.029 per seed (4 seeds); single frames
    may lose on other machines."""
    phase_gain, b_gain, warm_iterations = [], [], []
    for frames, results in seeded_runs:
        for result, frame in zip(results, frames, strict=True):
            sitie = sitie_phase(torch.from_numpy(frame.image), PARAMS)
            phase_gain.append(
                correlation(result.phi_m, frame.phase) - correlation(sitie, frame.phase)
            )
            b_gain.append(
                b_correlation(result.phi_m, frame.phase) - b_correlation(sitie, frame.phase)
            )
        warm_iterations += [r.iterations for r in results[1:]]
    assert np.mean(phase_gain) > 0.006
    assert np.mean(b_gain) > 0.008
    cold_work = live_config.siprad.pretrain_iterations + seeded_runs[0][1][0].iterations
    assert max(warm_iterations) <= live_config.warm_max_iterations
    assert np.mean(warm_iterations) < cold_work / 4


@pytest.mark.parametrize("carry", [True, False])
def test_the_configured_warm_start_policy_is_applied(frames, live_config, carry) -> None:
    """Carried: Adam's step count keeps growing at the cold rate.  Fresh: each warm
    frame restarts Adam (step count = that frame's iterations) at the scaled rate."""
    config = dataclasses.replace(
        live_config, carry_optimiser=carry, warm_learning_rate_scale=2.0, warm_min_iterations=3
    )
    engine = LiveEngine(config)
    steps = []
    for seq in range(3):
        result = engine.process(as_frame(frames[seq], seq))
        adam = engine.refiner.state.optimiser
        steps.append({float(s["step"]) for s in adam["state"].values()})
        rates = {group["lr"] for group in adam["param_groups"]}
        if seq == 0 or carry:
            assert rates == {live_config.siprad.learning_rate}
        else:
            assert rates == {2.0 * live_config.siprad.learning_rate}
        if seq > 0 and not carry:
            assert steps[-1] == {float(result.iterations)}
        # the DIP keeps its input; its output moves with the drift, accumulated
        state = engine.refiner.state
        warm = engine.refiner.warm_state((0.0, 2.0))
        assert warm.net_input is state.net_input
        assert warm.output_shift_px == (state.output_shift_px[0], state.output_shift_px[1] + 2.0)
    if carry:
        assert min(steps[2]) > max(steps[1]) > max(steps[0]) > 0


def test_parameter_change_and_operator_request_force_cold_starts(frames, live_config) -> None:
    engine = LiveEngine(live_config)
    engine.process(as_frame(frames[0], 0))
    assert engine.process(as_frame(frames[1], 1)).warm
    changed = PARAMS.replace(defocus_nm=-8.0e5)
    result = engine.process(as_frame(frames[2], 2, changed))
    assert not result.warm
    assert "defocus_nm" in result.restart_reason
    assert engine.process(as_frame(frames[3], 3, changed)).warm
    engine.request_cold_restart()
    result = engine.process(as_frame(frames[4], 4, changed))
    assert (result.warm, result.restart_reason) == (False, "operator request")
    assert engine.cold_starts == 3


def test_returning_to_known_conditions_resumes_their_state(frames, live_config) -> None:
    engine = LiveEngine(live_config)
    engine.process(as_frame(frames[0], 0))
    changed = PARAMS.replace(defocus_nm=-8.0e5)
    assert not engine.process(as_frame(frames[1], 1, changed)).warm  # new conditions: cold
    back = engine.process(as_frame(frames[2], 2))  # the first defocus again
    assert back.warm and "resumed" in back.restart_reason and "defocus_nm" in back.restart_reason
    assert engine.cold_starts == 2
    assert back.iterations <= live_config.recover_iterations
    assert correlation(back.phi_m, frames[2].phase) > 0.8


def test_diverged_warm_start_is_redone_cold_and_recovers(frames, live_config) -> None:
    engine = LiveEngine(live_config)
    first = engine.process(as_frame(frames[0], 0))
    # inject a divergence: a weight update gone wrong leaves NaN in the carried weights
    poisoned = {
        key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
        for key, value in engine.refiner.state.network.items()
    }
    engine.refiner.state = dataclasses.replace(engine.refiner.state, network=poisoned)
    result = engine.process(as_frame(frames[1], 1))
    assert not result.warm
    assert "diverged" in result.restart_reason
    assert result.final_loss < 2.0 * first.final_loss
    assert correlation(result.phi_m, frames[1].phase) > 0.8


def test_bad_frame_is_refused_and_the_next_continues_warm(frames, live_config) -> None:
    engine = LiveEngine(live_config)
    engine.process(as_frame(frames[0], 0))
    bad_images = [
        np.zeros((64, 64), np.float32),
        np.full((64, 64), np.nan, np.float32),
        np.ones((4, 8, 8)),
    ]
    for seq, image in enumerate(bad_images, start=1):
        with pytest.raises(InputError, match=f"frame {seq}"):
            engine.process(dataclasses.replace(as_frame(frames[1], seq), image=image))
    with pytest.raises(InputError, match="too small"):
        engine.process(as_frame(frames[1], 9, PARAMS.replace(defocus_nm=-1.0)))
    assert engine.bad_frames == 4
    result = engine.process(as_frame(frames[1], 10))
    assert result.warm
    assert correlation(result.phi_m, frames[1].phase) > 0.8


def test_time_budget_ends_a_frame_early(frames, live_config) -> None:
    engine = LiveEngine(dataclasses.replace(live_config, time_budget_s=1e-6))
    engine.process(as_frame(frames[0], 0))
    result = engine.process(as_frame(frames[1], 1))
    assert result.warm
    assert (result.stop_reason, result.iterations) == ("time budget", 1)


def test_read_only_pixels_from_a_socket_buffer_are_accepted(frames, live_config) -> None:
    engine = LiveEngine(dataclasses.replace(live_config, warm_max_iterations=2))
    engine.process(as_frame(frames[0], 0))
    read_only = np.frombuffer(frames[1].image.astype("<f4").tobytes(), "<f4").reshape(64, 64)
    assert not read_only.flags.writeable
    assert engine.process(dataclasses.replace(as_frame(frames[1], 1), image=read_only)).warm
