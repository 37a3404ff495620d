"""OVF reader: the two real files, byte order of binary data, and broken files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorentz_live.errors import InputError
from lorentz_live.io.ovf import parse_ovf, read_ovf, write_ovf
from lorentz_live.physics import specimen_from_magnetisation
from tests.conftest import FIXTURES


def test_small_real_fixture_reads_with_units_and_cells() -> None:
    field = read_ovf(FIXTURES / "antiskyrmion_corner_24x24x2.omf")
    assert field.values.shape == (2, 24, 24, 3)
    assert field.cell_size_m == pytest.approx((5e-9, 5e-9, 5e-9))
    assert field.units == "A/m"
    np.testing.assert_allclose(field.magnitude, 3.4e5, rtol=1e-3)  # |M| = Ms everywhere
    assert field.values[0, 0, 0] == pytest.approx(
        [-1142.60, -835.090, 339997.0]
    )  # first line, x fastest


@pytest.mark.data
def test_real_oommf_antiskyrmion(shared_data) -> None:
    field = read_ovf(shared_data / "antiskyrmion_oommf_200x200x2.omf")
    assert field.values.shape == (2, 200, 200, 3)
    assert field.mask.all()
    np.testing.assert_allclose(field.magnitude, 3.4e5, rtol=1e-3)
    specimen = specimen_from_magnetisation(field.values, field.cell_size_m, kv=200.0)
    assert specimen.amplitude is None  # uniform slab: no amplitude or phi_e contrast
    assert specimen.phase_m.shape == (200, 200)
    assert 0.05 < float(specimen.phase_m.abs().max()) < 5.0


@pytest.mark.data
def test_real_mumax_patterned_sample(shared_data) -> None:
    field = read_ovf(shared_data / "patterned_mumax_437x437x1.ovf")
    assert field.values.shape == (1, 437, 437, 3)
    assert field.cell_size_m == pytest.approx((10e-9, 4e-9, 4e-9))
    assert field.mask.mean() == pytest.approx(0.22, abs=0.01)
    np.testing.assert_allclose(field.magnitude[field.mask], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(field.thickness_map_m()[field.mask[0]], 10e-9)
    specimen = specimen_from_magnetisation(
        field.values, field.cell_size_m, kv=200.0, ms_a_per_m=1e6
    )
    assert specimen.amplitude is not None and specimen.phase_e is not None
    inside = field.mask[0]
    assert float(specimen.amplitude[inside].max()) < 1.0
    assert float(specimen.amplitude[~inside].min()) == 1.0
    assert float(specimen.phase_e[~inside].abs().max()) == 0.0


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("data", ["text", "binary4", "binary8"])
def test_round_trip_every_encoding(tmp_path, rng, version: int, data: str) -> None:
    values = rng.normal(size=(2, 5, 7, 3)) * 1e5
    path = tmp_path / "m.ovf"
    write_ovf(path, values, (3e-9, 2e-9, 1e-9), data=data, version=version)
    field = read_ovf(path)
    tolerance = 1e-6 if data == "binary4" else 1e-12
    np.testing.assert_allclose(field.values, values, rtol=tolerance)
    assert field.cell_size_m == pytest.approx((3e-9, 2e-9, 1e-9))


def test_binary_byte_order_is_taken_from_the_check_value(tmp_path, rng) -> None:
    """An OVF 2.0 header with big-endian data (a non-conforming writer) still reads right."""
    values = rng.normal(size=(1, 3, 4, 3))
    path = tmp_path / "m.ovf"
    write_ovf(path, values, (1e-9, 1e-9, 1e-9), data="binary8", version=1)  # big-endian body
    raw = path.read_bytes().replace(b"# OOMMF: rectangular mesh v1.0", b"# OOMMF OVF 2.0", 1)
    raw = raw.replace(b"# valuemultiplier: 1", b"# valuedim: 3")
    np.testing.assert_allclose(parse_ovf(raw).values, values)


def test_broken_files_raise_input_errors(tmp_path, rng) -> None:
    path = tmp_path / "m.ovf"
    write_ovf(path, rng.normal(size=(1, 4, 4, 3)), (1e-9, 1e-9, 1e-9), data="binary4")
    raw = path.read_bytes()
    start = raw.index(b"# Begin: Data Binary 4\n") + len(b"# Begin: Data Binary 4\n")
    with pytest.raises(InputError, match="check value"):
        parse_ovf(raw[:start] + b"\x00\x00\x00\x00" + raw[start + 4 :])
    with pytest.raises(InputError, match="truncated"):
        parse_ovf(raw[: start + 20])
    with pytest.raises(InputError, match="not an OVF file"):
        parse_ovf(b"hello\nworld")
    with pytest.raises(InputError, match="found 3"):
        parse_ovf(
            b"# OOMMF OVF 2.0\n# xnodes: 1\n# ynodes: 1\n# znodes: 2\n# xstepsize: 1\n"
            b"# ystepsize: 1\n# zstepsize: 1\n# Begin: Data Text\n1 2 3\n# End: Data Text\n"
        )
    with pytest.raises(InputError, match="lacks 'znodes'"):
        parse_ovf(b"# OOMMF OVF 2.0\n# Begin: Data Text\n1 2 3\n")
    with pytest.raises(InputError, match="not found"):
        read_ovf(tmp_path / "absent.ovf")


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    data=st.sampled_from(["text", "binary4", "binary8"]),
    version=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(tmp_path_factory, shape, data: str, version: int, seed: int) -> None:
    """Any mesh shape survives write -> read in the [z, y, x, 3] order, x fastest."""
    values = np.random.default_rng(seed).normal(size=(*shape, 3))
    path = tmp_path_factory.mktemp("ovf") / "m.ovf"
    write_ovf(path, values, (1e-9, 2e-9, 3e-9), data=data, version=version)
    field = read_ovf(path)
    np.testing.assert_allclose(field.values, values, rtol=1e-6 if data == "binary4" else 1e-12)
