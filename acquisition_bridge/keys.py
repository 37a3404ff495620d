"""Microscope metadata keys shared by the wire protocol, ``--params`` JSON files
and :class:`lorentz_live.physics.MicroscopeParams` (see docs/conventions.md).

Units are in the names: lengths in nm, angles in rad, accelerating voltage in kV.
"""

MICROSCOPE_KEYS: tuple[str, ...] = (
    "kv",
    "pixel_size_nm",
    "defocus_nm",
    "cs_nm",
    "theta_c_rad",
    "defocus_spread_nm",
    "astigmatism_nm",
    "astigmatism_angle_rad",
    "aperture_per_nm",
)
