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

#: The documented default of every key (docs/conventions.md, "Parameter keys"),
#: filled in by the replay and watch sources for keys a sidecar leaves out, so
#: a sidecar accepts the same subset as ``lorentz-live reconstruct --params``;
#: equal to the defaults of ``MicroscopeParams`` (``test_one_set_of_defaults``).
MICROSCOPE_DEFAULTS: dict[str, float | None] = {
    "kv": 200.0,
    "pixel_size_nm": 4.0,
    "defocus_nm": -1.0e6,
    "cs_nm": 2.0e5,
    "theta_c_rad": 1.0e-5,
    "defocus_spread_nm": 80.0,
    "astigmatism_nm": 0.0,
    "astigmatism_angle_rad": 0.0,
    "aperture_per_nm": None,
}
