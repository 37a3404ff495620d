"""Reading and writing 2D images and phase maps (.npy, .npz, .tif/.tiff, .mrc, .dm3/.dm4)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lorentz_live.errors import InputError

IMAGE_SUFFIXES = (".npy", ".npz", ".tif", ".tiff", ".mrc", ".dm3", ".dm4")


def load_image(path: str | Path, *, what: str = "image", npz_key: str = "image") -> np.ndarray:
    """Load one 2D, finite image as float32 [H, W].

    A stack with a single frame ([1, H, W]) is accepted.  Raises
    :class:`InputError` naming the file and the problem otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(
            f"{what} file {path}: unknown format {suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        data = _READERS[suffix](path, npz_key)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{what} file {path}: cannot read it as {suffix} ({exc})") from None
    return check_image(np.asarray(data), what=f"{what} {path}")


def check_image(data: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Validate a 2D real finite image; return it as float32 [H, W]."""
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise InputError(f"{what}: expected a 2D image, got shape {tuple(data.shape)}")
    if min(data.shape) < 8:
        raise InputError(
            f"{what}: image of shape {tuple(data.shape)} is too small (need >= 8 px per side)"
        )
    if np.iscomplexobj(data) or not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{what}: expected real numbers, got dtype {data.dtype}")
    data = data.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(f"{what}: {bad} pixels are NaN or infinite")
    return data


def _read_npy(path: Path, _key: str) -> np.ndarray:
    with path.open("rb") as file:
        magic = file.read(6)
    if not magic:
        raise InputError(f"{path} is empty")
    if magic != b"\x93NUMPY":  # np.load would call anything else "pickled data"
        raise InputError(f"{path} is not a NumPy .npy file (no .npy header)")
    return np.load(path, allow_pickle=False)


def _read_npz(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        if key not in archive:
            raise InputError(
                f"{path}: .npz has no array {key!r} (has {', '.join(archive.files) or 'none'})"
            )
        return archive[key]


def _read_tiff(path: Path, _key: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def _read_mrc(path: Path, _key: str) -> np.ndarray:
    try:
        import mrcfile
    except ImportError:
        raise InputError(
            "reading .mrc needs the 'formats' extra: pip install 'lorentz-live[formats]'"
        ) from None
    with mrcfile.open(path, permissive=False) as mrc:
        return np.array(mrc.data)


def _read_dm(path: Path, _key: str) -> np.ndarray:
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError:
        raise InputError(
            f"reading {path.suffix} needs rosettasciio: pip install rosettasciio"
        ) from None
    return file_reader(str(path))[0]["data"]


_READERS = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".mrc": _read_mrc,
    ".dm3": _read_dm,
    ".dm4": _read_dm,
}


def output_path(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """Check that an output path has an allowed suffix and a writable folder."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"output {path}: expected a {' or '.join(suffixes)} file")
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}")
    return path
