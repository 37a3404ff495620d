"""SIPRAD: magnetic phase from one defocused image with a deep image prior.

A CNN (the DIP) is given a noise-filtered SITIE phase of the image as input,
pre-trained to reproduce it, then optimised (Adam) so that the forward model
(:mod:`lorentz_live.siprad.problem`) of its output matches the measured,
mean-normalised image in the MSE sense.  Regularisation, measured in
docs/accuracy.md:

* stopping rules (:mod:`lorentz_live.siprad.stopping`): the discrepancy principle
  (misfit reaches the noise variance estimated where the envelope has removed
  the signal, :mod:`lorentz_live.siprad.noise`), a loss plateau, ``max_iterations``
  or a deadline; the iterate that stops the loop is kept;
* fresh Gaussian input noise each iteration (not accumulated);
* the DIP output is a phase in units of the input's standard deviation;
* no fixed final smoothing by default (``SipradConfig.smoothing``); the result
  states the noise-limited resolution (``resolution_nm``).

Parts: :class:`~lorentz_live.siprad.problem.ForwardProblem` (pad, crop, simulate),
the models of :mod:`lorentz_live.siprad.models` (state in, state out), the stopping
rules, and the short driver :func:`optimise`.  :meth:`SipradReconstructor.reconstruct`
takes an image, microscope parameters and optionally the :class:`SipradState` of a
previous run (warm start) and returns a :class:`SipradResult` with the new state.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lorentz_live.errors import InputError
from lorentz_live.physics import (
    MicroscopeParams,
    electron_wavelength_m,
    gaussian_filter,
    gaussian_half_transfer,
    integrated_induction,
    noise_limited_cutoff,
    resolution_sigma_px,
    sitie_phase,
    wiener_contrast,
    wiener_gain,
)
from lorentz_live.siprad.amplitude import threshold_amplitude
from lorentz_live.siprad.config import SipradConfig
from lorentz_live.siprad.models import (
    FixedAmplitude,
    InputNoise,
    LearnedAmplitude,
    ModelState,
    MomentPhase,
    OutputAverage,
    PhaseModel,
    UniformAmplitude,
    weights,
)
from lorentz_live.siprad.network import NetworkConfig
from lorentz_live.siprad.noise import NoiseEstimate, estimate_noise
from lorentz_live.siprad.problem import ForwardProblem, TransferCache
from lorentz_live.siprad.scale import fit_scale
from lorentz_live.siprad.stopping import AnyOf, Deadline, HeldOut, StopRule, stop_rule
from lorentz_live.siprad.thickness import ThicknessAmplitude, thickness_model

#: progress(iteration, max_iterations, loss); called once per main-loop iteration.
ProgressCallback = Callable[[int, int, float], None]
#: observe(iteration, phi_m) with the current unsmoothed phase (diagnostics only).
ObserveCallback = Callable[[int, torch.Tensor], None]
#: Seed offsets of the amplitude network and of the input noise.
AMPLITUDE_SEED_OFFSET = 7919
NOISE_SEED_OFFSET = 1
HOLDOUT_SEED_OFFSET = 104729
#: Seed offset between the members of a DIP ensemble (``SipradConfig.ensemble``).
ENSEMBLE_SEED_OFFSET = 1000

Amplitude = UniformAmplitude | FixedAmplitude | LearnedAmplitude | ThicknessAmplitude


@dataclass
class SipradState:
    """What a warm start needs: network weights, optimiser state, output scale.

    All tensors live on the CPU (``state_dict`` copies), so a state can cross
    devices and processes.  ``phase_scale`` (rad) converts the DIP output to phi_m.
    ``net_input`` : the DIP input [1, 1, H', W'] the weights were fitted with; a
    warm start given a state whose ``net_input`` is set (and of the right
    shape) keeps that input instead of the new image's SITIE, so its first
    iterate is the previous result.
    ``output_shift_px`` : (dy, dx) translation (periodic, band-limited) applied
    to the DIP's phase before the forward model: the live loop moves the
    previous result with the stage drift this way (a strided CNN is
    shift-equivariant only for multiples of its stride, so shifting its input
    is not the same).
    """

    network: dict[str, Any]
    optimiser: dict[str, Any]
    phase_scale: float
    network_config: NetworkConfig
    amplitude_network: dict[str, Any] | None = None
    amplitude_optimiser: dict[str, Any] | None = None
    net_input: torch.Tensor | None = None
    output_shift_px: tuple[float, float] = (0.0, 0.0)


@dataclass
class SipradResult:
    """Output of one reconstruction; arrays [H, W] float32 on the CPU.

    phi_m : magnetic phase, rad, zero mean (smoothed as ``SipradConfig.smoothing`` says).
    phi_m_raw : phi_m before smoothing, rad: the DIP's phase times ``scale``.
    smoothing_sigma_px : the smoothing applied, pixels (0 = none).
    scale : the calibration factor alpha applied to the DIP's phase (1 = none).
    resolution_nm : finest half-period phi_m can hold: the noise-limited cut-off of
        the image (Wiener gain 1/2), or the smoothing's half-transfer if coarser.
    b_x, b_y : integrated in-plane induction, T nm (of phi_m).
    image : the measured image, mean-normalised.
    image_fit : forward-model image of the kept iterate (unsmoothed phase).
    sitie : the SITIE phase used as the DIP input, rad.
    amplitude, phase_e : the amplitude map and phi_e (rad), or None.
    loss : image MSE per main-loop iteration (mean-normalised units).
    iterations : main-loop iterations used.  stop_reason : why it stopped
        (``"max_iterations"``: the iteration cap was reached before convergence).
    pretrain_iterations : pre-training iterations run (0 for a warm start).
    pretrained : the phase DIP (weights and Adam state) right after pre-training,
        on a cold start (None on a warm one): what a later cold start under the
        same conditions may start from (``reconstruct(..., pretrained=)``).
    noise : the noise estimate used by the discrepancy principle.
    target : the misfit the discrepancy principle stops at (noise power passed
        by the loss, times ``discrepancy_factor``).
    state : network weights + optimiser state for a warm start.
    seconds : wall time.
    holdout_loss : misfit of the held-out pixels every ``holdout_every`` iterations
        (noise-free network output; empty without held-out pixels).
    kept_iteration : the iterate returned (the best held-out one; else the last).
    """

    phi_m: torch.Tensor
    phi_m_raw: torch.Tensor
    smoothing_sigma_px: float
    scale: float
    resolution_nm: float
    b_x: torch.Tensor
    b_y: torch.Tensor
    image: torch.Tensor
    image_fit: torch.Tensor
    sitie: torch.Tensor
    amplitude: torch.Tensor | None
    phase_e: torch.Tensor | None
    loss: list[float]
    iterations: int
    stop_reason: str
    noise: NoiseEstimate
    target: float
    state: SipradState
    seconds: float
    pretrain_iterations: int = 0
    pretrained: ModelState | None = None
    holdout_loss: list[float] = field(default_factory=list)
    kept_iteration: int | None = None

    @property
    def final_misfit(self) -> float:
        """Training misfit (``loss``) of the iterate returned: the kept (best held-out)
        one with ``stop="held-out"``, else the last scored; NaN without iterations."""
        if not self.loss:
            return math.nan
        kept = len(self.loss) - 1 if self.kept_iteration is None else self.kept_iteration
        return self.loss[min(max(kept, 0), len(self.loss) - 1)]


def holdout_mask(
    shape: tuple[int, int], fraction: float, seed: int, device: torch.device
) -> torch.Tensor:
    """Bool [H, W]: a seeded random ``fraction`` of the pixels (held out of the loss)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < fraction).to(device)


def validate_image(image: Any) -> torch.Tensor:
    """Return ``image`` as a float32 [H, W] tensor or raise :class:`InputError`."""
    if not isinstance(image, torch.Tensor):
        try:
            image = torch.as_tensor(image)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"image cannot be read as an array: {exc}") from None
    if image.ndim != 2:
        raise InputError(f"image must be 2-D [H, W], got shape {tuple(image.shape)}")
    if image.is_complex() or image.dtype == torch.bool:
        raise InputError(f"image must be real intensities, got dtype {image.dtype}")
    if min(image.shape) < 8:
        raise InputError(f"image must be at least 8x8 pixels, got {tuple(image.shape)}")
    image = image.to(torch.float32)
    if not bool(torch.isfinite(image).all()):
        bad = int((~torch.isfinite(image)).sum())
        raise InputError(f"image has {bad} non-finite (NaN or inf) pixels")
    # single noisy pixels may be negative (Gaussian read noise); the mean may not
    if not float(image.mean()) > 0:
        raise InputError(f"image mean intensity must be > 0, got {float(image.mean()):g}")
    return image


def optimise(
    step: Callable[[int], torch.Tensor],
    update: Callable[[int], None],
    stop: StopRule,
    max_iterations: int,
    progress: ProgressCallback | None = None,
) -> tuple[list[float], int, str]:
    """Driver loop: misfit, stop test, gradient step; -> (losses, iterations, reason).

    ``step(i)`` returns the misfit of the current iterate (with a graph); the loop
    back-propagates it and ``update(i)`` applies the optimiser steps.
    The iterate that stops the loop is kept (no step after it).
    """
    losses: list[float] = []
    for iteration in range(max_iterations):
        loss = step(iteration)
        value = float(loss.detach())
        if not math.isfinite(value):
            return losses, iteration, "diverged"
        losses.append(value)
        if progress is not None:
            progress(iteration + 1, max_iterations, value)
        reason = stop(iteration, losses)
        if reason is not None:
            return losses, iteration, reason
        loss.backward()
        update(iteration)
    return losses, max_iterations, "max_iterations"


def final_smoothing(cfg: SipradConfig, image: torch.Tensor, noise_variance: float) -> float:
    """Gaussian sigma (px) of the final smoothing for ``cfg.smoothing``."""
    if cfg.smoothing == "fixed":
        return cfg.smoothing_sigma_px
    if cfg.smoothing == "resolution":
        return resolution_sigma_px(image, noise_variance)
    return 0.0


def resolution_nm(
    image: torch.Tensor, noise_variance: float, sigma_px: float, pixel_nm: float
) -> float:
    """Finest half-period (nm) the result holds: noise cut-off or smoothing, the coarser."""
    k_noise = noise_limited_cutoff(image, noise_variance)
    if k_noise is None:
        return math.inf
    k_c = min(k_noise, gaussian_half_transfer(sigma_px), 0.5)
    return pixel_nm / (2.0 * k_c)


class SipradReconstructor:
    """Reusable SIPRAD solver with a cache of transfer functions.

    Parameters
    ----------
    config : :class:`SipradConfig`.
    device : ``"cpu"``, ``"cuda"`` or a :class:`torch.device`: where the
        networks and FFTs run (the one place the device is chosen).

    Example
    -------
    >>> rec = SipradReconstructor(SipradConfig(max_iterations=50), device="cpu")
    >>> result = rec.reconstruct(image, params)            # doctest: +SKIP
    >>> again = rec.reconstruct(next_image, params, state=result.state)  # warm start
    """

    def __init__(self, config: SipradConfig | None = None, *, device: str | torch.device = "cpu"):
        self.config = config or SipradConfig()
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' requested but CUDA is not available")
        self.transfer = TransferCache(self.device)

    def _noise(self, image: torch.Tensor, params: MicroscopeParams) -> NoiseEstimate:
        if self.config.noise_sigma is not None:
            return NoiseEstimate(float(self.config.noise_sigma), 0.0, "given")
        height, width = image.shape
        return estimate_noise(image, self.transfer((height, width), params))

    def _sitie_input(
        self, image: torch.Tensor, params: MicroscopeParams, noise: NoiseEstimate, mask
    ) -> torch.Tensor:
        """SITIE phase (rad) of the image, contaminants hidden, Wiener-filtered."""
        cfg = self.config
        source = image
        if mask is not None:
            # the contaminants' contrast is not magnetic: hide it from the SITIE input
            soft = gaussian_filter(mask.to(image.dtype), 2.0)
            source = image * (1.0 - soft) + soft
        if cfg.input_filter == "wiener":
            source = wiener_contrast(source, noise.variance)
        # periodic SITIE: mirroring (Neumann edges) biases the phase of a crop
        return sitie_phase(source, params)

    def _amplitude(
        self,
        image: torch.Tensor,
        params: MicroscopeParams,
        problem: ForwardProblem,
        state,
        thickness_nm: torch.Tensor | None = None,
    ) -> tuple[Amplitude, torch.Tensor | None]:
        """The amplitude model (``config.amplitude``, or a known thickness) and mask (or None)."""
        cfg = self.config
        if cfg.amplitude == "thickness" or thickness_nm is not None:
            return thickness_model(image, params, problem, cfg, thickness_nm), None
        if cfg.amplitude == "none":
            return UniformAmplitude(), None
        amp_map = threshold_amplitude(image, cfg.material, params.kv, threshold=cfg.threshold)
        if cfg.amplitude == "exclude":
            return UniformAmplitude(), amp_map.mask
        if cfg.amplitude == "threshold":
            model = FixedAmplitude(
                problem.extend(amp_map.amplitude), problem.extend(amp_map.phase_e)
            )
            return model, amp_map.mask
        carried = None
        if state is not None and state.amplitude_network is not None:
            carried = ModelState(
                state.amplitude_network, state.amplitude_optimiser, cfg.amplitude_network
            )
        learned = LearnedAmplitude(
            cfg.amplitude_network,
            problem.extend(amp_map.amplitude),
            cfg.learning_rate,
            cfg.seed + AMPLITUDE_SEED_OFFSET,
            material=cfg.material,
            kv=params.kv,
            dual_value_every=cfg.dual_value_every,
            state=carried,
        )
        return learned, amp_map.mask

    def _phase_model(
        self,
        sitie: torch.Tensor,
        problem: ForwardProblem,
        state,
        pretrained: ModelState | None = None,
        amplitude: Amplitude | None = None,
    ) -> PhaseModel:
        cfg = self.config
        carried = net_input = None
        field = problem.extend(sitie)
        if state is None and pretrained is not None:
            # a cold start from given pre-trained weights: its own input and scale
            carried = pretrained
        elif state is not None:
            # a warm start keeps the architecture its weights were trained with
            carried = ModelState(state.network, state.optimiser, state.network_config)
            if state.net_input is not None and tuple(state.net_input.shape[-2:]) == tuple(
                field.shape
            ):
                net_input = state.net_input.to(self.device, field.dtype)
        common: dict[str, Any] = {
            "state": carried,
            "scale": None if state is None else state.phase_scale,
            "net_input": net_input,
            "shift_px": (0.0, 0.0) if state is None else tuple(state.output_shift_px),
        }
        if cfg.phase_model == "magnetisation":
            support = material_support(amplitude, problem, cfg.support_margin_px, field)
            return MomentPhase(
                cfg.network, field, cfg.learning_rate, cfg.seed, support=support, **common
            )
        return PhaseModel(cfg.network, field, cfg.learning_rate, cfg.seed, **common)

    def reconstruct(
        self,
        image: Any,
        params: MicroscopeParams,
        *,
        state: SipradState | None = None,
        progress: ProgressCallback | None = None,
        observe: ObserveCallback | None = None,
        observe_every: int = 50,
        deadline: float | None = None,
        pretrain_progress: ProgressCallback | None = None,
        thickness_nm: Any = None,
        pretrained: ModelState | None = None,
    ) -> SipradResult:
        """Reconstruct phi_m from one defocused image.

        Parameters
        ----------
        image : intensity [H, W] (raw counts or mean-normalised); any size >= 8 px.
        params : imaging conditions (defocus sign as in docs/conventions.md).
        state : warm start: weights and optimiser state of a previous result
            (pre-training is then skipped).
        progress : optional ``progress(iteration, max_iterations, loss)``.
        observe : diagnostics (benchmarks): ``observe(iteration, phi)`` every
            ``observe_every`` iterations with the current unsmoothed phi_m [H, W], rad.
        deadline : ``time.perf_counter()`` value at which the main loop stops
            (stop reason ``"time budget"``) and returns its current iterate; the
            live loop's per-frame budget.  Pre-training (cold starts) stops
            when half of the time to the deadline has passed (at least one
            iteration; ``pretrain_iterations`` in the result says how many ran).
        pretrain_progress : optional ``pretrain_progress(iteration, pretrain_iterations, loss)``
            during pre-training.
        thickness_nm : a known excess-thickness map (nm) [H, W]: amplitude and phi_e
            then follow from it and ``config.material`` (held fixed; overrides
            ``config.amplitude``).
        pretrained : cold start only: phase-DIP weights and Adam state to start
            from instead of a freshly initialised network
            (``SipradResult.pretrained`` of an earlier cold start); pre-training
            then runs ``pretrain_iterations`` more on this image (0: none).
            Ignored with ``amplitude="learn"`` and ``phase_model="magnetisation"``;
            with ``thickness_start="exclude"`` the first (exclude) pass starts from it.

        Returns
        -------
        SipradResult
        """
        cfg = self.config
        if state is None and (passes := self._passes(thickness_nm)) is not None:
            return passes(
                image, params, progress=progress, observe=observe, observe_every=observe_every,
                deadline=deadline, pretrain_progress=pretrain_progress, thickness_nm=thickness_nm,
                pretrained=pretrained,
            )  # fmt: skip
        start = time.perf_counter()
        image = validate_image(image)
        params.require_reconstruction_defocus()
        image = (image / image.mean()).to(self.device)
        noise = self._noise(image, params)
        problem = ForwardProblem.build(
            (image.shape[0], image.shape[1]), params, cfg.boundary, cfg.pad_fraction, self.transfer
        )
        amplitude, mask = self._amplitude(image, params, problem, state, thickness_nm)
        sitie = self._sitie_input(magnetic_source(amplitude, image, problem), params, noise, mask)
        if cfg.amplitude == "learn" or cfg.phase_model == "magnetisation":
            pretrained = None  # (a one-channel phase DIP's weights fit neither)
        phase = self._phase_model(sitie, problem, state, pretrained, amplitude)
        jitter = InputNoise(cfg.input_noise, cfg.seed + NOISE_SEED_OFFSET, self.device)
        pretrain_count = 0
        after_pretraining = None
        if state is None:
            pretrain_count = self._pretrain(phase, amplitude, jitter, deadline, pretrain_progress)
            after_pretraining = phase.state()
        fit_thickness(
            amplitude, phase, problem, image, estimated=thickness_nm is None, deadline=deadline,
            margin_px=cfg.support_margin_px,
        )  # fmt: skip

        weight = wiener_gain(image, noise.variance) if cfg.loss_weighting == "wiener" else None
        valid = None
        if cfg.amplitude == "exclude" and mask is not None:
            valid = ~widen(mask, cfg.exclude_margin * fresnel_length_px(params))
        held, fitted, held_out = self._held_out(image, valid)
        best, snapshots = None, OutputAverage(cfg.average_outputs)
        # expected misfit of the true phase: the noise power the loss lets through
        target = (
            cfg.discrepancy_factor
            * noise.variance
            * (1.0 if weight is None else float(weight.mean()))
        )

        def step(iteration: int) -> torch.Tensor:
            nonlocal best
            if observe is not None and iteration % observe_every == 0:
                with torch.no_grad():
                    observe(iteration, problem.measured(phase.phase(None)).cpu())
            phase.zero_grad()
            amplitude.zero_grad()
            a, phi_e = amplitude.exit(jitter)
            if held_out is not None and iteration % cfg.holdout_every == 0:
                with torch.no_grad():
                    a0, phi_e0 = amplitude.exit(None)
                    clean = problem.simulate(phase.phase(None) + phi_e0, a0)
                    held_out.record(iteration, float(_misfit(clean, image, None, held)))
                best = _snapshot(phase, amplitude) if held_out.improved else best
            fit = problem.simulate(snapshots.record(phase.phase(jitter)) + phi_e, a)
            return _misfit(fit, image, weight, fitted)

        def update(iteration: int) -> None:
            phase.update(iteration)
            amplitude.update(iteration)

        losses, iterations, reason = optimise(
            step,
            update,
            self._stop_rule(target, deadline, held_out),
            cfg.max_iterations,
            progress,
        )
        if held_out is not None and best is not None:  # the best held-out iterate
            _restore(phase, amplitude, best)
        amplitude.finish()
        return self._result(
            image,
            params,
            problem,
            phase,
            amplitude,
            sitie=sitie,
            noise=noise,
            losses=losses,
            iterations=iterations,
            reason=reason,
            target=target,
            start=start,
            pretrained=pretrain_count,
            valid=fitted,
            after_pretraining=after_pretraining,
            held_out=held_out,
            kept=iterations if held_out is None or best is None else held_out.best_iteration,
            average=snapshots.value() if best is None else None,
        )

    def _exclude_first(
        self,
        image: Any,
        params: MicroscopeParams,
        *,
        progress: ProgressCallback | None,
        observe: ObserveCallback | None,
        observe_every: int,
        deadline: float | None,
        pretrain_progress: ProgressCallback | None,
        pretrained: ModelState | None,
        thickness_nm: None = None,
    ) -> SipradResult:
        """``thickness_start="exclude"``: an ``"exclude"`` pass, then the thickness pass
        warm-started from it (its thickness map is fitted against that phi_m).

        The first (cold) pass starts from ``pretrained`` when given and reports
        pre-training to ``pretrain_progress``; ``observe`` sees both passes, the
        second's iterations counted on from the first's.  The result is the second
        pass's; ``iterations``, ``pretrain_iterations`` and ``seconds`` count both passes.
        """
        start = time.perf_counter()
        cfg = self.config.replace(thickness_start="pretrained")
        first = SipradReconstructor(cfg.replace(amplitude="exclude"), device=self.device)
        first.transfer = self.transfer
        rough = first.reconstruct(
            image, params, progress=progress, observe=observe, observe_every=observe_every,
            deadline=deadline, pretrain_progress=pretrain_progress, pretrained=pretrained,
        )  # fmt: skip
        second = SipradReconstructor(cfg, device=self.device)
        second.transfer = self.transfer
        later = None
        if observe is not None:
            offset = rough.iterations

            def later(iteration: int, phi: torch.Tensor) -> None:
                observe(offset + iteration, phi)

        result = second.reconstruct(
            image, params, state=rough.state, progress=progress, observe=later,
            observe_every=observe_every, deadline=deadline,
        )  # fmt: skip
        result.iterations += rough.iterations
        result.pretrain_iterations = rough.pretrain_iterations
        result.pretrained = rough.pretrained
        result.seconds = time.perf_counter() - start
        return result

    def _passes(self, thickness_nm: Any) -> Callable[..., SipradResult] | None:
        """A cold start made of several reconstructions (ensemble, exclude-then-thickness)."""
        if self.config.ensemble > 1:
            return self._ensemble
        if self.config.thickness_start == "exclude" and thickness_nm is None:
            return self._exclude_first
        return None

    def _ensemble(self, image: Any, params: MicroscopeParams, **options: Any) -> SipradResult:
        """``config.ensemble`` cold starts with seeds ``seed + k * ENSEMBLE_SEED_OFFSET``;
        phi_m, phi_m_raw, b_x and b_y are their means (all linear in the phase).

        ``iterations``, ``pretrain_iterations`` and ``seconds`` count every member;
        everything else (loss, image_fit, state, stop reason, scale) is the first
        member's.
        """
        start = time.perf_counter()
        cfg = self.config
        members = []
        for k in range(cfg.ensemble):
            member = SipradReconstructor(
                cfg.replace(ensemble=1, seed=cfg.seed + k * ENSEMBLE_SEED_OFFSET),
                device=self.device,
            )
            member.transfer = self.transfer
            members.append(member.reconstruct(image, params, **options))

        def mean(name: str) -> torch.Tensor:
            return torch.stack([getattr(m, name) for m in members]).mean(dim=0)

        first = members[0]
        return dataclasses.replace(
            first,
            phi_m=mean("phi_m"),
            phi_m_raw=mean("phi_m_raw"),
            b_x=mean("b_x"),
            b_y=mean("b_y"),
            iterations=sum(m.iterations for m in members),
            pretrain_iterations=sum(m.pretrain_iterations for m in members),
            seconds=time.perf_counter() - start,
        )

    def _held_out(
        self, image: torch.Tensor, valid: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, HeldOut | None]:
        """(held-out pixels, fitted pixels, rule); without held-out pixels (None, valid, None)."""
        cfg = self.config
        if cfg.holdout_fraction <= 0:
            return None, valid, None
        held = holdout_mask(
            (image.shape[0], image.shape[1]),
            cfg.holdout_fraction,
            cfg.seed + HOLDOUT_SEED_OFFSET,
            self.device,
        )
        if valid is None:
            return held, ~held, HeldOut(cfg.holdout_patience, cfg.min_iterations)
        return held & valid, valid & ~held, HeldOut(cfg.holdout_patience, cfg.min_iterations)

    def _stop_rule(
        self, target: float, deadline: float | None, held_out: HeldOut | None = None
    ) -> AnyOf:
        """The deadline (if any), then the configured rule."""
        cfg = self.config
        rule = stop_rule(
            cfg.stop,
            target=target,
            min_iterations=cfg.min_iterations,
            plateau_window=cfg.plateau_window,
            plateau_tolerance=cfg.plateau_tolerance,
            held_out=held_out,
        )
        return rule if deadline is None else AnyOf((Deadline(deadline), rule))

    def _pretrain(
        self,
        phase: PhaseModel,
        amplitude: Amplitude,
        jitter: InputNoise,
        deadline: float | None,
        progress: ProgressCallback | None,
    ) -> int:
        """Fit each DIP's output to its own input (cold start); -> iterations run.

        With a deadline, stops once half of the time to it has passed (after >= 1).
        """
        total = self.config.pretrain_iterations
        now = time.perf_counter()
        end = None if deadline is None else now + (deadline - now) / 2.0
        done = 0
        while done < total and not (done and end is not None and time.perf_counter() >= end):
            phase.zero_grad()
            amplitude.zero_grad()
            loss = phase.pretrain_loss(jitter) + amplitude.pretrain_loss(jitter)
            loss.backward()
            phase.step()
            amplitude.step()
            done += 1
            if progress is not None:
                progress(done, total, float(loss.detach()))
        return done

    def _result(
        self,
        image: torch.Tensor,
        params: MicroscopeParams,
        problem: ForwardProblem,
        phase: PhaseModel,
        amplitude: Amplitude,
        *,
        sitie: torch.Tensor,
        noise: NoiseEstimate,
        losses: list[float],
        iterations: int,
        reason: str,
        target: float,
        start: float,
        pretrained: int,
        valid: torch.Tensor | None,
        after_pretraining: ModelState | None = None,
        held_out: HeldOut | None = None,
        kept: int | None = None,
        average: torch.Tensor | None = None,
    ) -> SipradResult:
        with torch.no_grad():
            phi_raw = phase.phase(None) if average is None else average
            amp, phi_e = amplitude.exit(None)
            alpha = 1.0
            if self.config.calibrate_scale:
                alpha = fit_scale(
                    lambda a: float(
                        _misfit(problem.simulate(a * phi_raw + phi_e, amp), image, None, valid)
                    )
                )
            phi_raw = alpha * phi_raw
            image_fit = problem.simulate(phi_raw + phi_e, amp)
            phi_raw = problem.measured(phi_raw)
            sigma_px = final_smoothing(self.config, image, noise.variance)
            phi_m = gaussian_filter(phi_raw, sigma_px)
            phi_m = phi_m - phi_m.mean()
            b_x, b_y = integrated_induction(phi_m, params.pixel_size_nm)
        phase_state = phase.state()
        amp_state = amplitude.state()
        new_state = SipradState(
            network=phase_state.network,
            optimiser=phase_state.optimiser or {},
            phase_scale=phase.scale,
            network_config=phase_state.config,
            amplitude_network=None if amp_state is None else amp_state.network,
            amplitude_optimiser=None if amp_state is None else amp_state.optimiser,
            net_input=phase.input.detach().cpu().clone(),
            output_shift_px=phase.shift_px,
        )
        return SipradResult(
            phi_m=_cpu(phi_m),
            phi_m_raw=_cpu(phi_raw),
            smoothing_sigma_px=sigma_px,
            scale=alpha,
            resolution_nm=resolution_nm(image, noise.variance, sigma_px, params.pixel_size_nm),
            b_x=_cpu(b_x),
            b_y=_cpu(b_y),
            image=_cpu(image),
            image_fit=_cpu(image_fit),
            sitie=_cpu(sitie),
            amplitude=None if amp is None else _cpu(problem.measured(amp)),
            phase_e=None if amp is None else _cpu(problem.measured(torch.as_tensor(phi_e))),
            loss=losses,
            iterations=iterations,
            stop_reason=reason,
            noise=noise,
            target=target,
            state=new_state,
            seconds=time.perf_counter() - start,
            pretrain_iterations=pretrained,
            pretrained=after_pretraining,
            holdout_loss=[] if held_out is None else [v for _, v in held_out.values],
            kept_iteration=kept,
        )


def _snapshot(phase: PhaseModel, amplitude: Amplitude) -> tuple[dict, dict | None]:
    """CPU copies of the phase (and learned amplitude) network weights."""
    amp = weights(amplitude.net) if isinstance(amplitude, LearnedAmplitude) else None
    return weights(phase.net), amp


def _restore(phase: PhaseModel, amplitude: Amplitude, snapshot: tuple[dict, dict | None]) -> None:
    """Load the weights of :func:`_snapshot` back (the optimiser state is kept)."""
    phase.net.load_state_dict(snapshot[0])
    if snapshot[1] is not None and isinstance(amplitude, LearnedAmplitude):
        amplitude.net.load_state_dict(snapshot[1])


def magnetic_source(amplitude: Amplitude, image: torch.Tensor, problem: ForwardProblem):
    """The image SITIE starts from: a thickness model's own contrast removed."""
    if isinstance(amplitude, ThicknessAmplitude):
        return amplitude.magnetic_source(image, problem)
    return image


def fit_thickness(
    amplitude: Amplitude,
    phase: PhaseModel,
    problem: ForwardProblem,
    image: torch.Tensor,
    *,
    estimated: bool,
    deadline: float | None,
    margin_px: float = 0.0,
) -> None:
    """An estimated thickness map: fit it to ``image`` with phi_m at the pre-trained phase.

    A :class:`MomentPhase` then takes the fitted map's material as its support.
    """
    if isinstance(amplitude, ThicknessAmplitude) and estimated:
        amplitude.fit(problem, phase.phase(None).detach(), image, deadline=deadline)
        if isinstance(phase, MomentPhase):
            phase.support = material_support(amplitude, problem, margin_px, phase.support)


def material_support(
    amplitude: Amplitude | None,
    problem: ForwardProblem,
    margin_px: float,
    like: torch.Tensor,
) -> torch.Tensor:
    """Where a moment may sit, model-size [H', W'] (1 or 0, dtype of ``like``).

    Inside the measured window: where the thickness map has more than half its
    largest thickness, widened by ``margin_px``; everywhere without a thickness
    map.  The padding margin is always free (the unseen field outside the window).
    """
    free = torch.ones(like.shape[-2:], dtype=like.dtype, device=like.device)
    if not isinstance(amplitude, ThicknessAmplitude):
        return free
    t = problem.measured(amplitude.thickness())
    inside = widen(t > 0.5 * float(t.max()), margin_px).to(like.dtype)
    p, (height, width) = problem.pad, problem.shape
    free[p : p + height, p : p + width] = inside
    return free


def fresnel_length_px(params: MicroscopeParams) -> float:
    """sqrt(lambda |dz|) in pixels: how far defocus spreads a feature's contrast."""
    return math.sqrt(electron_wavelength_m(params.kv) * abs(params.defocus_m)) / params.pixel_size_m


def widen(mask: torch.Tensor, radius_px: float) -> torch.Tensor:
    """``mask`` [H, W] (bool) dilated by a square of half-width ceil(radius_px)."""
    r = math.ceil(radius_px)
    if r <= 0 or not bool(mask.any()):
        return mask
    grown = F.max_pool2d(mask[None, None].float(), 2 * r + 1, stride=1, padding=r)
    return grown[0, 0] > 0


def _misfit(
    fit: torch.Tensor,
    image: torch.Tensor,
    weight: torch.Tensor | None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel MSE, the Wiener-weighted spectral MSE (same units), or the MSE over ``valid``.

    Over ``valid`` pixels both images are first divided by their mean there.
    """
    if valid is not None and bool(valid.any()):
        fit, image = fit[valid], image[valid]
        return torch.mean((fit / fit.mean() - image / image.mean()) ** 2)
    if weight is None:
        return torch.mean((fit - image) ** 2)
    residual = torch.fft.fft2(fit - image)
    return torch.mean(weight * (residual.real**2 + residual.imag**2)) / residual.numel()


def _cpu(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float32)


def reconstruct(
    image: Any,
    params: MicroscopeParams,
    config: SipradConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    state: SipradState | None = None,
    progress: ProgressCallback | None = None,
) -> SipradResult:
    """One-shot convenience: ``SipradReconstructor(config, device=device).reconstruct(...)``."""
    return SipradReconstructor(config, device=device).reconstruct(
        image, params, state=state, progress=progress
    )
