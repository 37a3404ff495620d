"""Shared fixtures: devices (CPU, plus CUDA when present), seeded generators, data paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every test using this runs on the CPU and, when present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(12345)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data; tests that need it are skipped (not failed) where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _pretrained_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pre-trained SIPRAD weights cached in a temporary folder, not the user's cache
    (subprocesses inherit it)."""
    os.environ["LORENTZ_LIVE_CACHE"] = str(tmp_path_factory.mktemp("pretrained"))


# One intra-op thread: the suite runs beside bridge subprocesses on 2 cores, where
# two spinning torch threads per process slow small convolutions down many times.
torch.set_num_threads(1)
