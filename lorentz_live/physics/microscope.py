"""Microscope parameters for Lorentz (Fresnel) imaging.

Field names carry their units (nm, rad, kV) and are exactly the metadata keys of
the wire protocol and of ``--params FILE.json`` (``acquisition_bridge.keys``).
Derived quantities (wavelength, SI values) are properties, never stored copies.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lorentz_live.errors import InputError
from lorentz_live.physics.constants import (
    ELECTRON_MASS_KG,
    ELEMENTARY_CHARGE_C,
    NM,
    PLANCK_J_S,
    SPEED_OF_LIGHT_M_S,
)

#: Smallest |defocus| accepted for phase retrieval, nm (1 um).  Lorentz-mode
#: defocus is typically 10 um to 10 mm; a value of a few nm is almost always a
#: length given in mm or um where nm was meant.
MIN_RECONSTRUCTION_DEFOCUS_NM = 1.0e3
#: Largest |defocus| accepted anywhere, nm (50 mm).
MAX_DEFOCUS_NM = 5.0e7


def electron_wavelength_m(kv: float) -> float:
    """Relativistic electron wavelength in m for an accelerating voltage in kV.

    lambda = h / sqrt(2 m e V (1 + e V / (2 m c^2))); 2.508 pm at 200 kV.
    """
    volts = kv * 1e3
    energy_j = ELEMENTARY_CHARGE_C * volts
    momentum_sq = (
        2.0
        * ELECTRON_MASS_KG
        * energy_j
        * (1.0 + energy_j / (2.0 * ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2))
    )
    return PLANCK_J_S / math.sqrt(momentum_sq)


def interaction_constant_rad_per_v_m(kv: float) -> float:
    """Relativistic interaction constant sigma = 2 pi m e lambda / h^2, in rad / (V m).

    The electrostatic phase of a film is phi_e = sigma * V0 * t (V0 mean inner
    potential in V, t thickness in m); about 7.29e6 rad/(V m) at 200 kV.
    """
    volts = kv * 1e3
    gamma = 1.0 + ELEMENTARY_CHARGE_C * volts / (ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2)
    return (
        2.0
        * math.pi
        * gamma
        * ELECTRON_MASS_KG
        * ELEMENTARY_CHARGE_C
        * electron_wavelength_m(kv)
        / PLANCK_J_S**2
    )


@dataclasses.dataclass(frozen=True)
class MicroscopeParams:
    """Imaging conditions of one Lorentz TEM image.

    Parameters
    ----------
    kv : accelerating voltage, kV.
    pixel_size_nm : image pixel size referred to the sample, nm.
    defocus_nm : defocus, nm; negative = underfocus (docs/conventions.md).
    cs_nm : spherical aberration coefficient, nm (0.2 mm = 2e5 nm).
    theta_c_rad : beam divergence (semi-)angle, rad.
    defocus_spread_nm : defocus spread (temporal coherence), nm.
    astigmatism_nm : two-fold astigmatism magnitude C_a, nm.
    astigmatism_angle_rad : orientation phi_a of the astigmatism, rad from +x.
    aperture_per_nm : objective aperture radius in reciprocal space, 1/nm;
        ``None`` for no aperture.

    Defaults describe a 200 kV microscope in Lorentz mode at -1 mm defocus.
    """

    kv: float = 200.0
    pixel_size_nm: float = 4.0
    defocus_nm: float = -1.0e6
    cs_nm: float = 2.0e5
    theta_c_rad: float = 1.0e-5
    defocus_spread_nm: float = 80.0
    astigmatism_nm: float = 0.0
    astigmatism_angle_rad: float = 0.0
    aperture_per_nm: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "aperture_per_nm":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{field.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InputError(f"{field.name} must be finite, got {value!r}")
            object.__setattr__(self, field.name, float(value))
        _check_range("kv", self.kv, 1.0, 3000.0, "kV")
        _check_range("pixel_size_nm", self.pixel_size_nm, 1e-3, 1e4, "nm")
        if abs(self.defocus_nm) > MAX_DEFOCUS_NM:
            raise InputError(
                f"defocus_nm = {self.defocus_nm:g} nm is implausible (|defocus| > "
                f"{MAX_DEFOCUS_NM:g} nm = 50 mm); is it in nm?"
            )
        _check_range("cs_nm", self.cs_nm, 0.0, 1e9, "nm")
        _check_range("theta_c_rad", self.theta_c_rad, 0.0, 1e-2, "rad")
        _check_range("defocus_spread_nm", self.defocus_spread_nm, 0.0, 1e5, "nm")
        _check_range("astigmatism_nm", self.astigmatism_nm, 0.0, 1e7, "nm")
        if self.aperture_per_nm is not None and self.aperture_per_nm <= 0:
            raise InputError(f"aperture_per_nm must be > 0 or null, got {self.aperture_per_nm:g}")

    @property
    def wavelength_m(self) -> float:
        """Relativistic electron wavelength, m."""
        return electron_wavelength_m(self.kv)

    @property
    def wavelength_nm(self) -> float:
        """Relativistic electron wavelength, nm."""
        return self.wavelength_m / NM

    @property
    def pixel_size_m(self) -> float:
        return self.pixel_size_nm * NM

    @property
    def defocus_m(self) -> float:
        return self.defocus_nm * NM

    def require_reconstruction_defocus(self) -> None:
        """Raise :class:`InputError` unless |defocus| is usable for phase retrieval."""
        if abs(self.defocus_nm) < MIN_RECONSTRUCTION_DEFOCUS_NM:
            raise InputError(
                f"defocus_nm = {self.defocus_nm:g} nm is too small for Lorentz phase retrieval "
                f"(need |defocus| >= {MIN_RECONSTRUCTION_DEFOCUS_NM:g} nm); lengths are in nm, "
                "e.g. -1 mm is -1e6"
            )

    def replace(self, **changes: Any) -> MicroscopeParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float | None]:
        """The parameters under their protocol keys."""
        return dataclasses.asdict(self)

    @classmethod
    def parameter_keys(cls) -> tuple[str, ...]:
        """The field names, which are the protocol and JSON keys."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, ignore_unknown: bool = False
    ) -> MicroscopeParams:
        """Build from a mapping that gives any subset of the keys.

        Unknown keys raise :class:`InputError` naming the key (with a suggestion),
        unless ``ignore_unknown`` (used for frame headers that carry other metadata).
        """
        known = cls.parameter_keys()
        unknown = [key for key in values if key not in known]
        if unknown and not ignore_unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            raise InputError(f"unknown microscope parameter {key!r}{hint}")
        return cls(**{key: values[key] for key in known if key in values})

    @classmethod
    def from_json(cls, path: str | Path) -> MicroscopeParams:
        """Read a ``--params`` JSON file (an object with any subset of the keys)."""
        path = Path(path)
        try:
            if path.is_file() and path.stat().st_size > 1 << 20:
                raise InputError(f"params file {path} is larger than 1 MiB")
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise InputError(f"params file not found: {path}") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"params file {path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise InputError(f"cannot read params file {path}: {exc.strerror}") from None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"params file {path} is not valid JSON: {exc.msg} at line {exc.lineno}"
            ) from None
        except RecursionError:
            raise InputError(f"params file {path} is nested too deeply") from None
        if not isinstance(values, dict):
            raise InputError(f"params file {path} must hold a JSON object of microscope keys")
        return cls.from_mapping(values)


def _check_range(name: str, value: float, low: float, high: float, unit: str) -> None:
    if not low <= value <= high:
        raise InputError(
            f"{name} = {value:g} {unit} is outside the plausible range [{low:g}, {high:g}] {unit}"
        )
