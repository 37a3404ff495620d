"""lorentz-live CLI: forward and reconstruct round trips, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from lorentz_live.cli import main
from lorentz_live.physics import bubble_texture, film_magnetic_phase, hexagonal_lattice
from tests.conftest import FIXTURES
from tests.helpers import correlation


@pytest.fixture
def workdir(tmp_path):
    shape = (64, 48)
    bubbles = hexagonal_lattice(shape, 4.0, 80.0, 22.0, seed=5)
    phase = film_magnetic_phase(bubble_texture(shape, 4.0, bubbles), 2.0e5, 40.0, 4.0)
    np.save(tmp_path / "phase.npy", phase.numpy())
    (tmp_path / "p.json").write_text(json.dumps({"defocus_nm": -3e4, "pixel_size_nm": 4.0}))
    return tmp_path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_forward_then_sitie_round_trip(workdir, capsys) -> None:
    image_path, result_path = workdir / "image.npy", workdir / "result.npz"
    assert (
        main(
            [
                "forward",
                str(workdir / "phase.npy"),
                "--params",
                str(workdir / "p.json"),
                "--out",
                str(image_path),
            ]
        )
        == 0
    )
    image = np.load(image_path)
    assert image.dtype == np.float32 and image.shape == (64, 48)
    assert image.mean() == pytest.approx(1.0, rel=1e-5)
    assert (
        main(
            [
                "reconstruct",
                str(image_path),
                "--params",
                str(workdir / "p.json"),
                "--out",
                str(result_path),
                "--method",
                "sitie",
            ]
        )
        == 0
    )
    result = np.load(result_path)
    for key in ("phi_m", "b_x", "b_y"):
        assert result[key].shape == (64, 48)
    truth = torch.from_numpy(np.load(workdir / "phase.npy"))
    assert correlation(torch.from_numpy(result["phi_m"]), truth) > 0.98
    assert json.loads(str(result["params"]))["defocus_nm"] == -3e4


def test_reconstruct_reads_tiff_and_npz(workdir) -> None:
    image = np.load(workdir / "phase.npy") * 0 + 1.0
    image[10:20, 10:20] = 1.2
    tifffile.imwrite(workdir / "image.tif", image.astype(np.float32))
    np.savez(workdir / "image.npz", image=image)
    for name in ("image.tif", "image.npz"):
        out = workdir / f"{name}.result.npz"
        assert (
            main(
                [
                    "reconstruct",
                    str(workdir / name),
                    "--params",
                    str(workdir / "p.json"),
                    "--out",
                    str(out),
                    "--method",
                    "sitie",
                ]
            )
            == 0
        )
        assert np.isfinite(np.load(out)["phi_m"]).all()


def test_forward_from_ovf_fixture(tmp_path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"defocus_nm": -2e5}))
    out = tmp_path / "image.npy"
    assert (
        main(
            [
                "forward",
                str(FIXTURES / "antiskyrmion_corner_24x24x2.omf"),
                "--params",
                str(tmp_path / "p.json"),
                "--out",
                str(out),
                "--dose",
                "100",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    image = np.load(out)
    assert image.shape == (24, 24) and np.isfinite(image).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"defocus": -1e6}}, "did you mean 'defocus_nm'"),
        ({"params": {"defocus_nm": 0}}, "too small"),
        ({"params": {"defocus_nm": -1}}, "too small"),
        ({"params": {"defocus_nm": -1e12}}, "implausible"),
        ({"image": np.zeros((4, 32, 32))}, "expected a 2D image"),
        ({"image": np.full((32, 32), np.nan)}, "NaN or infinite"),
        ({"image_name": "image.png"}, "unknown format"),
        ({"image_name": "absent.npy"}, "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, change: dict, message: str) -> None:
    params = change.get("params", {"defocus_nm": -1e5})
    (tmp_path / "p.json").write_text(json.dumps(params))
    image_name = change.get("image_name", "image.npy")
    if image_name != "absent.npy":
        image = change.get("image", np.ones((32, 32), np.float32))
        (tmp_path / image_name).write_bytes(b"") if image_name.endswith(".png") else np.save(
            tmp_path / image_name, image
        )
    code = main(
        [
            "reconstruct",
            str(tmp_path / image_name),
            "--params",
            str(tmp_path / "p.json"),
            "--out",
            str(tmp_path / "r.npz"),
        ]
    )
    assert code == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "r.npz").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--absorption-length", "-5"),
        ("--mean-inner-potential", "nan"),
        ("--island-thickness", "-10"),
        ("--island-thickness", "inf"),
    ],
)
def test_bad_material_exits_2(workdir, capsys, flag: str, value: str) -> None:
    np.save(workdir / "image.npy", np.ones((32, 32), np.float32))
    out = workdir / "r.npz"
    args = ["reconstruct", str(workdir / "image.npy"), "--params", str(workdir / "p.json")]
    assert main([*args, "--out", str(out), flag, value]) == 2
    assert flag in _error_line(capsys)
    assert not out.exists()


def test_usage_errors_are_one_line(capsys) -> None:
    assert main(["reconstruct"]) == 2
    assert "required" in _error_line(capsys)
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in _error_line(capsys)


def test_unit_magnetisation_file_needs_ms(tmp_path, capsys) -> None:
    from lorentz_live.io.ovf import write_ovf

    write_ovf(
        tmp_path / "m.ovf", np.ones((1, 16, 16, 3)) / np.sqrt(3), (1e-8, 4e-9, 4e-9), units=""
    )
    (tmp_path / "p.json").write_text("{}")
    code = main(
        [
            "forward",
            str(tmp_path / "m.ovf"),
            "--params",
            str(tmp_path / "p.json"),
            "--out",
            str(tmp_path / "i.npy"),
        ]
    )
    assert code == 2
    assert "--ms" in _error_line(capsys)


def test_console_script_is_installed(workdir) -> None:
    script = Path(sys.executable).parent / "lorentz-live"
    assert script.exists(), "pip install -e . should have created the lorentz-live script"
    completed = subprocess.run(
        [
            str(script),
            "reconstruct",
            str(workdir / "missing.npy"),
            "--params",
            str(workdir / "p.json"),
            "--out",
            str(workdir / "r.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("lorentz-live: error: image file not found")


def test_siprad_round_trip_writes_fit_loss_and_amplitude(workdir, capsys) -> None:
    clean = workdir / "image.npy"
    assert (
        main(
            [
                "forward",
                str(workdir / "phase.npy"),
                "--params",
                str(workdir / "p.json"),
                "--out",
                str(clean),
                "--dose",
                "50",
            ]
        )
        == 0
    )
    out = workdir / "siprad.npz"
    code = main(
        [
            "reconstruct",
            str(clean),
            "--params",
            str(workdir / "p.json"),
            "--out",
            str(out),
            "--iterations",
            "30",
            "--amplitude",
            "threshold",
            "--seed",
            "3",
            "--mean-inner-potential",
            "12",
            "--absorption-length",
            "50",
            "--smoothing",
            "fixed",
            "--boundary",
            "periodic",
            "--threshold",
            "0.95",
        ]
    )
    assert code == 0
    result = np.load(out)
    # the material flags reach phi_e = -sigma V0 xi0 ln a
    from lorentz_live.physics import Material, MicroscopeParams
    from lorentz_live.siprad import electrostatic_from_amplitude

    expected = electrostatic_from_amplitude(
        torch.from_numpy(result["amplitude"]), Material(12.0, 50.0), MicroscopeParams().kv
    )
    np.testing.assert_allclose(result["phase_e"], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert float(result["phase_e"].max()) > 0
    assert float(result["smoothing_sigma_px"]) == 2.0
    # resolution: no finer than the 2 px smoothing's half transfer (5.3 px of 4 nm);
    # inf when noise beats the signal at every frequency
    assert float(result["resolution_nm"]) >= 21.0
    assert str(result["method"]) == "siprad"
    for key in ("phi_m", "b_x", "b_y", "image_fit", "amplitude"):
        assert result[key].shape == (64, 48), key
    assert 1 <= result["loss"].size <= 30
    assert np.isfinite(result["phi_m"]).all()
    assert "siprad:" in capsys.readouterr().out  # piped: a summary line, no progress bar


def test_held_out_stop_prints_the_kept_iterates_misfit(workdir, capsys) -> None:
    clean = workdir / "image.npy"
    forward = ["forward", str(workdir / "phase.npy"), "--params", str(workdir / "p.json")]
    assert main([*forward, "--out", str(clean), "--dose", "20"]) == 0
    out = workdir / "held.npz"
    capsys.readouterr()
    code = main(
        ["reconstruct", str(clean), "--params", str(workdir / "p.json"), "--out", str(out),
         "--iterations", "60", "--stop", "held-out", "--threads", "1"]
    )  # fmt: skip
    assert code == 0
    result = np.load(out)
    kept, loss = int(result["kept_iteration"]), result["loss"]
    # scored every 10 iterations: the kept iterate is never the last of 60
    assert kept % 10 == 0 and kept < loss.size - 1
    printed = capsys.readouterr().out
    assert " on 1 CPU thread, " in printed
    assert printed.split("final misfit ")[1].split(",")[0] == f"{loss[kept]:.3e}"


def test_bad_thread_count_exits_2(workdir, capsys) -> None:
    np.save(workdir / "image.npy", np.ones((32, 32), np.float32))
    out = workdir / "r.npz"
    args = ["reconstruct", str(workdir / "image.npy"), "--params", str(workdir / "p.json")]
    assert main([*args, "--out", str(out), "--threads", "0"]) == 2
    assert "--threads" in _error_line(capsys)
    assert not out.exists()


def test_amplitude_help_quotes_the_measured_figures() -> None:
    from lorentz_live import measured  # written by benchmarks/accuracy.py
    from lorentz_live.cli import amplitude_help

    text = " ".join(amplitude_help().split())
    for figures in measured.AMPLITUDE.values():
        for phase, b in figures.values():
            assert f"{phase:.2f} / {b:.2f}" in text
        modes = {k: v for k, v in figures.items() if k not in ("sitie", "tuned")}
        modes = {k: v for k, v in modes.items() if "true" not in k}
        best = max(modes, key=lambda k: modes[k][0] + modes[k][1])
        assert f"Recommended (best mean of phase and B): {best}" in text


def test_sample_flags_reach_the_siprad_config() -> None:
    from lorentz_live.cli import _siprad_config, build_parser

    args = build_parser().parse_args(
        ["reconstruct", "i.npy", "--params", "p.json", "--out", "r.npz", "--amplitude",
         "thickness", "--island-thickness", "10", "--mean-inner-potential", "12",
         "--absorption-length", "80"]
    )  # fmt: skip
    config = _siprad_config(args)
    assert config.amplitude == "thickness" and config.island_thickness_nm == 10.0
    args = build_parser().parse_args(
        ["reconstruct", "i.npy", "--params", "p.json", "--out", "r.npz", "--amplitude",
         "thickness", "--thickness-floor", "2", "--thickness-start", "exclude",
         "--phase-model", "magnetisation", "--stop", "held-out", "--thickness-joint"]
    )  # fmt: skip
    other = _siprad_config(args)
    assert other.thickness_floor_nm == 2.0 and other.thickness_start == "exclude"
    assert other.phase_model == "magnetisation" and other.thickness_joint
    assert not config.thickness_joint
    assert other.stop == "held-out" and other.holdout_fraction > 0
    assert config.material.mean_inner_potential_v == 12.0
    assert config.material.absorption_length_nm == 80.0
