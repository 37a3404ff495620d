"""Thickness-based amplitude model for SIPRAD: one map t(r) gives a and phi_e.

Contamination and patterning change the projected thickness t (nm, excess over
the thinnest region seen: the clean film, or the vacuum around islands).  One
thickness map sets both non-magnetic parts of the exit wave consistently
(SIPRAD eqs. 3 and 6):

    a = exp(-t / xi0),    phi_e = sigma(kV) V0 t.

The map is estimated from the image: low-passed (Gaussian of half a Fresnel
length sqrt(lambda |dz|)), most of the phase (TIE) contrast averages out and
the intensity is about a^2 = exp(-2 t / xi0) relative to the thinnest level
(the median), so

    t = -(xi0 / 2) ln(I_low / I_median)   (clamped at 0).

For a patterned film (islands of a known thickness T in vacuum) the map is
two-valued, 0 or T, cut where I_low is midway between the vacuum level and
the islands' exp(-2 T / xi0) (:func:`two_level_reference`).  After
pre-training, a correction of t is fitted to the image with phi_m held fixed;
the map then stays fixed while phi_m is optimised (:class:`ThicknessAmplitude`).
Both estimates are rough (rmse 6-8 nm on 50-60 nm particles; 1-2 px rims
round islands) and phi_e = sigma V0 t is steep (0.073 rad per nm at 10 V,
200 kV): docs/accuracy.md compares with the true thickness map.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from lorentz_live.errors import InputError
from lorentz_live.physics import (
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    electron_wavelength_m,
    electrostatic_phase,
    gaussian_filter,
)

if TYPE_CHECKING:
    from lorentz_live.siprad.config import SipradConfig
    from lorentz_live.siprad.problem import ForwardProblem

#: Low-pass of the thickness estimate, in Fresnel lengths sqrt(lambda |dz|).
ESTIMATE_SMOOTHING_FRESNEL = 0.5
#: Smoothing of the fitted correction of t, in Fresnel lengths.
FIT_SMOOTHING_FRESNEL = 0.25
#: Adam step of the thickness correction, in units of xi0 (per iteration).
FIT_RATE_XI0 = 2.0e-3
#: Islands: starting logit of the fitted island map (sigmoid(4) = 0.98) and its Adam step.
ISLAND_LOGIT = 4.0
FIT_RATE_LOGIT = 0.1
#: Iterations of the thickness fit (phi_m held fixed) after pre-training.
FIT_ITERATIONS = 300
#: SITIE input of a continuous map: hidden where phi_e exceeds this, rad.
HIDE_PHASE_RAD = 0.5


def fresnel_length_px(params: MicroscopeParams) -> float:
    """sqrt(lambda |dz|) in pixels: how far defocus spreads a feature's contrast."""
    return math.sqrt(electron_wavelength_m(params.kv) * abs(params.defocus_m)) / params.pixel_size_m


def check_material(material: Material) -> Material:
    """``material`` if both constants are finite and > 0, else :class:`InputError`."""
    for name, value in (
        ("mean inner potential (V)", material.mean_inner_potential_v),
        ("absorption length (nm)", material.absorption_length_nm),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"material {name} must be a finite number > 0, got {value!r}")
    return material


def check_island_thickness(value: float | None) -> float | None:
    """``value`` (nm) if None or finite and > 0, else :class:`InputError`."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"island thickness must be a finite number of nm > 0, got {value!r}")
    return value


def estimate_thickness(
    image: torch.Tensor,
    material: Material,
    params: MicroscopeParams,
    *,
    island_thickness_nm: float | None = None,
    sigma_px: float | None = None,
) -> torch.Tensor:
    """Excess thickness t (nm) [H, W] implied by the low-passed image.

    Parameters
    ----------
    image : intensity [H, W], any positive scale.
    material : V0 (V) and xi0 (nm) of what varies in thickness.
    params : imaging conditions (defocus and pixel size set the low-pass).
    island_thickness_nm : patterned film: islands of this thickness (nm) in vacuum;
        the map is then two-valued (0 or this).  ``None``: continuous map.
    sigma_px : Gaussian low-pass, pixels (default half a Fresnel length).
    """
    check_material(material)
    check_island_thickness(island_thickness_nm)
    if sigma_px is None:
        sigma_px = ESTIMATE_SMOOTHING_FRESNEL * fresnel_length_px(params)
    image = image / image.mean()
    low = gaussian_filter(image, sigma_px).clamp_min(1e-3)
    xi0 = material.absorption_length_nm
    if island_thickness_nm is not None:
        contrast = math.exp(-2.0 * island_thickness_nm / xi0)
        reference = two_level_reference(low, contrast)
        cut = 0.5 * (1.0 + contrast) * reference
        return torch.where(low < cut, island_thickness_nm, 0.0).to(image.dtype)
    reference = thinnest_level(low)
    return (-0.5 * xi0 * torch.log(low / reference)).clamp_min(0.0)


def thinnest_level(low: torch.Tensor) -> float:
    """Intensity of the thinnest region: the median of ``low``.

    Assumes the thicker parts (contamination) cover less than half the field;
    a histogram mode was noisier (+-4 % against +-2 % on the test images).
    """
    return float(low.median())


def two_level_reference(low: torch.Tensor, contrast: float, steps: int = 200) -> float:
    """Vacuum intensity r of a two-level image (vacuum r, islands r x ``contrast``).

    The r minimising the squared distance of every pixel to the nearer level,
    searched between the median and the maximum of ``low`` (on at most
    65536 pixels, evenly strided).
    """
    flat = low.flatten()
    flat = flat[:: max(1, flat.numel() // 65536)]
    best, best_cost = float(flat.median()), math.inf
    for r in torch.linspace(float(flat.median()), float(flat.max()), steps).tolist():
        cost = float(torch.minimum((flat - r) ** 2, (flat - contrast * r) ** 2).sum())
        if cost < best_cost:
            best, best_cost = r, cost
    return best


class ThicknessAmplitude:
    """Amplitude and phi_e from one thickness map t (nm), model-size [H, W].

    :meth:`fit` corrects the map to the image with phi_m held at the
    pre-trained phase (a continuous map only where the estimate exceeds
    ``floor_nm``: elsewhere the film is clean, t = 0, so the fit cannot turn
    magnetic contrast into thickness there); the map is then held fixed in SIPRAD's main loop
    (optimising it jointly with phi_m let t absorb the magnetic phase, for
    contamination and islands alike).  Continuous map: t = clamp(t0 + G * c, 0,
    t_max), c optimised by Adam (G: Gaussian of ``smoothing_px``; t_max twice
    the largest t0).  Islands (``islands``: 0 or the island thickness T):
    t = T sigmoid(l0 + G * c), l0 = +-``ISLAND_LOGIT`` from the estimate, then
    rounded to 0 or T.

    The SITIE input (:meth:`magnetic_source`) divides the image by the islands'
    own image, or hides the contamination where phi_e exceeds ``HIDE_PHASE_RAD``.
    """

    def __init__(
        self,
        thickness_nm: torch.Tensor,
        material: Material,
        kv: float,
        *,
        smoothing_px: float = 0.0,
        max_nm: float | None = None,
        islands: bool = False,
        floor_nm: float = 0.0,
        joint: bool = False,
    ) -> None:
        # clean film: below ``floor_nm`` the map is 0 and the fit leaves it there
        self.support = (thickness_nm > floor_nm).to(thickness_nm.dtype) if floor_nm > 0 else None
        if self.support is not None:
            thickness_nm = thickness_nm * self.support
        self.thickness_nm = thickness_nm
        self.material = check_material(material)
        self.kv = kv
        self.smoothing_px = smoothing_px
        self.max_nm = max(max_nm if max_nm is not None else 2.0 * float(thickness_nm.max()), 1e-6)
        self.islands = islands
        self.joint = joint
        self.correction: torch.Tensor | None = None
        self.optimiser: torch.optim.Optimizer | None = None
        self.start = torch.where(thickness_nm > 0.5 * self.max_nm, ISLAND_LOGIT, -ISLAND_LOGIT)

    def thickness(self) -> torch.Tensor:
        """Current t (nm) [H, W] (with a graph while :meth:`fit` runs)."""
        if self.correction is None:
            return self.thickness_nm
        smooth = gaussian_filter(self.correction, self.smoothing_px)
        if self.islands:
            return self.max_nm * torch.sigmoid(self.start + smooth)
        t = (self.thickness_nm + smooth).clamp(0.0, self.max_nm)
        return t if self.support is None else t * self.support

    def exit(self, noise: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(amplitude, phi_e in rad) of the thickness map, model-size."""
        t = self.thickness()
        return (
            amplitude_from_thickness(t, self.material),
            electrostatic_phase(t, self.material, self.kv),
        )

    def fit(
        self,
        problem: ForwardProblem,
        phi_m: torch.Tensor,
        image: torch.Tensor,
        iterations: int | None = None,
        deadline: float | None = None,
    ) -> list[float]:
        """Correct the map to ``image`` with ``phi_m`` held fixed; -> misfit per iteration.

        ``phi_m`` [H', W'] model-size, rad; ``image`` the measured mean-normalised
        image [H, W]; ``iterations``: Adam steps (default ``FIT_ITERATIONS``);
        ``deadline``: a ``time.perf_counter()`` value to stop at.
        """
        iterations = FIT_ITERATIONS if iterations is None else iterations
        phi_m = phi_m.detach()
        self.correction = torch.zeros_like(self.thickness_nm, requires_grad=True)
        rate = FIT_RATE_LOGIT if self.islands else FIT_RATE_XI0 * self.material.absorption_length_nm
        optimiser = torch.optim.Adam([self.correction], lr=rate)
        self.optimiser = optimiser
        losses: list[float] = []
        for _ in range(iterations):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            optimiser.zero_grad(set_to_none=True)
            a, phi_e = self.exit()
            loss = torch.mean((problem.simulate(phi_m + phi_e, a) - image) ** 2)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        if not self.joint:
            self._freeze()
        return losses

    def _freeze(self) -> None:
        """Bake the correction into the map (rounded to 0 or T for islands)."""
        with torch.no_grad():
            t = self.thickness()
            if self.islands:
                t = torch.where(t > 0.5 * self.max_nm, self.max_nm, 0.0).to(t.dtype)
        self.thickness_nm, self.correction, self.optimiser = t, None, None

    def pretrain_loss(self, noise: object = None) -> float:
        """Nothing to pre-train."""
        return 0.0

    def zero_grad(self) -> None:
        """Clear the correction's gradient (``joint``; else the map is fixed)."""
        if self.optimiser is not None:
            self.optimiser.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Nothing to step (pre-training)."""

    def update(self, iteration: int) -> None:
        """``joint``: one Adam step of the correction with phi_m; else nothing (fixed map)."""
        if self.optimiser is not None:
            self.optimiser.step()

    def finish(self) -> None:
        """``joint``: bake the correction in (the map is fixed from now on)."""
        if self.correction is not None:
            self._freeze()

    def state(self) -> None:
        """No network state."""
        return None

    def magnetic_source(self, image: torch.Tensor, problem: ForwardProblem) -> torch.Tensor:
        """``image`` [H, W] with the thickness map's own contrast removed (SITIE input).

        Islands: divided by the image of (a, phi_e) alone.  Otherwise: set to 1
        (softly, 2 px) where phi_e > ``HIDE_PHASE_RAD``: the strong phase of thick
        contamination makes the division unreliable.
        """
        with torch.no_grad():
            a, phi_e = self.exit()
            if self.islands:
                own = problem.simulate(phi_e, a)
                return image / own.clamp_min(0.05)
            hide = (problem.measured(phi_e) > HIDE_PHASE_RAD).to(image.dtype)
            soft = gaussian_filter(hide, 2.0)
            return image * (1.0 - soft) + soft


def known_thickness(thickness_nm: object, shape: tuple[int, int]) -> torch.Tensor:
    """A user's thickness map (nm) as float32 [H, W], or :class:`InputError`."""
    try:
        t = torch.as_tensor(thickness_nm, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"thickness map cannot be read as an array: {exc}") from None
    if tuple(t.shape) != tuple(shape):
        raise InputError(f"thickness map shape {tuple(t.shape)} != image shape {tuple(shape)}")
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0:
        raise InputError("thickness map must be finite and >= 0 nm")
    return t


def thickness_model(
    image: torch.Tensor,
    params: MicroscopeParams,
    problem: ForwardProblem,
    config: SipradConfig,
    thickness_nm: object = None,
) -> ThicknessAmplitude:
    """The :class:`ThicknessAmplitude` of a SIPRAD run (model-size maps).

    ``thickness_nm`` (nm, [H, W]): a known map; ``None``: estimated from
    ``image`` (:func:`estimate_thickness`) for ``config.island_thickness_nm``.
    """
    islands = config.island_thickness_nm is not None
    if thickness_nm is not None:
        t = known_thickness(thickness_nm, (image.shape[0], image.shape[1])).to(image.device)
        islands = islands or int(torch.unique(t).numel()) <= 2  # a two-valued map: islands
    else:
        t = estimate_thickness(
            image, config.material, params, island_thickness_nm=config.island_thickness_nm
        )
    return ThicknessAmplitude(
        problem.extend(t),
        config.material,
        params.kv,
        smoothing_px=FIT_SMOOTHING_FRESNEL * fresnel_length_px(params),
        max_nm=config.island_thickness_nm,
        islands=islands,
        floor_nm=0.0 if thickness_nm is not None else config.thickness_floor_nm,
        joint=config.thickness_joint and thickness_nm is None,
    )
