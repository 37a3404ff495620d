"""The two physics methods of the live loop: Wiener-SITIE (instant) and warm SIPRAD.

Both follow :class:`lorentz_live.live.interface.Reconstructor`.

SIPRAD warm start: consecutive frames of an in-situ movie differ little, so the
DIP weights (and Adam's moments, ``LiveConfig.carry_optimiser``) that fit frame
n start frame n+1.  The DIP keeps the input it was fitted with and its output
is translated by the drift measured between the frames, accumulated
(``LiveConfig.warm_input = "previous"``, ``shift_for_drift``), so the first
warm iterate is frame n's result moved with the sample: a weight set
fitted for hundreds of iterations to one input does not map a new input (frame
n+1's SITIE) to a good phase (benchmarks/live.py).  The warm iteration budget
adapts to how much the frame changed (:func:`warm_budget`).
A cold start (pre-trained weights from :mod:`lorentz_live.live.pretrained`,
or pre-training on a cache miss, then a fit capped by ``cold_budget_s`` that
the next frames continue with ``recover_iterations``) happens for the first
frame, on request, when the microscope parameters or the image shape change to
conditions not seen before (a return to one of the last 4 known conditions,
e.g. a defocus set back, resumes their last state with ``recover_iterations``),
and when the warm start diverges.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from lorentz_live.live.average import RunningMean
from lorentz_live.live.interface import Estimate, LiveFrame, params_change
from lorentz_live.live.pretrained import PretrainedCache, default_cache_dir, pretrained_key
from lorentz_live.physics import (
    MicroscopeParams,
    forward_image,
    sitie_phase,
    transfer_function,
    wiener_contrast,
)
from lorentz_live.physics.registration import estimate_shift, fourier_shift
from lorentz_live.siprad import (
    ModelState,
    SipradReconstructor,
    SipradResult,
    SipradState,
    estimate_noise,
)

if TYPE_CHECKING:
    from lorentz_live.live.engine import LiveConfig


class TransferCache:
    """T(k) per (shape, params) on one device, the 8 most recent kept."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self._cache: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()

    def __call__(self, shape: tuple[int, int], params: MicroscopeParams) -> torch.Tensor:
        key = (shape, params)
        if key not in self._cache:
            self._cache[key] = transfer_function(shape, params, device=self.device)
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]


def wiener_sitie(
    image: torch.Tensor, params: MicroscopeParams, transfer: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """SITIE phase (rad, zero mean) of the Wiener-filtered mean-normalised ``image``
    [H, W], and the estimated noise variance (mean-normalised units)."""
    norm = image / image.mean()
    noise = estimate_noise(norm, transfer)
    phase = sitie_phase(wiener_contrast(norm, noise.variance), params)
    return phase - phase.mean(), noise.variance


def model_fit(phi_m: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """Mean-normalised forward-model image of ``phi_m`` [H, W] (uniform amplitude)."""
    fit = forward_image(phi_m, transfer, None, normalise=False)
    return fit / fit.mean()


class SitieMethod:
    """Instant answer: SITIE of the Wiener-filtered frame, a few ms at 128 px.

    average : weight of the newest frame in a drift-registered running mean of
        the frames (:class:`lorentz_live.live.average.RunningMean`) whose SITIE
        is the answer; 1 (the default here) = the frame alone.
    follow_fading : the mean follows a fading texture faster
        (:class:`~lorentz_live.live.average.RunningMean`; ``False``: the fixed
        weight, for the benchmark).
    """

    method = "sitie"

    def __init__(
        self, device: str | torch.device = "cpu", average: float = 1.0, follow_fading: bool = True
    ) -> None:
        self._transfer = TransferCache(device)
        self._mean = RunningMean(average, follow_fading=follow_fading)

    def request_restart(self, reason: str) -> None:
        """Forget the running mean (single frames are stateless)."""
        self._mean.clear()

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate:
        transfer = self._transfer((int(image.shape[0]), int(image.shape[1])), frame.params)
        image = image.to(transfer.device)
        norm = image / image.mean()
        update = self._mean.update(norm, frame.seq, frame.params, transfer)
        phase, _ = wiener_sitie(update.mean, frame.params, transfer)
        fit = model_fit(phase, transfer)
        loss = float(torch.mean((fit - norm) ** 2))
        return Estimate(
            phi_m=phase.cpu(),
            image_fit=fit.cpu(),
            loss=[loss],
            iterations=0,
            stop_reason="one pass" if update.reset else "one pass, running mean",
            warm=False,
            drift_px=update.drift_px or (0.0, 0.0),
            average=update.mean.cpu(),
        )


@dataclasses.dataclass(frozen=True)
class FrameChange:
    """How a frame differs from the previous one the method saw.

    ratio : mean squared difference of the two mean-normalised frames (after
        undoing the measured drift) over twice the noise variance: ~1 when only
        the noise differs.  gap : seq difference (1 = consecutive).
    drift_px : (dy, dx) shift, px.
    """

    ratio: float
    gap: int
    drift_px: tuple[float, float]


def frame_change(
    previous: torch.Tensor, image: torch.Tensor, noise_variance: float, gap: int
) -> FrameChange:
    """:class:`FrameChange` between two mean-normalised frames [H, W]."""
    drift = estimate_shift(previous, image)
    aligned = fourier_shift(previous, drift)
    difference = float(torch.mean((image - aligned) ** 2))
    ratio = difference / (2.0 * noise_variance) if noise_variance > 0 else math.inf
    return FrameChange(ratio=ratio, gap=gap, drift_px=drift)


def warm_budget(
    change: FrameChange | None, config: LiveConfig, *, converged: bool = True
) -> tuple[int, str]:
    """Iteration cap of a warm frame and a word on why.

    A still sample (``ratio < still_ratio``, consecutive, drift < 1 px) whose
    previous frame ``converged`` (reached the discrepancy target) gets half of
    ``warm_max_iterations``; a gap in ``seq`` over ``max_gap`` or a
    change ratio over ``large_change_ratio`` gets ``recover_iterations`` (a
    cold-like budget without pre-training); otherwise ``warm_max_iterations``.
    """
    if change is None or not config.adaptive:
        return config.warm_max_iterations, "fixed"
    if change.gap > config.max_gap or change.ratio > config.large_change_ratio:
        return config.recover_iterations, "large change"
    still = change.ratio < config.still_ratio and change.gap <= 1
    if still and converged and max(abs(v) for v in change.drift_px) < 1.0:
        return max(config.warm_min_iterations, config.warm_max_iterations // 2), "still"
    return config.warm_max_iterations, "changing"


class SipradMethod:
    """Warm-started SIPRAD: the refinement and the teacher of the live loop."""

    method = "siprad"

    def __init__(self, config: LiveConfig) -> None:
        self.config = config
        self._build(config)
        directory = default_cache_dir() if config.pretrained_cache == "disk" else None
        #: pre-trained weights per (shape, microscope, settings)
        self.pretrained = PretrainedCache(directory)
        #: the last cold start was cut by ``cold_budget_s``: its fit goes on
        self._unfinished = False
        #: the warm-start state carried to the next frame (None before the first)
        self.state: SipradState | None = None
        self._last_params: MicroscopeParams | None = None
        self._last_shape: tuple[int, int] | None = None
        self._last_image: torch.Tensor | None = None
        self._last_seq: int | None = None
        self._last_loss: float | None = None
        self._converged = False
        self._restart_requested: str | None = None
        self.cold_starts = 0
        #: the last accepted state per (shape, params): a return to conditions
        #: seen before (a defocus toggled back) resumes from it, no cold start
        self._known: OrderedDict[tuple[Any, ...], tuple[SipradState, torch.Tensor, float | None]]
        self._known = OrderedDict()
        #: where the last cold start's weights came from: "cache" (its conditions),
        #: "other conditions" (another key) or "pre-trained" (on its frame)
        self.last_cold_source = ""
        #: the budget decision of the last warm frame ("still", "changing", ...)
        self.last_budget: tuple[int, str] = (0, "")
        #: on_progress(stage, iteration, total, loss) during a cold start (status line)
        self.on_progress: Callable[[str, int, int, float], None] | None = None
        self._next_config: LiveConfig | None = None

    def _build(self, config: LiveConfig) -> None:
        siprad, device = config.siprad, config.device
        # a cold start's fit from pre-trained weights: of this image (no more
        # pre-training) or cached (``pretrain_top_up`` more on this image)
        self._cold = SipradReconstructor(siprad.replace(pretrain_iterations=0), device=device)
        top_up = siprad.replace(pretrain_iterations=config.pretrain_top_up)
        if config.cached_learning_rate_scale is not None:
            rate = siprad.learning_rate * config.cached_learning_rate_scale
            top_up = top_up.replace(learning_rate=rate)
        self._cold_top_up = SipradReconstructor(top_up, device=device)
        # pre-training alone (no fit): a cold start without cached weights runs it first
        only = siprad.replace(max_iterations=0, min_iterations=0)
        self._pretrainer = SipradReconstructor(only, device=device)
        self._warm: dict[int, SipradReconstructor] = {}

    def reconfigure(self, config: LiveConfig) -> None:
        """Use ``config`` from the next frame on (any thread); the warm state is kept."""
        self._next_config = config

    def cache_key(self, image: torch.Tensor, params: MicroscopeParams) -> str | None:
        """The pre-trained weights' cache key for ``image``'s conditions (None: no cache)."""
        if self.config.pretrained_cache == "off" or self.config.siprad.amplitude == "learn":
            return None
        shape = (int(image.shape[0]), int(image.shape[1]))
        return pretrained_key(shape, params, self.config.siprad, self.config.device)

    def pretrain(
        self, image: torch.Tensor, params: MicroscopeParams, deadline: float | None = None
    ) -> ModelState | None:
        """Pre-train a fresh phase DIP on ``image`` [H, W] (``siprad.pretrain_iterations``)
        and cache the weights under its conditions' key (unless the cache is off).

        deadline : ``time.perf_counter()`` value; pre-training stops when half of
            the time to it has passed (at least one iteration).  Weights whose
            pre-training was cut short are not cached.
        """
        report = self._progress().get("pretrain_progress")
        result = self._pretrainer.reconstruct(
            image, params, pretrain_progress=report, deadline=deadline
        )
        state = result.pretrained
        key = self.cache_key(image, params)
        full = result.pretrain_iterations >= self.config.siprad.pretrain_iterations
        if key is not None and state is not None and full:
            self.pretrained.put(key, state)
        return state

    def _cold_start(self, image: torch.Tensor, params: MicroscopeParams) -> SipradResult:
        """Pre-trained weights (cached and topped up, or pre-trained on ``image``),
        then the fit, capped by ``cold_budget_s`` (pre-training included on a
        cache miss), then at least ``cold_min_iterations`` fit iterations."""
        start = time.perf_counter()
        key = self.cache_key(image, params)
        cached = None if key is None else self.pretrained.get(key)
        if cached is None and key is not None and self.config.cold_from_other_conditions:
            # new conditions: weights pre-trained under others, as from another sample
            cached = self.pretrained.any_compatible(self.config.siprad.network)
            self.last_cold_source = "other conditions" if cached is not None else "pre-trained"
        else:
            self.last_cold_source = "pre-trained" if cached is None else "cache"
        progress = self._progress()
        if cached is None:
            deadline = None
            if self.config.cold_budget_covers_pretraining:
                deadline = self._cold_deadline(start).get("deadline")
            cached, reconstructor = self.pretrain(image, params, deadline), self._cold
            if deadline is None:
                start = time.perf_counter()  # the budget covers the fit only
        else:
            reconstructor = self._cold_top_up
            if self.config.cached_learning_rate_scale is not None:
                cached = dataclasses.replace(cached, optimiser=None)  # a fresh Adam
            start = time.perf_counter()  # the budget covers the fit
        result = reconstructor.reconstruct(
            image,
            params,
            pretrained=cached,
            **self._cold_deadline(start),
            **progress,
        )
        topped_up = reconstructor is self._cold_top_up and self.config.pretrain_top_up > 0
        if key is not None and result.pretrained is not None and topped_up:
            # the weights after this image's top-up start the next cold start
            self.pretrained.put(key, result.pretrained)
        short = self.config.cold_min_iterations - result.iterations
        if short > 0 and result.stop_reason == "time budget":
            # the floor: a loaded CPU must not cut the first fit to a few iterations
            floor = self.config.warm_siprad().replace(
                max_iterations=short, min_iterations=short, plateau_window=max(5, short // 3)
            )
            more = SipradReconstructor(floor, device=self.config.device).reconstruct(
                image, params, state=result.state, **progress
            )
            result = dataclasses.replace(
                more,
                loss=result.loss + more.loss,
                iterations=result.iterations + more.iterations,
                # the returned iterate is ``more``'s: index it in the joined losses
                kept_iteration=None
                if more.kept_iteration is None
                else len(result.loss) + more.kept_iteration,
                stop_reason="time budget",  # unfinished: the next frames continue it
                pretrained=result.pretrained,
            )
        return result

    def request_restart(self, reason: str) -> None:
        """Make the next frame start cold (any thread: it only sets a flag)."""
        self._restart_requested = reason

    def _warm_reconstructor(self, iterations: int) -> SipradReconstructor:
        if iterations not in self._warm:
            warm = self.config.warm_siprad().replace(
                max_iterations=iterations,
                plateau_window=max(5, min(self.config.siprad.plateau_window, iterations // 3)),
            )
            self._warm[iterations] = SipradReconstructor(warm, device=self.config.device)
        return self._warm[iterations]

    def _restart_reason(self, frame: LiveFrame, shape: tuple[int, int]) -> str | None:
        if self._restart_requested is not None:
            return self._restart_requested
        if self.state is None:
            return "first frame"
        if shape != self._last_shape:
            return f"frame shape changed {self._last_shape} -> {shape}"
        return params_change(self._last_params, frame.params)

    def warm_state(self, drift_px: tuple[float, float] = (0.0, 0.0)) -> SipradState:
        """The carried state, with Adam restarted at the warm step size unless carried.

        ``warm_input == "previous"``: the DIP keeps the input it was fitted
        with and its output is moved by the measured drift ``drift_px`` (dy, dx)
        on top of the shifts so far, so the warm run starts from the previous
        result moved with the sample;
        ``"current"``: the new frame's SITIE (the input is dropped).
        """
        state = self.state
        assert state is not None
        if self.config.warm_input == "current" or state.net_input is None:
            state = dataclasses.replace(state, net_input=None)
        elif self.config.shift_for_drift and any(abs(v) > 0.05 for v in drift_px):
            total = (
                state.output_shift_px[0] + drift_px[0],
                state.output_shift_px[1] + drift_px[1],
            )
            state = dataclasses.replace(state, output_shift_px=total)
        rate = self.config.siprad.learning_rate
        if not self.config.carry_optimiser:
            rate *= self.config.warm_learning_rate_scale
        groups = [dict(group, lr=rate) for group in state.optimiser["param_groups"]]
        if self.config.carry_optimiser:  # moments and step count kept, at the configured rate
            return dataclasses.replace(state, optimiser=dict(state.optimiser, param_groups=groups))
        return dataclasses.replace(state, optimiser={"state": {}, "param_groups": groups})

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate:
        start = time.perf_counter()
        if self._next_config is not None:  # operator settings, taken between frames
            self.config, self._next_config = self._next_config, None
            self._build(self.config)
        shape = (int(image.shape[0]), int(image.shape[1]))
        norm = (image / image.mean()).to(self._cold.device)
        target = self._fit_image(frame, norm)
        reason = self._restart_reason(frame, shape)
        key = (shape, frame.params)
        resumed = None
        changed = reason is not None and self._restart_requested is None
        if changed and self.state is not None and key in self._known:
            # conditions seen before: continue from their last state, moved with the drift
            self.state, self._last_image, self._last_loss = self._known[key]
            resumed = f"{reason}; resumed the last state under these conditions"
            self._last_params, self._last_shape, self._last_seq = frame.params, shape, None
            reason = None
        change = None
        if reason is None and self._last_image is not None:
            noise = estimate_noise(norm, self._cold.transfer(shape, frame.params)).variance
            gap = frame.seq - self._last_seq if self._last_seq is not None else 1
            change = frame_change(self._last_image, norm, noise, gap)
        result: SipradResult | None = None
        warm = reason is None
        if warm:
            self.last_budget = warm_budget(change, self.config, converged=self._converged)
            deadline = self._deadline(start)
            if resumed is not None:
                self.last_budget = (self.config.recover_iterations, "resumed")
            elif self._unfinished:
                self.last_budget = (self.config.recover_iterations, "cold start continued")
            reconstructor = self._warm_reconstructor(self.last_budget[0])
            result = reconstructor.reconstruct(
                target,
                frame.params,
                state=self.warm_state((0.0, 0.0) if change is None else change.drift_px),
                **deadline,
            )
            reason = self._divergence(result)
            if reason is not None:
                warm, result = False, None
        if result is None:
            result = self._cold_start(target, frame.params)
            self.cold_starts += 1
            self._restart_requested = None
        self._unfinished = result.stop_reason == "time budget" and not warm
        self.state = result.state
        self._last_params, self._last_shape = frame.params, shape
        self._last_image, self._last_seq = norm, frame.seq
        self._last_loss = _relative_misfit(result)
        self._known[key] = (result.state, norm, self._last_loss)
        self._known.move_to_end(key)
        while len(self._known) > 4:
            self._known.popitem(last=False)
        self._converged = result.stop_reason == "discrepancy"
        return Estimate(
            phi_m=result.phi_m,
            image_fit=result.image_fit,
            loss=result.loss,
            kept_iteration=result.kept_iteration,
            iterations=result.iterations,
            stop_reason=result.stop_reason,
            warm=warm,
            restart_reason=reason if resumed is None or not warm else resumed,
            drift_px=(0.0, 0.0) if change is None else change.drift_px,
        )

    def _fit_image(self, frame: LiveFrame, norm: torch.Tensor) -> torch.Tensor:
        """The image SIPRAD fits: the frame ``norm`` (mean-normalised), or the
        instant path's running mean of it (``LiveConfig.refine_input``)."""
        average = frame.average if self.config.refine_input == "mean" else None
        if average is None or tuple(average.shape) != tuple(norm.shape):
            return norm
        return average.to(norm.device, torch.float32)

    def _divergence(self, result: SipradResult) -> str | None:
        """Why a warm result must be redone cold, or None if it is acceptable.

        Misfits are compared relative to each frame's discrepancy target (the
        expected noise misfit), so a running mean that restarts (noisier
        input, larger misfit) is not taken for a divergence.
        """
        final = _relative_misfit(result)
        if result.stop_reason == "diverged" or final is None or not math.isfinite(final):
            return "warm start diverged (non-finite loss)"
        if self._last_loss is not None and final > self.config.divergence_factor * self._last_loss:
            return (
                f"warm start diverged (misfit / noise target {self._last_loss:.3g} -> {final:.3g})"
            )
        return None

    def _progress(self) -> dict[str, Any]:
        report = self.on_progress
        if report is None:
            return {}
        return {
            "pretrain_progress": lambda i, n, loss: report("pre-training", i, n, loss),
            "progress": lambda i, n, loss: report("fit", i, n, loss),
        }

    def _cold_deadline(self, start: float) -> dict[str, Any]:
        budget = self.config.cold_budget_s
        return {} if budget is None else {"deadline": start + budget}

    def _deadline(self, start: float) -> dict[str, Any]:
        if self.config.time_budget_s is None:
            return {}
        return {"deadline": start + self.config.time_budget_s}


def _relative_misfit(result: SipradResult) -> float | None:
    """Image misfit of the returned iterate (``final_misfit``: with ``stop="held-out"``
    the kept one, not the last) over the discrepancy target (the expected noise misfit)."""
    if not result.loss:
        return None
    final = result.final_misfit
    return final / result.target if result.target > 0 else final


__all__ = [
    "FrameChange",
    "SipradMethod",
    "SitieMethod",
    "frame_change",
    "warm_budget",
    "wiener_sitie",
]
