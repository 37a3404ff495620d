"""SipradConfig.ensemble: the mean of cold starts with offset network seeds."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.errors import InputError
from lorentz_live.siprad import SipradConfig, SipradReconstructor
from lorentz_live.siprad.reconstructor import ENSEMBLE_SEED_OFFSET
from tests.siprad.conftest import Case


def test_ensemble_is_the_mean_of_its_members(noisy_bubbles: Case, fast_config) -> None:
    config = fast_config.replace(pretrain_iterations=20, max_iterations=30, stop="none")
    case = noisy_bubbles
    members = [
        SipradReconstructor(config.replace(seed=config.seed + k * ENSEMBLE_SEED_OFFSET))
        .reconstruct(case.image, case.params)
        for k in range(2)
    ]  # fmt: skip
    both = SipradReconstructor(config.replace(ensemble=2)).reconstruct(case.image, case.params)
    for name in ("phi_m", "phi_m_raw", "b_x", "b_y"):
        mean = (getattr(members[0], name) + getattr(members[1], name)) / 2
        assert torch.allclose(getattr(both, name), mean, atol=1e-6), name
    # the members differ (different networks), so the mean is not either of them
    assert float((members[0].phi_m - members[1].phi_m).abs().max()) > 1e-3
    assert both.iterations == 60 and both.pretrain_iterations == 40
    assert both.loss == members[0].loss  # diagnostics: the first member's


def test_ensemble_must_be_positive() -> None:
    with pytest.raises(InputError, match="ensemble"):
        SipradConfig(ensemble=0)
