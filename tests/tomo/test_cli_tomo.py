"""``lorentz-live tomo`` and ``tomo-train``: end to end on small boxes, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lorentz_live.cli import main
from lorentz_live.tomo.dataset import (
    FULL_ANGLES_DEG,
    LIBRARY_VOXEL_NM,
    limit_indices,
    sample_series,
)
from lorentz_live.tomo.fields import nrmse


def _write_series(path: Path, size: int = 16, limit: float = 60.0) -> tuple[Path, object]:
    series = sample_series("skyrmion_tube", size, seed=5)
    keep = limit_indices(limit)
    angles = np.array([FULL_ANGLES_DEG[i] for i in keep])
    np.savez(
        path,
        phase_x=series.phase_x[keep].numpy(),
        angles_x_deg=angles,
        phase_y=series.phase_y[keep].numpy(),
        angles_y_deg=angles,
        pixel_size_nm=LIBRARY_VOXEL_NM,
    )
    return path, series


def test_tomo_writes_b_and_b_vfet_of_the_input_size(tmp_path: Path, capsys) -> None:
    series_path, series = _write_series(tmp_path / "series.npz", size=24)
    out = tmp_path / "b.npz"
    assert main(["tomo", str(series_path), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with np.load(out) as result:
        b, b_vfet = torch.from_numpy(result["b"]), torch.from_numpy(result["b_vfet"])
        assert float(result["pixel_size_nm"]) == LIBRARY_VOXEL_NM
    assert b.shape == b_vfet.shape == (3, 24, 24, 24)
    # a 24^3 box is resampled to the model's 32^3 and back: still a sensible field
    assert nrmse(b_vfet, series.induction_t, series.mask) < 0.6
    assert nrmse(b, series.induction_t, series.mask) < 0.6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "phase_y"}, "missing phase_y"),
        ({"angles_x_deg": np.zeros(3)}, "angles_x_deg"),
        ({"pixel_size_nm": -1.0}, "pixel_size_nm"),
        ({"phase_x": np.full((25, 16, 16), np.nan, np.float32)}, "NaN"),
        ({"phase_x": np.zeros((25, 16, 12), np.float32)}, "(n, N, N)"),
    ],
)
def test_tomo_reports_a_bad_series_in_one_line(tmp_path: Path, capsys, change, message) -> None:
    path, _ = _write_series(tmp_path / "good.npz")
    with np.load(path) as data:
        arrays = dict(data)
    arrays.pop(change.pop("drop", "none"), None)
    arrays.update(change)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert main(["tomo", str(bad), "--out", str(tmp_path / "b.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b.npz").exists()


def test_tomo_refuses_a_missing_file_and_a_wrong_suffix(tmp_path: Path, capsys) -> None:
    assert main(["tomo", str(tmp_path / "none.npz"), "--out", str(tmp_path / "b.npz")]) == 2
    path, _ = _write_series(tmp_path / "s.npz")
    assert main(["tomo", str(path), "--out", str(tmp_path / "b.txt")]) == 2
    assert "expected a .npz" in capsys.readouterr().err


def test_tomo_train_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from lorentz_live.tomo.magnet import load_model

    out = tmp_path / "w.pt"
    argv = ["tomo-train", "--out", str(out), "--steps", "2", "--size", "16"]
    argv += ["--library-count", "10", "--base-channels", "4", "--checkpoint-every", "1"]
    assert main(argv) == 0
    model, size = load_model(out)
    assert size == 16 and model.base == 4
    assert torch.load(out, weights_only=False)["steps"] == 2
    assert main(["tomo-train", "--out", str(out), "--size", "20"]) == 2


def test_tomo_train_resumes_a_checkpoint_and_carries_its_progress(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    argv = ["--size", "16", "--library-count", "10", "--base-channels", "4"]
    argv += ["--checkpoint-every", "1"]
    assert main(["tomo-train", "--out", str(first), "--steps", "2", *argv]) == 0
    resumed = ["tomo-train", "--out", str(second), "--steps", "3", "--resume", str(first)]
    assert main([*resumed, "--learning-rate", "1e-4", *argv]) == 0
    checkpoint = torch.load(second, weights_only=False)
    assert checkpoint["steps"] == 5 and [s["steps"] for s in checkpoint["stages"]] == [2, 3]
    assert [step for step, _ in checkpoint["history"]] == [1, 2, 3, 4, 5]
    assert checkpoint["stages"][1]["config"]["learning_rate"] == 1e-4
    capsys.readouterr()
    other = ["--size", "16", "--library-count", "10", "--base-channels", "8"]
    assert main([*resumed, *other]) == 2
    assert "differs" in capsys.readouterr().err
    assert main(["tomo-train", "--out", str(second), "--resume", str(tmp_path / "no.pt")]) == 2


def _write_session(folder: Path, series, angles: list[float]) -> None:
    """A results.h5 laid out as docs/session-format.md describes (written with h5py only)."""
    import json

    import h5py

    folder.mkdir()
    phases, headers = [], []
    for axis in ("x", "y"):
        for i, angle in enumerate(angles):
            phases.append(getattr(series, f"phase_{axis}")[i].numpy())
            frame = {
                "series_id": f"s-{axis}",
                "series_role": f"tilt_{axis}",
                f"tilt_{axis}_deg": angle,
            }
            headers.append({"frame": frame, "pixel_size_nm": LIBRARY_VOXEL_NM, "iterations": 5})
    movie = {"frame": {"series_id": "m", "series_role": "movie"}, "pixel_size_nm": 5.0}
    phases.append(phases[0] * 0)
    headers.append(movie)
    blobs = [json.dumps(h).encode() for h in headers]
    with h5py.File(folder / "results.h5", "w") as f:
        f["phi_m"] = np.stack(phases).astype("<f4")
        f["seq"] = np.arange(len(phases), dtype=np.int64)
        f["header_json"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        f["header_end"] = np.cumsum([len(b) for b in blobs]).astype(np.int64)


def test_tomo_reads_the_tilt_series_of_a_recorded_session(tmp_path: Path) -> None:
    series = sample_series("hopfion", 16, seed=1)
    keep = limit_indices(45.0)
    angles = [FULL_ANGLES_DEG[i] for i in keep]
    limited = type(series)(
        series.phase_x[keep], series.phase_y[keep], series.induction_t, series.mask, "hopfion"
    )
    _write_session(tmp_path / "session", limited, angles)
    out = tmp_path / "b.npz"
    assert main(["tomo", str(tmp_path / "session"), "--out", str(out)]) == 0
    from lorentz_live.io.tilt_series import load_tilt_series

    loaded = load_tilt_series(tmp_path / "session")
    assert loaded.angles_x_deg.tolist() == angles and loaded.phase_y.shape == (19, 16, 16)
    np.testing.assert_allclose(loaded.phase_x, limited.phase_x.numpy())
    (tmp_path / "empty").mkdir()
    assert main(["tomo", str(tmp_path / "empty"), "--out", str(out)]) == 2


def test_large_images_are_binned_to_the_maximum_size() -> None:
    from lorentz_live.tomo.reconstruct import MAX_SIZE, bin_images

    phase = torch.arange(2 * 300 * 300, dtype=torch.float32).reshape(2, 300, 300)
    binned, pixel_nm = bin_images(phase, 2.0)
    assert binned.shape == (2, 100, 100) and pixel_nm == 6.0 and MAX_SIZE >= 100
    torch.testing.assert_close(binned[0, 0, 0], phase[0, :3, :3].mean())
    same, same_nm = bin_images(phase[:, :64, :64], 2.0)
    assert same.shape == (2, 64, 64) and same_nm == 2.0
