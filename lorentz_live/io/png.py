"""Minimal PNG writer (8-bit grey or RGB) with no imaging dependency."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def to_uint8(
    image: np.ndarray, *, low: float | None = None, high: float | None = None
) -> np.ndarray:
    """Scale a float image linearly to 0-255 (default range: 0.5 and 99.5 percentiles)."""
    image = np.asarray(image, dtype=np.float64)
    low = float(np.percentile(image, 0.5)) if low is None else low
    high = float(np.percentile(image, 99.5)) if high is None else high
    scaled = (image - low) / max(high - low, np.finfo(float).tiny)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write [H, W] grey or [H, W, 3] RGB; uint8 as is, floats in [0, 1] scaled to 255."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        colour_type, channels = 0, 1
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f"PNG needs [H, W] or [H, W, 3], got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
