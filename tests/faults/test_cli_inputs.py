"""Every bad command line of issue 8: one line naming the problem, exit 2, before computing."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from lorentz_live.cli import main
from tests.faults.conftest import GOOD_KEYS, good_image

CASES = [
    # (name, argv with {placeholders}, words the one line must contain)
    ("empty .npy", ["reconstruct", "{empty}", "--params", "{params}", "--out", "{out}"], "empty"),
    ("text file named .npy", ["reconstruct", "{text}", "--params", "{params}", "--out", "{out}"],
     "not a NumPy .npy file"),
    ("output is a folder", ["reconstruct", "{image}", "--params", "{params}", "--out",
                            "{folder}.npz"], "is a folder"),
    ("output exists", ["reconstruct", "{image}", "--params", "{params}", "--out", "{existing}"],
     "--overwrite"),
    ("params not UTF-8", ["reconstruct", "{image}", "--params", "{latin1}", "--out", "{out}"],
     "not UTF-8"),
    ("params nested 100 k deep", ["reconstruct", "{image}", "--params", "{deep}", "--out", "{out}"],
     "nested too deeply"),
    ("--seed 2**70", ["reconstruct", "{image}", "--params", "{params}", "--out", "{out}",
                      "--seed", str(2**70)], "--seed"),
    ("--seed -1", ["forward", "{image}", "--params", "{params}", "--out", "{out_npy}",
                   "--seed", "-1"], "--seed"),
    ("forward --dose nan", ["forward", "{image}", "--params", "{params}", "--out", "{out_npy}",
                            "--dose", "nan"], "--dose"),
    ("forward --dose inf", ["forward", "{image}", "--params", "{params}", "--out", "{out_npy}",
                            "--dose", "inf"], "--dose"),
    ("forward all-zero amplitude", ["forward", "{image}", "--params", "{params}", "--out",
                                    "{out_npy}", "--amplitude", "{zeros}"], "amplitude"),
    ("sitie --qc -1", ["reconstruct", "{image}", "--params", "{params}", "--out", "{out}",
                       "--method", "sitie", "--qc", "-1"], "--qc"),
    ("sitie --qc nan", ["reconstruct", "{image}", "--params", "{params}", "--out", "{out}",
                        "--method", "sitie", "--qc", "nan"], "--qc"),
    ("sitie --sigma -1", ["reconstruct", "{image}", "--params", "{params}", "--out", "{out}",
                          "--method", "sitie", "--sigma", "-1"], "--sigma"),
    ("run --source foo", ["run", "--source", "foo"], "--source"),
    ("run --idle-timeout -1", ["run", "--idle-timeout", "-1"], "--idle-timeout"),
    ("run --budget nan", ["run", "--budget", "nan"], "--budget"),
    ("run --max-side 4", ["run", "--max-side", "4"], "--max-side"),
    ("run --instant-average 0", ["run", "--instant-average", "0"], "--instant-average"),
    ("run --record-results bogus", ["run", "--record-results", "bogus"], "--record-results"),
    ("run --curve-server-key missing", ["run", "--curve-server-key", "{missing}"],
     "cannot read key file"),
]  # fmt: skip


@pytest.fixture
def files(tmp_path):
    image = tmp_path / "image.npy"
    np.save(image, good_image(0, 32))
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "text.npy").write_text("hello, not an array\n")
    (tmp_path / "params.json").write_text(json.dumps(GOOD_KEYS))
    (tmp_path / "latin1.json").write_bytes('{"kv": 300, "note": "Müller"}'.encode("latin-1"))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "existing.npz").write_bytes(b"keep me")
    np.save(tmp_path / "zeros.npy", np.zeros((32, 32), np.float32))
    return {
        "image": image,
        "empty": tmp_path / "empty.npy",
        "text": tmp_path / "text.npy",
        "params": tmp_path / "params.json",
        "latin1": tmp_path / "latin1.json",
        "deep": tmp_path / "deep.json",
        "folder": tmp_path / "dir",
        "existing": tmp_path / "existing.npz",
        "zeros": tmp_path / "zeros.npy",
        "out": tmp_path / "out.npz",
        "out_npy": tmp_path / "out.npy",
        "missing": tmp_path / "missing.key",
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(files, capsys, record, case) -> None:
    name, argv, words = case
    argv = [a.format(**files) for a in argv]
    start = time.monotonic()
    assert main(argv) == 2
    seconds = time.monotonic() - start
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert "Traceback" not in err
    assert not files["out"].exists() and not files["out_npy"].exists()
    assert files["existing"].read_bytes() == b"keep me"
    record(f"CLI: {name}", "one line, exit 2, nothing written", f"exit 2 in {seconds:.2f} s: {err}")


def test_read_only_output_folder(tmp_path, files, capsys, record) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        argv = ["reconstruct", str(files["image"]), "--params", str(files["params"])]
        assert main([*argv, "--out", str(folder / "r.npz"), "--method", "sitie"]) == 2
        err = capsys.readouterr().err.strip()
        assert "cannot write into" in err
        record("CLI: read-only output folder", "one line, exit 2", err)
    finally:
        folder.chmod(0o755)


def test_overwrite_replaces_an_existing_output(files, capsys, record) -> None:
    argv = ["reconstruct", str(files["image"]), "--params", str(files["params"]), "--out"]
    argv += [str(files["existing"]), "--method", "sitie"]
    assert main(argv) == 2
    assert main([*argv, "--overwrite"]) == 0
    with np.load(files["existing"]) as result:
        assert result["phi_m"].shape == (32, 32)
    capsys.readouterr()
    record("CLI: existing output", "exit 2 without --overwrite; replaced with it",
           "exit 2, then a 32x32 result")  # fmt: skip


@pytest.mark.parametrize("side", [8, 12, 16])
def test_images_of_8_to_16_px_reconstruct(side, record) -> None:
    from lorentz_live.physics import MicroscopeParams
    from lorentz_live.siprad import SipradConfig, SipradReconstructor

    config = SipradConfig(pretrain_iterations=2, max_iterations=3, min_iterations=0)
    params = MicroscopeParams.from_mapping(GOOD_KEYS)
    result = SipradReconstructor(config).reconstruct(good_image(0, side), params)
    assert result.phi_m.shape == (side, side)
    assert bool(np.isfinite(result.phi_m.numpy()).all())
    record(f"SIPRAD on a {side}x{side} image", "a result (was: RuntimeError from padding)",
           "finite phi_m")  # fmt: skip
