"""The 3D panel's headless side: tilt-series progress from results headers and B.npz slices.

No Qt here.  :class:`TomoProgress` follows the tilt series the engine sees
(docs/protocol.md section 10): the ``frame`` metadata of each result
(``series_role``, ``series_id``, ``tilt_x_deg`` / ``tilt_y_deg`` and the
optional ``series_tilts``) and the engine's ``tomo`` block (tilts it collected,
completed series, volumes written).  :func:`load_volume` reads a B.npz and
:func:`slice_stack` turns one of its fields into display-ready x/y/z slices.
"""

from __future__ import annotations

import collections
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorentz_live.physics import colour_wheel_rgb

#: Header key of the tilt angle per series role (docs/protocol.md section 10).
ROLES = {"tilt_x": "tilt_x_deg", "tilt_y": "tilt_y_deg"}
#: Series the panel remembers (the oldest are forgotten).
SERIES_KEPT = 8
#: Slice orientations: normal axis -> (row axis, column axis) of the slice image.
PLANES = {"z": ("y", "x"), "y": ("z", "x"), "x": ("z", "y")}
_COMPONENT = {"x": 0, "y": 1, "z": 2}  # index of B_axis in b[3, z, y, x]
_AXIS = {"z": 0, "y": 1, "x": 2}  # index of an axis in [z, y, x]
#: Fields of a B.npz the panel can show, with their descriptions.
FIELDS = {"b": "MagNet", "b_vfet": "VFET"}


class VolumeError(ValueError):
    """A B.npz the panel cannot show (the message is one line for the operator)."""


@dataclass
class SeriesProgress:
    """One tilt series as the viewer saw it.

    angles_deg : distinct tilts seen in results (deg, order of arrival).
    expected : tilts the series will have (header ``series_tilts``), if announced.
    collected : tilts the engine collected for 3D (its ``tomo`` block), if announced.
    """

    series_id: str
    role: str
    angles_deg: list[float] = field(default_factory=list)
    current_deg: float | None = None
    expected: int | None = None
    collected: int | None = None
    complete: bool = False

    @property
    def received(self) -> int:
        """Tilts received: the engine's count when it announces one, else the results seen."""
        return max(self.collected or 0, len(self.angles_deg))

    def text(self) -> str:
        """``tilt_x tilt-x-1: 12 / 37 tilts, now +30.0°, -60.0..+30.0°, complete``."""
        count = f"{self.received} / {self.expected}" if self.expected else f"{self.received}"
        parts = [f"{self.role} {self.series_id}: {count} tilts"]
        if self.current_deg is not None and not self.complete:
            parts.append(f"now {self.current_deg:+.1f}°")
        if self.angles_deg:
            parts.append(f"{min(self.angles_deg):+.1f}..{max(self.angles_deg):+.1f}°")
        if self.complete:
            parts.append("complete")
        return ", ".join(parts)


class TomoProgress:
    """Tilt series and written volumes, fed with every result header."""

    def __init__(self) -> None:
        self.series: collections.OrderedDict[str, SeriesProgress] = collections.OrderedDict()
        self.volumes: list[dict[str, Any]] = []

    def on_result(self, header: dict[str, Any]) -> bool:
        """Update from one results header; ``True`` if anything changed."""
        changed = False
        frame = header.get("frame")
        if isinstance(frame, dict):
            changed = self._from_frame(frame)
        tomo = header.get("tomo")
        if isinstance(tomo, dict):
            changed = self._from_engine(tomo) or changed
        while len(self.series) > SERIES_KEPT:
            self.series.popitem(last=False)
        return changed

    def _entry(self, series_id: str, role: str) -> SeriesProgress:
        entry = self.series.get(series_id)
        if entry is None:
            entry = self.series[series_id] = SeriesProgress(series_id, role)
        return entry

    def _from_frame(self, frame: dict[str, Any]) -> bool:
        role = frame.get("series_role")
        angle: Any = frame.get(ROLES.get(role, "")) if isinstance(role, str) else None
        if not _finite(angle):
            return False
        entry = self._entry(str(frame.get("series_id", role)), str(role))
        angle = round(float(angle), 3)
        entry.current_deg = angle
        if angle not in entry.angles_deg:
            entry.angles_deg.append(angle)
        expected = frame.get("series_tilts")
        if isinstance(expected, int) and not isinstance(expected, bool) and expected > 0:
            entry.expected = expected
        return True

    def _from_engine(self, tomo: dict[str, Any]) -> bool:
        changed = False
        series = tomo.get("series")
        if isinstance(series, dict):
            for series_id, info in series.items():
                if not isinstance(info, dict) or info.get("role") not in ROLES:
                    continue
                entry = self._entry(str(series_id), str(info["role"]))
                tilts, complete = info.get("tilts"), bool(info.get("complete"))
                state = (tilts, complete)
                if isinstance(tilts, int) and state != (entry.collected, entry.complete):
                    entry.collected, entry.complete = state
                    changed = True
        volumes = tomo.get("volumes")
        if isinstance(volumes, list):
            volumes = [v for v in volumes if isinstance(v, dict) and isinstance(v.get("path"), str)]
            if volumes != self.volumes:
                self.volumes = volumes
                changed = True
        return changed

    def latest(self, role: str) -> SeriesProgress | None:
        """The newest series of ``role`` (``tilt_x`` / ``tilt_y``)."""
        for entry in reversed(self.series.values()):
            if entry.role == role:
                return entry
        return None

    @property
    def latest_volume(self) -> dict[str, Any] | None:
        """The engine's newest written volume (``path``, ``series_x`` ...), if any."""
        return self.volumes[-1] if self.volumes else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, eq=False)
class Volume:
    """The fields of a B.npz: name -> (3, N, N, N) in T on [z, y, x]; voxel size in nm."""

    fields: dict[str, np.ndarray]
    voxel_nm: float
    path: str
    note: str = ""


def load_volume(path: str | Path) -> Volume:
    """Read a B.npz (``b`` and/or ``b_vfet`` (3, N, N, N) T, ``pixel_size_nm``).

    Raises :class:`VolumeError` with one line naming the problem.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [name for name in FIELDS if name in data.files]
            if not names:
                raise VolumeError(f"{path.name}: no 'b' or 'b_vfet' array (found {data.files})")
            fields = {name: np.asarray(data[name]) for name in names}
            voxel = float(data["pixel_size_nm"]) if "pixel_size_nm" in data.files else None
    except VolumeError:
        raise
    except FileNotFoundError:
        raise VolumeError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, TypeError) as exc:
        raise VolumeError(f"{path.name}: not a readable .npz ({exc})") from None
    for name, b in fields.items():
        if b.ndim != 4 or b.shape[0] != 3 or not b.shape[1] == b.shape[2] == b.shape[3]:
            raise VolumeError(f"{path.name}: '{name}' must be (3, N, N, N), got {b.shape}")
        if b.shape[1] < 2:
            raise VolumeError(f"{path.name}: '{name}' has fewer than 2 voxels per side")
        if not np.issubdtype(b.dtype, np.floating) or not np.isfinite(b).all():
            raise VolumeError(f"{path.name}: '{name}' must hold finite floating-point tesla")
        fields[name] = b.astype(np.float32, copy=False)
    note = ""
    if voxel is None or not (math.isfinite(voxel) and voxel > 0):
        voxel, note = 1.0, "no valid pixel_size_nm: 1 nm voxels assumed"
    return Volume(fields, voxel, str(path), note)


@dataclass(frozen=True, eq=False)
class SliceStack:
    """Display-ready slices of one field along one normal axis.

    rgb : [n, rows, cols, 3] uint8, in-plane B as colour wheel (hue = direction
        with columns to the right and rows downward, as in the 2D maps).
    normal : [n, rows, cols] T, the component along the normal axis.
    in_plane_scale_t : in-plane |B| of full brightness.  normal_max_t : the
        symmetric level of the diverging map.
    """

    axis: str
    rgb: np.ndarray
    normal: np.ndarray
    in_plane_scale_t: float
    normal_max_t: float

    @property
    def components(self) -> tuple[str, str]:
        """In-plane components (along columns, along rows), e.g. ``("x", "y")``."""
        rows, cols = PLANES[self.axis]
        return cols, rows


def slice_stack(b: np.ndarray, axis: str) -> SliceStack:
    """Slices of ``b`` (3, N, N, N) T on [z, y, x] perpendicular to ``axis`` (z, y or x).

    The colour wheel and the diverging levels use one scale for the whole
    volume (99.5th percentile), so slices can be compared.
    """
    rows, cols = PLANES[axis]
    order = (_AXIS[axis], _AXIS[rows], _AXIS[cols])
    along_cols = np.transpose(b[_COMPONENT[cols]], order)
    along_rows = np.transpose(b[_COMPONENT[rows]], order)
    normal = np.ascontiguousarray(np.transpose(b[_COMPONENT[axis]], order))
    magnitude = np.hypot(along_cols, along_rows)
    scale = float(np.percentile(magnitude, 99.5)) or 1.0
    rgb = colour_wheel_rgb(
        torch.from_numpy(np.ascontiguousarray(along_cols)),
        torch.from_numpy(np.ascontiguousarray(along_rows)),
        max_magnitude=scale,
    )
    rgb8 = (rgb.numpy() * 255.0 + 0.5).astype(np.uint8)
    normal_max = float(np.percentile(np.abs(normal), 99.5)) or 1.0
    return SliceStack(axis, rgb8, normal, scale, normal_max)


def slice_stacks(volume: Volume) -> dict[str, dict[str, SliceStack]]:
    """Every field of ``volume`` sliced along z, y and x (run off the GUI thread)."""
    return {
        name: {axis: slice_stack(b, axis) for axis in PLANES} for name, b in volume.fields.items()
    }
