"""Image files and their sidecar metadata, shared by the replay and watch sources.

Formats: ``.npy`` (numpy, no pickle), ``.tif``/``.tiff`` (tifffile), ``.mrc``/
``.mrcs`` (mrcfile), ``.h5``/``.hdf5`` (h5py).  The format libraries are imported
only when such a file is read: the bridge itself needs only numpy, pyzmq, msgpack.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from acquisition_bridge.keys import MICROSCOPE_DEFAULTS, MICROSCOPE_KEYS
from acquisition_bridge.sources import SourceError

SUFFIXES: dict[str, str] = {
    ".npy": "npy",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}
_MODULES = {"tiff": "tifffile", "mrc": "mrcfile", "hdf5": "h5py"}


def file_format(path: Path) -> str | None:
    """``"npy"``, ``"tiff"``, ``"mrc"``, ``"hdf5"`` or ``None`` from the suffix."""
    return SUFFIXES.get(path.suffix.lower())


def _module(kind: str) -> Any:
    name = _MODULES[kind]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise SourceError(
            f"reading {kind.upper()} files needs {name}: pip install {name}"
        ) from None


def read_stack(path: Path, *, dataset: str | None = None) -> np.ndarray:
    """Images of ``path`` as an array [n, h, w] (a single image gives n = 1).

    ``dataset`` names the HDF5 dataset; by default the first 2-D or 3-D one.
    Raises :class:`SourceError` naming the problem.
    """
    kind = file_format(path)
    if kind is None:
        known = ", ".join(sorted(SUFFIXES))
        raise SourceError(f"{path}: unknown image format (known suffixes: {known})")
    try:
        if kind == "npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        elif kind == "tiff":
            with _module(kind).TiffFile(path) as tiff:
                series = tiff.series[0]
                if "S" in series.axes:
                    raise SourceError(f"{path}: colour TIFF (axes {series.axes}); need greyscale")
                data = series.asarray()
        elif kind == "mrc":
            with _module(kind).open(path, permissive=False) as mrc:
                data = np.array(mrc.data)
        else:
            data = _read_hdf5(path, dataset)
    except SourceError:
        raise
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except Exception as exc:  # each format library has its own errors for broken files
        raise SourceError(f"{path}: cannot read as {kind}: {exc}") from None
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or 0 in data.shape:
        raise SourceError(f"{path}: expected an image [h, w] or stack [n, h, w], got {data.shape}")
    if data.dtype.kind not in "biuf":
        raise SourceError(f"{path}: pixels of type {data.dtype} are not an image")
    return data


def _read_hdf5(path: Path, dataset: str | None) -> np.ndarray:
    h5py = _module("hdf5")
    with h5py.File(path, "r") as handle:
        if dataset is None:
            found: list[str] = []
            handle.visititems(
                lambda name, item: (
                    found.append(name)
                    if isinstance(item, h5py.Dataset) and item.ndim in (2, 3)
                    else None
                )
            )
            if not found:
                raise SourceError(f"{path}: no 2-D or 3-D dataset in the file")
            dataset = found[0]
        if dataset not in handle or not isinstance(handle[dataset], h5py.Dataset):
            raise SourceError(f"{path}: no dataset {dataset!r}")
        return handle[dataset][()]


def sidecar_path(path: Path) -> Path | None:
    """``stack.json`` or ``stack.tif.json`` next to ``stack.tif``, if present."""
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`SourceError` naming the problem otherwise."""
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(f"metadata file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read metadata file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(values, dict):
        raise SourceError(f"{path} must hold a JSON object of header keys")
    return values


def check_microscope_keys(metadata: dict[str, Any], origin: str) -> None:
    """Fill in the documented default of each microscope key ``metadata`` lacks
    (in place: the same subset as ``reconstruct --params``); raise
    :class:`SourceError` unless every value is then numeric and finite."""
    for key in MICROSCOPE_KEYS:
        metadata.setdefault(key, MICROSCOPE_DEFAULTS[key])
    for key in MICROSCOPE_KEYS:
        value = metadata[key]
        if value is None and key == "aperture_per_nm":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SourceError(f"{origin}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise SourceError(f"{origin}: {key} must be finite, got {value!r}")
