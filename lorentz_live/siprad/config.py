"""Settings of one SIPRAD reconstruction (:class:`SipradConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lorentz_live.errors import InputError
from lorentz_live.physics import Material
from lorentz_live.siprad.network import NetworkConfig
from lorentz_live.siprad.thickness import check_island_thickness, check_material

AMPLITUDE_MODES = ("none", "threshold", "learn", "exclude", "thickness")
PHASE_MODELS = ("phase", "magnetisation")
STOP_RULES = ("discrepancy", "plateau", "held-out", "none")
BOUNDARIES = ("pad", "periodic")
SMOOTHING_MODES = ("none", "resolution", "fixed")


@dataclass(frozen=True)
class SipradConfig:
    """Settings of one SIPRAD reconstruction (defaults measured in docs/accuracy.md).

    Parameters
    ----------
    max_iterations : upper bound on main-loop (forward-model) iterations.
    min_iterations : no stop before this many iterations.
    pretrain_iterations : iterations fitting the DIP output to its input (cold start only).
    learning_rate : Adam step size (the output is in units of the input's std).
    input_noise : std of the fresh Gaussian noise added to the DIP input each
        iteration, in units of the input's std (0 = none).
    network : phase-DIP architecture.
    phase_model : ``"phase"`` (the DIP outputs phi_m) or ``"magnetisation"`` (the
        DIP outputs an in-plane moment, zero where the thickness map has no
        material, and phi_m is its film phase:
        :class:`lorentz_live.siprad.models.MomentPhase`; for islands in vacuum,
        ``amplitude="thickness"`` with ``island_thickness_nm`` or a known map).
    support_margin_px : ``"magnetisation"``: the material's support is widened by
        this many pixels (the estimated islands' rims are uncertain by 1-2 px).
    stop : ``"discrepancy"`` (misfit <= ``discrepancy_factor`` x estimated noise
        variance, or a plateau), ``"plateau"``, ``"held-out"`` (the misfit on the
        ``holdout_fraction`` of pixels left out of the loss has not improved for
        ``holdout_patience`` iterations; the best iterate is kept) or ``"none"``
        (run ``max_iterations``).
    discrepancy_factor : tau of the discrepancy principle.
    noise_sigma : known noise std / mean intensity; ``None`` = estimate it.
    holdout_fraction : share of the pixels (seeded random) left out of the loss
        and scored separately (``stop="held-out"``; 0 = none).
    holdout_patience : ``stop="held-out"``: iterations without a new best held-out
        misfit before stopping.
    holdout_every : the held-out misfit is scored (one extra forward pass of the
        noise-free network output) every this many iterations.
    plateau_window : iterations per window of the plateau test.
    plateau_tolerance : stop when the mean loss of a window improves on the previous
        window's by less than this fraction.
    smoothing : final smoothing of phi_m: ``"none"`` (the DIP output as is),
        ``"resolution"`` (Gaussian whose transfer is 1/2 at the noise-limited
        cut-off, :func:`lorentz_live.physics.resolution_sigma_px`) or ``"fixed"``
        (``smoothing_sigma_px``; the paper's 2 px).  Smoothing lowers |B| in walls
        narrower than the kernel (docs/accuracy.md).
    smoothing_sigma_px : Gaussian sigma of ``smoothing="fixed"``, pixels.
    average_outputs : snapshot averaging: phi_m is the mean of the phases the main
        loop fitted (noisy input) over its last this many iterations, not the kept
        network's noise-free output; 0 = off.  Not with ``stop="held-out"`` (its
        best iterate is returned).
    ensemble : DIP ensemble: this many cold-start reconstructions, network seeds
        ``seed + k * ENSEMBLE_SEED_OFFSET``, whose phases (and B) are averaged;
        ``ensemble`` times the time; averaging lowers the variance of the
        network's fit.  Measured against the single run on the grid cells SIPRAD
        loses most narrowly (docs/benchmarks.md, "SIPRAD DIP ensemble",
        ``make bench-ensemble``); not the default.  A warm start (``state``) runs
        one network; members given the same ``pretrained`` weights differ only in
        their input noise.
    calibrate_scale : after the loop, multiply phi_m by the one factor alpha that
        minimises the image misfit (:func:`lorentz_live.siprad.scale.fit_scale`):
        early stopping leaves the DIP near its damped input, and one parameter
        fitted to all pixels is robust to noise.  ``result.scale`` reports alpha.
    boundary : how the forward model treats the image edges.  ``"pad"`` (default):
        the DIP models a field ``pad_fraction`` x the size larger on each side, the
        forward model images it and the loss sees only the measured window, so a
        non-periodic (real) image has no wrap-around; ``"periodic"``: the FFT field
        is the image.  (A mirrored field was tried and dropped: it forces
        d phi / dn = 0 at the edges; docs/accuracy.md compares the two kept.)
    pad_fraction : ``"pad"``: padding per side as a fraction of the larger image side
        (at least 8 px).
    input_filter : ``"wiener"`` (SITIE of the image Wiener-filtered with the noise
        estimate; damps the 1/k^2 noise amplification of SITIE) or ``"none"``.
    loss_weighting : ``"none"`` (pixel MSE) or ``"wiener"`` (MSE weighted in
        frequency by the Wiener gain).
    amplitude : ``"none"`` (uniform), ``"threshold"`` (fixed dual-valued map from
        the image), ``"learn"`` (a second DIP, paper Methods), ``"thickness"`` (one
        thickness map from the low-passed image sets both a and phi_e:
        :mod:`lorentz_live.siprad.thickness`) or ``"exclude"``
        (uniform amplitude; the thresholded contaminants, widened by
        ``exclude_margin`` Fresnel lengths sqrt(lambda |dz|), are left out of the
        misfit and the DIP fills phi_m in under them).
    exclude_margin : ``"exclude"``: widening of the mask, in Fresnel lengths.
    threshold : amplitude threshold in units of the mean intensity (None = 3/4 of
        the mode).
    material : constants of what varies in thickness (mean inner potential V0 in V,
        absorption length xi0 in nm): they turn a thickness into a and phi_e.
    island_thickness_nm : ``"thickness"`` mode: the sample is islands of this
        thickness (nm) in vacuum (a patterned film): the thickness map is 0 or this.
        ``None``: a continuous map (contamination on a film).
    thickness_floor_nm : ``"thickness"`` mode, continuous map: where the estimated
        thickness is below this (nm) the film is clean (t = 0, not fitted); 0 = the
        map and its fit cover every pixel.
    thickness_start : ``"thickness"`` mode, estimated map: the phi_m the map is
        fitted against: ``"pretrained"`` (the pre-trained SITIE phase) or
        ``"exclude"`` (a first SIPRAD pass in ``"exclude"`` mode, which then also
        warm-starts the thickness pass: about twice the time).
    thickness_joint : ``"thickness"`` mode, estimated map: its correction goes on
        being fitted (Adam, with phi_m) in the main loop instead of being held fixed.
    amplitude_network : amplitude-DIP architecture (``"learn"`` mode).
    dual_value_every : ``"learn"`` mode: project the amplitude on two values this often.
    seed : seeds the network initialisation and the input noise.
    """

    max_iterations: int = 1500
    min_iterations: int = 20
    pretrain_iterations: int = 200
    learning_rate: float = 1.0e-3
    input_noise: float = 0.03
    network: NetworkConfig = field(default_factory=NetworkConfig)
    phase_model: str = "phase"
    support_margin_px: float = 2.0
    stop: str = "discrepancy"
    discrepancy_factor: float = 1.0
    noise_sigma: float | None = None
    holdout_fraction: float = 0.0
    holdout_patience: int = 100
    holdout_every: int = 10
    plateau_window: int = 100
    plateau_tolerance: float = 2.0e-3
    smoothing: str = "none"
    smoothing_sigma_px: float = 2.0
    average_outputs: int = 0
    ensemble: int = 1
    calibrate_scale: bool = True
    boundary: str = "pad"
    pad_fraction: float = 0.125
    input_filter: str = "wiener"
    loss_weighting: str = "none"
    amplitude: str = "none"
    threshold: float | None = None
    exclude_margin: float = 1.0
    material: Material = field(default_factory=Material)
    island_thickness_nm: float | None = None
    thickness_floor_nm: float = 0.0
    thickness_start: str = "pretrained"
    thickness_joint: bool = False
    amplitude_network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(width=8, depth=3, max_width=32)
    )
    dual_value_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        choices = (
            ("amplitude", AMPLITUDE_MODES),
            ("stop", STOP_RULES),
            ("phase_model", PHASE_MODELS),
            ("thickness_start", ("pretrained", "exclude")),
            ("boundary", BOUNDARIES),
            ("smoothing", SMOOTHING_MODES),
            ("input_filter", ("wiener", "none")),
            ("loss_weighting", ("wiener", "none")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.max_iterations < 0 or self.pretrain_iterations < 0 or self.min_iterations < 0:
            raise InputError("iteration counts must be >= 0")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_material(self.material)
        check_island_thickness(self.island_thickness_nm)
        if not self.thickness_floor_nm >= 0:
            raise InputError(f"thickness_floor_nm must be >= 0, got {self.thickness_floor_nm!r}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise InputError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction!r}")
        if self.holdout_every < 1:
            raise InputError(f"holdout_every must be >= 1, got {self.holdout_every!r}")
        if self.stop == "held-out" and self.holdout_fraction <= 0:
            raise InputError("stop='held-out' needs holdout_fraction > 0")
        if self.ensemble < 1:
            raise InputError(f"ensemble must be >= 1, got {self.ensemble!r}")
        if self.average_outputs < 0:
            raise InputError(f"average_outputs must be >= 0, got {self.average_outputs!r}")
        if not self.smoothing_sigma_px >= 0:
            raise InputError(f"smoothing_sigma_px must be >= 0, got {self.smoothing_sigma_px!r}")

    def replace(self, **changes: Any) -> SipradConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
