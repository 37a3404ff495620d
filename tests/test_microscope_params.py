"""MicroscopeParams: keys shared with the wire protocol, validation, JSON."""

from __future__ import annotations

import json

import pytest

from acquisition_bridge.keys import MICROSCOPE_DEFAULTS, MICROSCOPE_KEYS
from lorentz_live.errors import InputError
from lorentz_live.physics import MicroscopeParams


def test_fields_are_the_protocol_keys() -> None:
    assert MicroscopeParams.parameter_keys() == MICROSCOPE_KEYS


def test_one_set_of_defaults() -> None:
    """The bridge's sidecar defaults are MicroscopeParams' defaults, key by key."""
    assert MicroscopeParams().to_dict() == MICROSCOPE_DEFAULTS


def test_json_subset_and_defaults(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defocus_nm": -5e5, "pixel_size_nm": 6}))
    params = MicroscopeParams.from_json(path)
    assert params.defocus_nm == -5e5
    assert params.pixel_size_nm == 6.0
    assert params.kv == 200.0
    assert params.replace(kv=300).wavelength_m < params.wavelength_m


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"defocus": -1e6}, "did you mean 'defocus_nm'"),
        ({"kv": -200}, "kv = -200"),
        ({"pixel_size_nm": 0}, "pixel_size_nm"),
        ({"defocus_nm": 1e9}, "implausible"),
        ({"defocus_nm": "1mm"}, "must be a number"),
        ({"theta_c_rad": float("nan")}, "finite"),
        ({"aperture_per_nm": -1}, "aperture_per_nm"),
    ],
)
def test_bad_values_name_the_problem(values: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        MicroscopeParams.from_mapping(values)


def test_frame_headers_may_carry_other_keys() -> None:
    params = MicroscopeParams.from_mapping({"defocus_nm": -2e5, "seq": 3}, ignore_unknown=True)
    assert params.defocus_nm == -2e5


def test_bad_json_files(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        MicroscopeParams.from_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{defocus_nm: 1")
    with pytest.raises(InputError, match="not valid JSON"):
        MicroscopeParams.from_json(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        MicroscopeParams.from_json(listed)
