"""Reader for OOMMF / MuMax3 vector-field files (OVF 1.0 and 2.0; text, binary 4 and 8).

Written here rather than taken from a package: discretisedfield pulls in a large
plotting stack and oommfpy compiles an extension, while the format is small.
The classic bug of neighbouring readers is the byte order of binary data
(OVF 1.0 is big-endian, OVF 2.0 little-endian, and some writers ignore the
spec).  This reader does not guess: it takes the byte order in which the
mandatory check value (1234567.0 for 4-byte, 123456789012345.0 for 8-byte
data) reads correctly, and refuses the file otherwise.

Arrays are returned [z, y, x, 3] with x varying fastest in the file (OVF order),
as the [y, x] convention of docs/conventions.md with z prepended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lorentz_live.errors import InputError

_CHECK_VALUES = {4: 1234567.0, 8: 123456789012345.0}
_DATA_BEGIN = re.compile(rb"#\s*Begin:\s*Data\s+(Text|Binary\s+(4|8))\s*\r?\n", re.IGNORECASE)


@dataclass(frozen=True)
class VectorField:
    """A micromagnetic vector field on a rectangular mesh.

    values : [z, y, x, 3] float64 in the file's units (A/m for OOMMF, unit
        vectors for MuMax3's ``m``), x fastest as in the file.
    cell_size_m : (dz, dy, dx) cell size in m.
    units : value unit string from the header ("" if none).
    """

    values: np.ndarray
    cell_size_m: tuple[float, float, float]
    units: str

    @property
    def magnitude(self) -> np.ndarray:
        """|value| per cell, [z, y, x]."""
        return np.linalg.norm(self.values, axis=-1)

    @property
    def mask(self) -> np.ndarray:
        """True where a cell holds magnetic material (non-zero vector), [z, y, x]."""
        return self.magnitude > 0

    @property
    def unit_vectors(self) -> np.ndarray:
        """Direction per cell (zero where empty), [z, y, x, 3]."""
        magnitude = self.magnitude[..., None]
        return np.divide(
            self.values, magnitude, out=np.zeros_like(self.values), where=magnitude > 0
        )

    def thickness_map_m(self) -> np.ndarray:
        """Magnetic thickness per column, m: filled cells along z times dz, [y, x]."""
        return self.mask.sum(axis=0) * self.cell_size_m[0]


def read_ovf(path: str | Path) -> VectorField:
    """Read an OVF 1.0/2.0 file (text or binary 4/8, one segment, rectangular mesh).

    Raises :class:`InputError` naming the problem for anything else.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"OVF file not found: {path}") from None
    return parse_ovf(raw, name=str(path))


def parse_ovf(raw: bytes, *, name: str = "<bytes>") -> VectorField:
    """Parse the bytes of an OVF file; see :func:`read_ovf`."""
    first_line = raw.split(b"\n", 1)[0].decode("ascii", "replace").lower()
    if "oommf" not in first_line:
        raise InputError(f"{name}: not an OVF file (first line {first_line.strip()!r})")
    version = 2 if "ovf 2.0" in first_line else 1
    match = _DATA_BEGIN.search(raw)
    if match is None:
        raise InputError(f"{name}: no '# Begin: Data' line")
    header = _parse_header(raw[: match.start()].decode("latin-1"))
    if header.get("meshtype", "rectangular").lower() != "rectangular":
        raise InputError(
            f"{name}: only rectangular meshes are supported, got {header['meshtype']!r}"
        )
    if int(header.get("segment count", "1")) != 1:
        raise InputError(f"{name}: only single-segment files are supported")
    try:
        nodes = tuple(int(header[f"{axis}nodes"]) for axis in "zyx")
        steps = tuple(float(header[f"{axis}stepsize"]) for axis in "zyx")
    except KeyError as missing:
        raise InputError(f"{name}: header lacks {missing.args[0]!r}") from None
    valuedim = int(header.get("valuedim", "3"))
    if valuedim != 3:
        raise InputError(f"{name}: expected a vector field (valuedim 3), got valuedim {valuedim}")
    count = int(np.prod(nodes)) * 3
    body = raw[match.end() :]
    if match.group(2) is None:
        values = _parse_text(body, count, name)
    else:
        values = _parse_binary(body, int(match.group(2)), count, name)
    multiplier = float(header.get("valuemultiplier", "1")) if version == 1 else 1.0
    units = header.get("valueunits", header.get("valueunit", "")).split()
    mesh_unit = header.get("meshunit", "m").strip().lower()
    scale = {"m": 1.0, "nm": 1e-9, "um": 1e-6}.get(mesh_unit)
    if scale is None:
        raise InputError(f"{name}: unsupported meshunit {mesh_unit!r}")
    return VectorField(
        values=values.reshape(*nodes, 3) * multiplier,
        cell_size_m=(steps[0] * scale, steps[1] * scale, steps[2] * scale),
        units=units[0] if units else "",
    )


def _parse_header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.lstrip("#").strip()
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        key = key.strip().lower()
        if key not in header:  # keep the first Title/Desc, ignore repeats
            header[key] = value.strip()
    return header


def _parse_text(body: bytes, count: int, name: str) -> np.ndarray:
    end = body.lower().find(b"# end: data")
    text = body[: end if end >= 0 else len(body)]
    lines = [line.split(b"#", 1)[0] for line in text.splitlines()]
    try:
        values = np.array(b" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{name}: non-numeric value in text data") from None
    if values.size != count:
        raise InputError(f"{name}: expected {count} values from the header, found {values.size}")
    return values


def _parse_binary(body: bytes, width: int, count: int, name: str) -> np.ndarray:
    needed = width * (count + 1)
    if len(body) < needed:
        raise InputError(f"{name}: binary data truncated ({len(body)} of {needed} bytes)")
    for order in ("<", ">"):
        dtype = np.dtype(f"{order}f{width}")
        check = np.frombuffer(body, dtype=dtype, count=1)[0]
        if check == _CHECK_VALUES[width]:
            return np.frombuffer(body, dtype=dtype, count=count, offset=width).astype(np.float64)
    raise InputError(
        f"{name}: binary {width}-byte check value is not {_CHECK_VALUES[width]} "
        "in either byte order (corrupt file or wrong data width)"
    )


def write_ovf(
    path: str | Path,
    values: np.ndarray,
    cell_size_m: tuple[float, float, float],
    *,
    data: str = "binary4",
    version: int = 2,
    units: str = "A/m",
) -> None:
    """Write [z, y, x, 3] ``values`` as OVF (``data`` = "text", "binary4" or "binary8").

    Binary data use the spec's byte order: little-endian for 2.0, big-endian for 1.0.
    """
    nz, ny, nx, _ = values.shape
    lines = [
        "# OOMMF OVF 2.0" if version == 2 else "# OOMMF: rectangular mesh v1.0",
        "# Segment count: 1",
    ]
    lines += [
        "# Begin: Segment",
        "# Begin: Header",
        "# Title: lorentz-live",
        "# meshtype: rectangular",
    ]
    lines += ["# meshunit: m"]
    for axis, nodes, step in zip("xyz", (nx, ny, nz), cell_size_m[::-1], strict=True):
        lines += [
            f"# {axis}base: {step / 2:.17g}",
            f"# {axis}stepsize: {step:.17g}",
            f"# {axis}nodes: {nodes}",
        ]
        lines += [f"# {axis}min: 0", f"# {axis}max: {step * nodes:.17g}"]
    if version == 2:
        lines += [
            "# valuedim: 3",
            "# valuelabels: m_x m_y m_z",
            f"# valueunits: {units} {units} {units}",
        ]
    else:
        lines += [f"# valueunit: {units}", "# valuemultiplier: 1"]
    lines += ["# End: Header"]
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if data == "text":
        body = "\n".join(" ".join(f"{v:.17g}" for v in row) for row in flat.reshape(-1, 3)).encode()
        label = "Text"
    else:
        width = {"binary4": 4, "binary8": 8}[data]
        dtype = np.dtype(f"{'<' if version == 2 else '>'}f{width}")
        body = np.concatenate([[_CHECK_VALUES[width]], flat]).astype(dtype).tobytes()
        label = f"Binary {width}"
    head = ("\n".join(lines) + f"\n# Begin: Data {label}\n").encode()
    tail = f"\n# End: Data {label}\n# End: Segment\n".encode()
    Path(path).write_bytes(head + body + tail)
