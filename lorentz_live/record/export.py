"""Export a session's reconstructions: TIFF stacks with metadata, a colour-wheel movie."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorentz_live.errors import InputError
from lorentz_live.physics import colour_wheel_rgb
from lorentz_live.record.reader import SessionReader

MOVIE_SUFFIXES = (".gif", ".mp4")


def _pixel_size_nm(reader: SessionReader) -> float | None:
    headers = reader.result_headers
    return float(headers[0]["pixel_size_nm"]) if headers and "pixel_size_nm" in headers[0] else None


def _chosen(reader: SessionReader, method: str | None) -> list[int]:
    indices = reader.result_indices(method)
    if not indices:
        what = f" by {method}" if method else ""
        raise InputError(f"{reader.folder} holds no reconstructions{what} to export")
    return indices


def export_tiff(reader: SessionReader, prefix: Path, *, method: str | None = None) -> list[Path]:
    """Write ``PREFIX_phi_m.tif`` [m, h, w] (rad) and ``PREFIX_b.tif`` [m, 2, h, w] (T nm).

    Each file's description holds JSON metadata (tifffile "shaped" format): the
    axes, the unit, the frame ``seq`` of every result and the pixel size; the
    TIFF resolution is set from the pixel size.  ``method``: the results of which
    method (default: SIPRAD's when present, see ``SessionReader.result_indices``).
    Existing files are not overwritten.
    """
    import tifffile

    chosen = _chosen(reader, method)
    phi = np.asarray(reader.result_stack("phi_m", chosen), dtype=np.float32)
    b = np.stack([reader.result_stack("b_x", chosen), reader.result_stack("b_y", chosen)], axis=1)
    pixel = _pixel_size_nm(reader)
    common = {
        "seq": reader.result_seqs[chosen].tolist(),
        "method": reader.result_headers[chosen[0]].get("method", "siprad"),
        "pixel_size_nm": pixel,
        "session": str(reader.folder),
        "software": reader.info.get("software", {}),
    }
    outputs = [
        (Path(f"{prefix}_phi_m.tif"), phi, {"axes": "TYX", "unit": "rad", "quantity": "phi_m"}),
        (
            Path(f"{prefix}_b.tif"),
            np.asarray(b, dtype=np.float32),
            {"axes": "TCYX", "unit": "T nm", "quantity": "b_x, b_y (channel 0, 1)"},
        ),
    ]
    for path, _, _ in outputs:
        if path.exists():
            raise InputError(f"{path} exists; not overwritten")
    written = []
    for path, data, meta in outputs:
        resolution = None if pixel is None else (1e7 / pixel, 1e7 / pixel)  # px per cm
        tifffile.imwrite(
            path,
            data,
            photometric="minisblack",
            metadata={**meta, "info": json.dumps(common)},
            resolution=resolution,
            resolutionunit="CENTIMETER" if resolution else None,
        )
        written.append(path)
    return written


def colour_movie(reader: SessionReader, *, method: str | None = None) -> np.ndarray:
    """[m, h, w, 3] uint8 colour-wheel frames of B, one brightness scale for the whole movie."""
    chosen = _chosen(reader, method)
    b_x = torch.from_numpy(np.asarray(reader.result_stack("b_x", chosen)))
    b_y = torch.from_numpy(np.asarray(reader.result_stack("b_y", chosen)))
    magnitude = torch.sqrt(b_x**2 + b_y**2)
    scale = float(
        torch.quantile(magnitude.reshape(-1)[:: max(1, magnitude.numel() // 2**24)], 0.995)
    )
    rgb = colour_wheel_rgb(b_x, b_y, max_magnitude=max(scale, 1e-30))
    return (rgb.numpy() * 255.0 + 0.5).astype(np.uint8)


def export_movie(
    reader: SessionReader, path: Path, *, fps: float = 10.0, method: str | None = None
) -> Path:
    """Write the colour-wheel movie of B as GIF or MP4 (H.264), for talks."""
    import imageio.v2 as imageio

    suffix = path.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise InputError(f"{path}: movie must end in {' or '.join(MOVIE_SUFFIXES)}")
    if path.exists():
        raise InputError(f"{path} exists; not overwritten")
    if not fps > 0:
        raise InputError(f"--fps must be > 0, got {fps:g}")
    frames = colour_movie(reader, method=method)
    if suffix == ".gif":
        imageio.mimwrite(path, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
        return path
    # H.264 wants sides that are multiples of 16: pad with black instead of rescaling
    height, width = frames.shape[1:3]
    pad = ((0, 0), (0, -height % 16), (0, -width % 16), (0, 0))
    frames = np.pad(frames, pad)
    writer: Any = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=8)
    with writer as movie:
        for frame in frames:
            movie.append_data(frame)
    return path
