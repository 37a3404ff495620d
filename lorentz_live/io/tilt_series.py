"""Tilt-series files for 3D reconstruction (``lorentz-live tomo``) and tomogram output.

A series file is an .npz with ``phase_x`` [n_x, N, N] (rad, tilts about x),
``angles_x_deg`` [n_x], ``phase_y`` [n_y, N, N], ``angles_y_deg`` [n_y] and the
scalar ``pixel_size_nm``; conventions in docs/conventions.md ("Tomography").
A recorded session folder (docs/session-format.md: ``results.h5`` with
``phi_m`` [m, h, w] and per-result JSON headers whose ``frame`` metadata carry
``series_id``, ``series_role`` tilt_x / tilt_y and ``tilt_x_deg`` / ``tilt_y_deg``)
is read too: the last x and the last y series recorded in it are used.
The tomogram file holds ``b`` and ``b_vfet`` [3, N, N, N] = (B_x, B_y, B_z) in T
on [z, y, x] and ``pixel_size_nm``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lorentz_live.errors import InputError

#: Smallest box the reconstruction accepts, voxels.
MIN_SIZE = 8


@dataclass(frozen=True)
class TiltSeries:
    """Two validated tilt series (float32 phases in rad, angles in deg) and the pixel size (nm)."""

    phase_x: np.ndarray
    angles_x_deg: np.ndarray
    phase_y: np.ndarray
    angles_y_deg: np.ndarray
    pixel_size_nm: float


def _series(data, path: Path, axis: str) -> tuple[np.ndarray, np.ndarray]:
    phase = np.asarray(data[f"phase_{axis}"], dtype=np.float64)
    angles = np.asarray(data[f"angles_{axis}_deg"], dtype=np.float64).reshape(-1)
    if phase.ndim != 3 or phase.shape[1] != phase.shape[2]:
        raise InputError(f"{path}: phase_{axis} must be (n, N, N), got {phase.shape}")
    if phase.shape[1] < MIN_SIZE:
        raise InputError(f"{path}: images of {phase.shape[1]} px; need at least {MIN_SIZE}")
    if len(angles) != phase.shape[0]:
        raise InputError(
            f"{path}: {phase.shape[0]} phase_{axis} images but {len(angles)} angles_{axis}_deg"
        )
    if len(angles) < 2:
        raise InputError(f"{path}: the {axis} series needs at least 2 tilts")
    if not np.all(np.isfinite(phase)) or not np.all(np.isfinite(angles)):
        raise InputError(f"{path}: phase_{axis} or angles_{axis}_deg holds NaN or inf")
    if np.abs(angles).max() > 90.0:
        raise InputError(f"{path}: angles_{axis}_deg must lie within -90..90 deg")
    return phase.astype(np.float32), angles


def _session_series(path: Path) -> TiltSeries:
    """The last x and y tilt series of a recorded session folder."""
    import json

    import h5py

    results = path / "results.h5"
    if not results.is_file():
        raise InputError(f"{path}: a session folder needs results.h5 (the engine's phase maps)")
    try:
        with h5py.File(results, "r", swmr=True) as f:
            count = min(len(f["seq"]), len(f["phi_m"]), len(f["header_end"]))
            ends = f["header_end"][:count]
            raw = bytes(f["header_json"][: int(ends[-1])]) if count else b""
            groups: dict[str, dict] = {}
            for i in range(count):
                start = int(ends[i - 1]) if i else 0
                header = json.loads(raw[start : int(ends[i])])
                frame = header.get("frame", {})
                role = frame.get("series_role")
                if role not in ("tilt_x", "tilt_y") or f"{role}_deg" not in frame:
                    continue
                group = groups.setdefault(
                    frame.get("series_id", role),
                    {"role": role, "index": [], "angles": [], "pixel": header["pixel_size_nm"]},
                )
                group["index"].append(i)
                group["angles"].append(float(frame[f"{role}_deg"]))
            latest = {}
            for group in groups.values():  # insertion order = recording order
                latest[group["role"]] = group
            if set(latest) != {"tilt_x", "tilt_y"}:
                raise InputError(
                    f"{path}: needs a tilt_x and a tilt_y series, found {sorted(latest)}"
                )
            phases = {role: f["phi_m"][g["index"]] for role, g in latest.items()}
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{results}: not a readable session results file ({exc})") from exc
    arrays = {
        "phase_x": phases["tilt_x"],
        "angles_x_deg": np.asarray(latest["tilt_x"]["angles"]),
        "phase_y": phases["tilt_y"],
        "angles_y_deg": np.asarray(latest["tilt_y"]["angles"]),
    }
    phase_x, angles_x = _series(arrays, path, "x")
    phase_y, angles_y = _series(arrays, path, "y")
    return TiltSeries(phase_x, angles_x, phase_y, angles_y, float(latest["tilt_x"]["pixel"]))


def load_tilt_series(path: str | Path) -> TiltSeries:
    """Read and check a series .npz or session folder; problems are :class:`InputError`."""
    path = Path(path)
    if path.is_dir():
        return _session_series(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            required = ("phase_x", "angles_x_deg", "phase_y", "angles_y_deg", "pixel_size_nm")
            missing = [key for key in required if key not in data.files]
            if missing:
                needs = ", ".join(required)
                raise InputError(f"{path}: missing {', '.join(missing)} (needs {needs})")
            phase_x, angles_x = _series(data, path, "x")
            phase_y, angles_y = _series(data, path, "y")
            pixel = np.asarray(data["pixel_size_nm"], dtype=np.float64)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable .npz ({exc})") from exc
    if phase_x.shape[1:] != phase_y.shape[1:]:
        raise InputError(f"{path}: x images {phase_x.shape[1:]} != y images {phase_y.shape[1:]}")
    if pixel.size != 1 or not np.isfinite(pixel) or float(pixel) <= 0:
        raise InputError(f"{path}: pixel_size_nm must be one positive number, got {pixel}")
    return TiltSeries(phase_x, angles_x, phase_y, angles_y, float(pixel))


def save_tomogram(path: Path, b: np.ndarray, b_vfet: np.ndarray, pixel_size_nm: float) -> None:
    """Write ``b``, ``b_vfet`` (T) [3, N, N, N] and ``pixel_size_nm`` to an .npz."""
    np.savez(
        path,
        b=b.astype(np.float32),
        b_vfet=b_vfet.astype(np.float32),
        pixel_size_nm=np.float64(pixel_size_nm),
    )
