"""A per-frame time budget bounds every phase of SIPRAD, pre-training included."""

from __future__ import annotations

import time

from lorentz_live.physics import MicroscopeParams
from lorentz_live.siprad import SipradConfig, SipradReconstructor
from tests.faults.conftest import GOOD_KEYS, good_image


def test_a_budget_bounds_pre_training_and_the_fit(record) -> None:
    config = SipradConfig(pretrain_iterations=100_000, max_iterations=100_000, stop="none")
    params = MicroscopeParams.from_mapping(GOOD_KEYS)
    image = good_image(0, 64)
    reconstructor = SipradReconstructor(config)
    reconstructor.reconstruct(image, params, deadline=time.perf_counter())  # first-call setup
    start = time.perf_counter()
    result = reconstructor.reconstruct(image, params, deadline=start + 1.0)
    seconds = time.perf_counter() - start
    assert result.stop_reason == "time budget"
    assert 1 <= result.pretrain_iterations < 100_000 and 1 <= result.iterations < 100_000
    # one iteration of each phase may run past the deadline; generous for a loaded machine
    assert seconds < 15.0
    record(
        "SIPRAD, 64 px, 100 000 pre-training + 100 000 iterations, budget 1 s",
        "stops at the budget in both phases, says so",
        f"{seconds:.2f} s, {result.pretrain_iterations} pre-training + {result.iterations} "
        f"iterations, stop reason '{result.stop_reason}'",
    )
