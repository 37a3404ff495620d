"""Offline reprocessing: Dask workers give the in-process result; chunking costs little accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lorentz_live.live import LiveConfig
from lorentz_live.record import SessionReader, SessionWriter
from lorentz_live.record.reprocess import plan_chunks, reprocess
from lorentz_live.siprad import NetworkConfig, SipradConfig
from tests.helpers import correlation
from tests.live.conftest import PARAMS, movie

pytestmark = pytest.mark.timeout(240)
FRAMES = 4
CHUNK = 2


def small_config(seed: int = 1) -> LiveConfig:
    siprad = SipradConfig(
        network=NetworkConfig(width=8, depth=3, max_width=32),
        pretrain_iterations=40,
        max_iterations=80,
        seed=seed,
    )
    return LiveConfig(siprad=siprad, warm_max_iterations=10)


def make_session(folder, seed: int = 0) -> list:
    frames = movie(FRAMES, noise=0.3, seed=seed)
    with SessionWriter(folder) as writer:
        for seq, frame in enumerate(frames):
            header = {"seq": seq, "timestamp_ns": 10**18 + seq * 10**8, **PARAMS.to_dict()}
            assert writer.add_frame(frame.image.astype(np.float32), header)
    return frames


def test_plan_chunks_covers_every_frame_once() -> None:
    assert plan_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_chunks(3, 8) == [(0, 3)]


def test_two_dask_workers_match_the_sequential_run(tmp_path) -> None:
    truth = make_session(tmp_path / "raw")
    config = small_config()
    # sequential: one warm-started chain over the whole movie, in this process
    reprocess(tmp_path / "raw", tmp_path / "chain", config, workers=0, chunk_frames=FRAMES)
    done = []
    reprocess(
        tmp_path / "raw",
        tmp_path / "dask",
        config,
        workers=2,
        chunk_frames=CHUNK,
        progress=lambda n, total: done.append((n, total)),
    )
    assert done[-1] == (FRAMES, FRAMES)
    with SessionReader(tmp_path / "chain") as chain, SessionReader(tmp_path / "dask") as dask:
        assert dask.result_count == chain.result_count == FRAMES
        assert list(dask.result_seqs) == list(range(FRAMES))  # frame order
        assert [h["warm"] for h in dask.result_headers] == [False, True] * 2
        assert [h["chunk_start"] for h in dask.result_headers] == [0, 0, 2, 2]
        # the first chunk is the chain's first frames: same numbers on a Dask worker
        np.testing.assert_allclose(
            dask.result_stack("phi_m")[:CHUNK], chain.result_stack("phi_m")[:CHUNK], atol=1e-5
        )
        # chunking restarts cold at frame 2; against the truth it cost at most 0.0095 in
        # correlation per frame over movie/network seeds 0-2 (measured by hand with these
        # helpers), and chunked stayed >= 0.958: margins 0.05 and 0.9
        for index in range(FRAMES):
            phase = truth[index].phase.float()
            chunked = correlation(torch.from_numpy(dask.result(index)[0]["phi_m"]), phase)
            whole = correlation(torch.from_numpy(chain.result(index)[0]["phi_m"]), phase)
            assert chunked > whole - 0.05, (index, chunked, whole)
            assert chunked > 0.9
        assert dask.engine["config"]["warm_max_iterations"] == 10
