"""Seeded library of 3D magnetic textures in cylinders, for training and testing MagNet.

Every sample is a unit magnetisation m [3, N, N, N] = (m_x, m_y, m_z) on [z, y, x]
inside a cylinder (axis along z, centred in the box) of random radius and
thickness, zero outside, times a random saturation magnetisation.  Profiles are
analytic: domain walls theta(r) = 2 arctan(exp((R - r) / w)), Usov vortex cores,
Neel caps by a helicity twist gamma(z), triple-q skyrmion lattices, a toroidal
hopfion.  Lengths are in voxels, angles in rad.  The ground-truth induction
(with stray field) is :func:`lorentz_live.tomo.fields.induction_from_magnetisation`.
Optionally (``relax_steps``) the analytic state descends the micromagnetic energy
of a class-typical material (:data:`RELAX_INTERACTIONS`,
:mod:`lorentz_live.tomo.micromagnetics`) toward a nearby minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.tomo.fields import induction_from_magnetisation
from lorentz_live.tomo.micromagnetics import MagneticMaterial, energy_terms, relax

#: The MagNet paper's nine classes, then bobbers and hopfions.
CLASSES = (
    "vortex",
    "cylindrical_domains",
    "skyrmion_tube",
    "spin_helix",
    "conical",
    "neel_vortex",
    "neel_domains",
    "skyrmion_lattice",
    "single_domain",
    "bobber",
    "hopfion",
)
#: Every TEST_EVERY-th sample of a library is in the test split, the rest train.
TEST_EVERY = 5
#: Interactions of the relaxation material per class, besides exchange (A = 1e-11 J/m) and
#: the demagnetising field: DMI kind (its |D| sets the spiral period 4 pi A / D to the
#: cylinder radius; its sign is the one the texture's handedness favours) and a
#: perpendicular anisotropy of quality factor Q = K_u / (mu0 Ms^2 / 2).
RELAX_INTERACTIONS: dict[str, tuple[str | None, float]] = {
    "vortex": (None, 0.0),
    "cylindrical_domains": (None, 1.2),
    "skyrmion_tube": ("bulk", 1.2),
    "spin_helix": ("bulk", 0.0),
    "conical": ("bulk", 0.0),
    "neel_vortex": ("interfacial", 0.0),
    "neel_domains": ("interfacial", 0.0),
    "skyrmion_lattice": ("bulk", 1.2),
    "single_domain": (None, 0.0),
    "bobber": ("bulk", 1.2),
    "hopfion": ("bulk", 1.2),
}
RELAX_EXCHANGE_J_PER_M = 1.0e-11


@dataclass(frozen=True)
class Sample:
    """One library entry: class name, magnetisation (A/m) [3, N, N, N], material mask [N, N, N],
    induction (T) [3, N, N, N] including the stray field, and the material it was relaxed in
    (None: analytic)."""

    kind: str
    magnetisation_a_per_m: torch.Tensor
    mask: torch.Tensor
    induction_t: torch.Tensor
    relaxed_in: MagneticMaterial | None = None


def _wall(distance: torch.Tensor, width: float) -> torch.Tensor:
    """theta = 2 arctan(exp(distance / width)): pi deep inside (distance > 0), 0 outside."""
    return 2.0 * torch.atan(torch.exp(torch.clamp(distance / width, -30.0, 30.0)))


def _spherical(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), torch.cos(theta)]
    )


def _normalise(m: torch.Tensor) -> torch.Tensor:
    return m / torch.clamp(torch.linalg.vector_norm(m, dim=0, keepdim=True), min=1e-12)


def _random_rotation(rng: np.random.Generator) -> torch.Tensor:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return torch.tensor(q, dtype=torch.float64)


def _sign(rng: np.random.Generator) -> float:
    return float(rng.choice([-1.0, 1.0]))


def _usov_polar_angle(rho: torch.Tensor, core: float, polarity: float) -> torch.Tensor:
    """Usov core: m_z = p (c^2 - r^2) / (c^2 + r^2) inside the core radius c, 0 outside."""
    mz = polarity * torch.where(rho < core, (core**2 - rho**2) / (core**2 + rho**2), 0.0)
    return torch.acos(torch.clamp(mz, -1.0, 1.0))


def _vortex(rng, g):
    theta = _usov_polar_angle(g["rho"], rng.uniform(1.5, 3.5), _sign(rng))
    return _spherical(theta, g["psi"] + _sign(rng) * math.pi / 2)


def _neel_vortex(rng, g):
    theta = _usov_polar_angle(g["rho"], rng.uniform(1.5, 3.5), _sign(rng))
    return _spherical(theta, g["psi"] + (0.0 if _sign(rng) > 0 else math.pi))


def _tube(rng, g, *, bobber: bool):
    size = rng.uniform(0.25, 0.5) * g["radius"]
    width = rng.uniform(0.8, 2.0)
    twist = rng.uniform(2.0, 6.0)
    zeta = g["zeta"]
    # Bloch in the middle, Neel caps at the surfaces: outward on top, inward below
    gamma = _sign(rng) * math.pi / 2 * (1.0 - torch.sign(zeta) * torch.abs(zeta) ** twist)
    if bobber:
        depth = rng.uniform(-0.3, 0.5)  # the bobber ends at zeta = depth
        size = size * torch.sqrt(torch.clamp((zeta - depth) / (1.0 - depth), 0.0, 1.0))
    theta = _wall(size - g["rho"], width)
    return _sign(rng) * _spherical(theta, g["psi"] + gamma)


def _cylindrical_domains(rng, g):
    direction = rng.uniform(0, 2 * math.pi)
    period = rng.uniform(0.6, 1.2) * g["radius"]
    s = g["x"] * math.cos(direction) + g["y"] * math.sin(direction)
    wave = torch.cos(2 * math.pi * s / period + rng.uniform(0, 2 * math.pi))
    theta = torch.acos(torch.tanh(3.0 * wave))
    # Bloch walls: the in-plane part points along the walls
    return _spherical(theta, (direction + math.pi / 2) * torch.ones_like(s))


def _spin_helix(rng, g):
    rotation = _random_rotation(rng) if rng.uniform() < 0.3 else None
    direction = rng.uniform(0, 2 * math.pi)
    period = rng.uniform(0.5, 1.2) * g["radius"]
    s = g["x"] * math.cos(direction) + g["y"] * math.sin(direction)
    angle = 2 * math.pi * s / period + rng.uniform(0, 2 * math.pi)
    e_perp = (-math.sin(direction), math.cos(direction))
    m = torch.stack([e_perp[0] * torch.cos(angle), e_perp[1] * torch.cos(angle), torch.sin(angle)])
    return m if rotation is None else torch.einsum("ij,j...->i...", rotation, m)


def _conical(rng, g):
    cone = rng.uniform(0.2, 1.2)
    pitch = rng.uniform(0.5, 2.0) * g["half_thickness"] * 2
    height = g["zeta"] * g["half_thickness"]
    angle = 2 * math.pi * height / pitch + rng.uniform(0, 2 * math.pi)
    m = torch.stack(
        [
            math.sin(cone) * torch.cos(angle),
            math.sin(cone) * torch.sin(angle),
            math.cos(cone) * torch.ones_like(angle),
        ]
    )
    if rng.uniform() < 0.5:  # cone axis in a random direction
        m = torch.einsum("ij,j...->i...", _random_rotation(rng), m)
    return m


def _neel_domains(rng, g):
    direction = rng.uniform(0, 2 * math.pi)
    walls = rng.integers(1, 4)
    normal = rng.uniform(0, 2 * math.pi)
    s = g["x"] * math.cos(normal) + g["y"] * math.sin(normal)
    positions = np.sort(rng.uniform(-0.7, 0.7, size=walls)) * g["radius"]
    width = rng.uniform(1.0, 3.0)
    phi = direction * torch.ones_like(s)
    for position in positions:
        phi = phi + _sign(rng) * 2.0 * torch.atan(torch.exp((s - float(position)) / width))
    return _spherical(math.pi / 2 * torch.ones_like(s), phi)


def _skyrmion_lattice(rng, g):
    x, y = g["x"], g["y"]
    period = rng.uniform(0.45, 0.8) * g["radius"]
    offset = rng.uniform(0, 2 * math.pi)
    start = rng.uniform(0, 2 * math.pi / 3)
    helicity = _sign(rng) * math.pi / 2 if rng.uniform() < 0.7 else 0.0
    m = torch.zeros(3, *x.shape, dtype=x.dtype)
    q = 2 * math.pi / period
    for i in range(3):  # triple-q: three helices at 120 deg
        a = start + 2 * math.pi * i / 3
        phase = q * (x * math.cos(a) + y * math.sin(a)) + offset
        m[2] += torch.cos(phase)
        m[0] += -torch.sin(phase) * math.cos(a + helicity)
        m[1] += -torch.sin(phase) * math.sin(a + helicity)
    background = rng.uniform(0.5, 1.5)
    m[2] += background * _sign(rng)
    return _normalise(m)


def _single_domain(rng, g):
    v = rng.normal(size=3)
    v /= np.linalg.norm(v)
    return torch.stack([float(c) * torch.ones_like(g["x"]) for c in v])


def _hopfion(rng, g):
    rho = g["rho"]
    ring = rng.uniform(0.3, 0.6) * g["radius"]
    height = g["zeta"] * g["half_thickness"]
    tube = rng.uniform(0.5, 0.8) * min(ring, g["half_thickness"])
    distance = torch.sqrt((rho - ring) ** 2 + height**2)
    theta = math.pi * torch.exp(-((distance / tube) ** 2))
    eta = torch.atan2(height, rho - ring)  # poloidal angle around the ring
    overall = _sign(rng)
    return overall * _spherical(theta, g["psi"] + eta + _sign(rng) * math.pi / 2)


_BUILDERS = {
    "vortex": _vortex,
    "cylindrical_domains": _cylindrical_domains,
    "skyrmion_tube": lambda rng, g: _tube(rng, g, bobber=False),
    "spin_helix": _spin_helix,
    "conical": _conical,
    "neel_vortex": _neel_vortex,
    "neel_domains": _neel_domains,
    "skyrmion_lattice": _skyrmion_lattice,
    "single_domain": _single_domain,
    "bobber": lambda rng, g: _tube(rng, g, bobber=True),
    "hopfion": _hopfion,
}


def _texture(kind: str, rng: np.random.Generator, grid: dict) -> torch.Tensor:
    """Unit magnetisation [3, N, N, N] (float64) of class ``kind`` filling the box."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown texture class {kind!r}; known: {', '.join(CLASSES)}")
    return _BUILDERS[kind](rng, grid)


def relaxation_material(
    kind: str, m: torch.Tensor, mask: torch.Tensor, *, ms_a_per_m: float, radius_nm: float,
    voxel_nm: float,
) -> MagneticMaterial:  # fmt: skip
    """The class-typical material of :data:`RELAX_INTERACTIONS` for unit magnetisation ``m``."""
    dmi_kind, quality = RELAX_INTERACTIONS[kind]
    exchange = RELAX_EXCHANGE_J_PER_M
    anisotropy = quality * 0.5 * MU0_H_PER_M * ms_a_per_m**2
    if dmi_kind is None:
        return MagneticMaterial(ms_a_per_m, exchange, anisotropy_j_per_m3=anisotropy)
    dmi = 4.0 * math.pi * exchange / (radius_nm * 1e-9)  # spiral period = radius
    bulk = dmi if dmi_kind == "bulk" else 0.0
    interfacial = dmi if dmi_kind == "interfacial" else 0.0
    probe = MagneticMaterial(ms_a_per_m, exchange, bulk, interfacial, demag=False)
    sign = 1.0 if float(energy_terms(m, mask, probe, voxel_nm)[f"dmi_{dmi_kind}"]) <= 0 else -1.0
    return MagneticMaterial(
        ms_a_per_m, exchange, sign * bulk, sign * interfacial, anisotropy_j_per_m3=anisotropy
    )


def generate_sample(
    kind: str,
    size: int,
    seed: int,
    *,
    dtype: torch.dtype = torch.float32,
    relax_steps: int = 0,
    voxel_nm: float = 5.0,
) -> Sample:
    """One texture of class ``kind`` in a box of ``size``^3 voxels, reproducible from ``seed``.

    The cylinder has a radius of 0.28-0.4 ``size`` and a thickness of 0.16-0.44
    ``size`` (so vacuum stays above and below, as in a padded tomogram), centred
    within +-1 voxel; Ms is 0.3-1.2 MA/m.  ``relax_steps`` > 0: the analytic state
    then descends the energy of :func:`relaxation_material` for that many steps
    (:func:`lorentz_live.tomo.micromagnetics.relax`) on voxels of ``voxel_nm``.
    """
    rng = np.random.default_rng(seed)
    radius = rng.uniform(0.28, 0.4) * size
    half_thickness = max(1.5, rng.uniform(0.08, 0.22) * size)
    centre = np.array([size // 2] * 3, dtype=float) + rng.uniform(-1.0, 1.0, size=3)
    axis = [torch.arange(size, dtype=torch.float64) - centre[i] for i in range(3)]
    z, y, x = torch.meshgrid(axis[0], axis[1], axis[2], indexing="ij")
    rho = torch.sqrt(x**2 + y**2)
    grid = {
        "x": x,
        "y": y,
        "zeta": z / half_thickness,
        "rho": rho,
        "psi": torch.atan2(y, x),
        "radius": radius,
        "half_thickness": half_thickness,
    }
    mask = (rho <= radius) & (torch.abs(z) <= half_thickness)
    m = _texture(kind, rng, grid)
    ms = rng.uniform(0.3e6, 1.2e6)
    material = None
    if relax_steps > 0:
        m = m * mask
        material = relaxation_material(
            kind, m, mask, ms_a_per_m=ms, radius_nm=radius * voxel_nm, voxel_nm=voxel_nm
        )
        m = relax(m, mask, material, voxel_nm, steps=relax_steps).magnetisation
    magnetisation = (ms * m * mask).to(dtype)
    induction = induction_from_magnetisation(magnetisation.double()).to(dtype)
    return Sample(kind, magnetisation, mask, induction, material)


def library(count: int, size: int, seed: int, split: str = "all") -> list[tuple[int, str]]:
    """(sample seed, class) of a library of ``count`` samples cycling through :data:`CLASSES`.

    Sample i has seed ``seed * 100_003 + i`` and class ``CLASSES[i % 11]``; it is in
    the test split when ``i % TEST_EVERY == TEST_EVERY - 1``.  ``split`` is "train",
    "test" or "all".
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all, got {split!r}")
    del size  # the split does not depend on the box size
    entries = []
    for i in range(count):
        is_test = i % TEST_EVERY == TEST_EVERY - 1
        if split == "all" or (split == "test") == is_test:
            entries.append((seed * 100_003 + i, CLASSES[i % len(CLASSES)]))
    return entries
