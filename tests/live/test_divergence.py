"""The warm-start divergence check judges the iterate a result returns, not the loop's last."""

from __future__ import annotations

import dataclasses

from lorentz_live.live.methods import SipradMethod, _relative_misfit
from lorentz_live.siprad import SipradReconstructor
from tests.live.conftest import PARAMS, movie


def test_divergence_check_reads_the_kept_iterate_not_the_last(live_config) -> None:
    method = SipradMethod(live_config)
    quick = live_config.siprad.replace(
        pretrain_iterations=0, max_iterations=3, min_iterations=0, stop="none"
    )
    result = SipradReconstructor(quick).reconstruct(movie(1)[0].image, PARAMS)
    # as with stop="held-out": the loop ran past the iterate it returns (index 1)
    held = dataclasses.replace(result, loss=[2.0, 1.0, 50.0], kept_iteration=1, target=0.5)
    assert held.final_misfit == 1.0
    assert _relative_misfit(held) == 2.0  # kept misfit / target, not 50 / 0.5
    method._last_loss = 2.0
    assert method._divergence(held) is None
    # the same losses with the last iterate returned: 100 > 3 x 2 is a divergence
    last = dataclasses.replace(held, kept_iteration=None)
    reason = method._divergence(last)
    assert reason is not None and "diverged" in reason


def test_published_loss_is_the_kept_iterates(live_config) -> None:
    from lorentz_live.live import LiveEngine
    from tests.live.conftest import as_frame

    siprad = live_config.siprad.replace(
        stop="held-out", holdout_fraction=0.2, holdout_patience=30, holdout_every=5
    )
    engine = LiveEngine(dataclasses.replace(live_config, siprad=siprad))
    result = engine.process(as_frame(movie(1)[0], 0))
    assert result.kept_iteration is not None
    assert result.kept_iteration < len(result.loss) - 1
    assert result.final_loss == result.loss[result.kept_iteration]
