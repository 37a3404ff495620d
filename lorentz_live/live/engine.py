"""The live engine: frames in, results out, no sockets, no Qt.

Two kinds of method answer a frame (:mod:`lorentz_live.live.interface`):

* the *instant* method (Wiener-SITIE, or the amortised network of
  :mod:`lorentz_live.live.amortised`): milliseconds, every frame
  (:meth:`LiveEngine.answer`);
* the *refiner* (warm-started SIPRAD, :class:`lorentz_live.live.methods.SipradMethod`):
  a fraction of a second warm, a few seconds cold (:meth:`LiveEngine.process`).

:class:`lorentz_live.live.pipeline.LivePipeline` runs both so that every frame
is answered at once and the newest frame is refined whenever SIPRAD is free.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lorentz_live.analysis.census import census_header
from lorentz_live.errors import InputError
from lorentz_live.live.interface import Estimate, LiveFrame, Reconstructor
from lorentz_live.live.methods import SipradMethod, SitieMethod, TransferCache, model_fit
from lorentz_live.physics import MicroscopeParams, colour_wheel_rgb, integrated_induction
from lorentz_live.siprad import SipradConfig, validate_image

INSTANT_METHODS = ("sitie", "amortised")
PRETRAINED_CACHES = ("disk", "memory", "off")
REFINE_INPUTS = ("mean", "frame")
#: instant answers kept for the refiner and the publish guard (newest seqs)
INSTANT_KEPT = 32

#: SIPRAD settings of the live loop: the periodic boundary, the paper's 2 px
#: final smoothing and no phase-scale fit, the settings with which the warm loop
#: was measured (benchmarks/live.py, tests/live).  The offline defaults of
#: ``SipradConfig`` (padded boundary, no smoothing, scale fit: true |B|) are not
#: yet measured warm-started; on the 64 px test movie without smoothing the warm
#: frames' mean B gain over SITIE fell from about +0.02 to -0.008.
LIVE_SIPRAD = SipradConfig(boundary="periodic", smoothing="fixed", calibrate_scale=False)


@dataclass(frozen=True)
class LiveConfig:
    """Settings of the live loop.

    siprad : settings of a cold (full) SIPRAD reconstruction (default
        :data:`LIVE_SIPRAD`).
    pretrained_cache : where pre-trained weights are kept between cold starts
        (:mod:`lorentz_live.live.pretrained`): ``"disk"`` (memory and
        :func:`~lorentz_live.live.pretrained.default_cache_dir`, the default),
        ``"memory"`` or ``"off"``.
        The DIP's pre-training fits its own frame rather than learning an
        identity map, so weights cached from another frame or sample start the
        fit far from the answer: run to its stop rule it reaches the accuracy of
        a full cold start in about a quarter of the time, but a first result
        cut at ``cold_budget_s`` is below it (docs/benchmarks.md, "Live loop",
        cold start).
    cached_learning_rate_scale : a cold start from cached weights fits with a
        fresh Adam at this x ``siprad.learning_rate`` (the cached Adam state is
        that of pre-training on another input); ``None``: the cached Adam state
        as it is.
    pretrain_top_up : pre-training iterations run on the new frame from cached
        weights before the fit (0: none).
    cold_budget_s : wall-time cap of a cold start's fit after loading cached
        pre-trained weights or pre-training (of both with
        ``cold_budget_covers_pretraining``; weights whose pre-training was cut
        short are not cached), s; the next frame then continues the fit with
        ``recover_iterations`` (capped by ``time_budget_s`` only), so a cold
        start publishes a first result early and keeps refining.  ``None``:
        the fit runs to its stop rule.  Default 2.5 s: with cached weights (of
        these or other conditions) the first SIPRAD result comes within about
        3 s at 128 px on a 2-core CPU (benchmarks/live.py, "cold start").
    cold_from_other_conditions : on a cache miss start from the newest cached
        weights of the same network pre-trained under other conditions (another
        defocus or frame size;
        :meth:`~lorentz_live.live.pretrained.PretrainedCache.any_compatible`),
        as a hit from another sample does, instead of pre-training; only a
        start with nothing cached pre-trains.
    cold_budget_covers_pretraining : on a start that pre-trains, let
        ``cold_budget_s`` cover pre-training and fit (pre-training stops at
        half of it).  Default ``False`` (pre-training runs in full first): cut
        pre-training left the first result and the next frames far below
        (docs/benchmarks.md, "Live loop", cold start).
    cold_min_iterations : fit iterations a capped cold start runs at least,
        past ``cold_budget_s`` if need be (a loaded CPU would otherwise cut
        the first fit to a few iterations).
    warm_max_iterations : iteration cap of a warm frame of a changing sample.
    warm_min_iterations : iterations a warm frame runs before it may stop.
    carry_optimiser : carry Adam's moments and step count from frame to frame
        as well as the weights, at the rate ``siprad.learning_rate`` (default).
        ``False``: a fresh Adam at ``warm_learning_rate_scale`` x that rate on
        every warm frame.  A fresh Adam's first update moves every weight by
        about its rate whatever the gradient (m / sqrt(v) = sign(g) on step 1);
        at 2x the rate that throws the fitted DIP off (B correlation of a warm
        frame ~0.1 after two updates), while the carried second moments, which
        remember the larger gradients of the fit so far, keep the steps about
        100x smaller (docs/benchmarks.md, "Live loop": first-update table and
        the rows of both policies).
    warm_learning_rate_scale : Adam rate of a fresh-Adam warm frame relative to
        ``siprad.learning_rate`` (0.05: small enough that the first updates do
        not throw the DIP off; the issue-scenario rows of docs/benchmarks.md
        compare it with 2x and the carried Adam); unused when the optimiser is
        carried.
    adaptive : adapt the warm budget to the frame change
        (:func:`lorentz_live.live.methods.warm_budget`): half the cap on a still
        sample, ``recover_iterations`` after a gap of more than ``max_gap``
        frames or a change ratio (frame difference / noise) over
        ``large_change_ratio``; ``still_ratio`` is the ratio below which the
        sample counts as still.  The thresholds are set by judgement, not
        tuned; the gap and drift-jump rows of benchmarks/live.py show the
        effect of the adaptive budget against a fixed one.
    warm_input : DIP input of a warm frame: ``"previous"`` (the input the
        weights were fitted with, so the first iterate is the previous result)
        or ``"current"`` (the new frame's SITIE;
        the weights then meet an input they were not fitted to).
    shift_for_drift : translate the DIP's output by the drift measured between
        the frames, accumulated (benchmarks/live.py, "drift jumps").
    time_budget_s : wall-time budget per warm frame (``None`` = none).
    divergence_factor : a warm frame whose final misfit exceeds this multiple
        of the previous frame's is redone cold.
    instant : ``"sitie"`` (Wiener-SITIE) or ``"amortised"`` (the online-trained
        network, whose untrained answer is its SITIE input).
    instant_average : weight of the newest frame in the drift-registered running
        mean of frames that the instant method works on
        (:mod:`lorentz_live.live.average`; 1 = each frame alone).  0.3 raised
        the mean B correlation of Wiener-SITIE by 0.06-0.09, above warm
        SIPRAD, on both movies of benchmarks/live_amortised.py.
    refine_input : the image SIPRAD refines: ``"mean"`` (default) the instant
        method's drift-registered running mean of the frames up to this one
        (``instant_average``; less noise, so the DIP fits the texture rather
        than the noise), or ``"frame"`` the newest frame alone (the SIPRAD
        rows of both in benchmarks/live.py, "The issue's scenario").  Without
        an instant answer for the frame (the engine's :meth:`LiveEngine.answer`
        not called for its ``seq``) the frame is used.
    publish_guard : before a SIPRAD result is published, its image misfit on the
        frame (the same uniform-amplitude forward model for both) is compared
        with that of the frame's instant answer; above ``(1 + publish_guard)``
        times it, the instant answer is published in its place with the result's
        ``held_back`` saying so (docs/protocol.md).  ``None``: no guard.
        The "shown after SIPRAD" rows of benchmarks/live.py score what is
        published with it.
    device : "cpu" or "cuda".
    """

    siprad: SipradConfig = field(default_factory=lambda: LIVE_SIPRAD)
    pretrained_cache: str = "disk"
    cached_learning_rate_scale: float | None = 0.5
    pretrain_top_up: int = 0
    cold_budget_s: float | None = 2.5
    cold_from_other_conditions: bool = True
    cold_budget_covers_pretraining: bool = False
    cold_min_iterations: int = 30
    warm_max_iterations: int = 20
    warm_min_iterations: int = 5
    carry_optimiser: bool = True
    warm_learning_rate_scale: float = 0.05
    adaptive: bool = True
    still_ratio: float = 1.15
    large_change_ratio: float = 2.0
    max_gap: int = 4
    recover_iterations: int = 100
    warm_input: str = "previous"
    shift_for_drift: bool = True
    time_budget_s: float | None = None
    divergence_factor: float = 3.0
    instant: str = "sitie"
    instant_average: float = 0.3
    refine_input: str = "mean"
    publish_guard: float | None = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.warm_input not in ("previous", "current"):
            raise InputError(f"warm_input must be 'previous' or 'current', got {self.warm_input!r}")
        if self.refine_input not in REFINE_INPUTS:
            raise InputError(
                f"refine_input must be one of {REFINE_INPUTS}, got {self.refine_input!r}"
            )
        if self.publish_guard is not None and not self.publish_guard >= 0.0:
            raise InputError(f"publish_guard must be >= 0 or None, got {self.publish_guard}")
        if not 0.0 < self.instant_average <= 1.0:
            raise InputError(f"instant_average must be in (0, 1], got {self.instant_average}")
        if self.pretrained_cache not in PRETRAINED_CACHES:
            raise InputError(
                f"pretrained_cache must be one of {PRETRAINED_CACHES}, "
                f"got {self.pretrained_cache!r}"
            )
        if self.instant not in INSTANT_METHODS:
            raise InputError(f"instant must be one of {INSTANT_METHODS}, got {self.instant!r}")

    def warm_siprad(self) -> SipradConfig:
        """The SIPRAD settings of a warm-started frame."""
        return self.siprad.replace(
            max_iterations=self.warm_max_iterations,
            min_iterations=min(self.warm_min_iterations, self.warm_max_iterations),
            plateau_window=max(5, min(self.siprad.plateau_window, self.warm_max_iterations // 3)),
        )


@dataclass
class LiveResult:
    """Per-frame output; arrays float32 [H, W] (rgb [H, W, 3]) on the CPU.

    method : which method produced it ("sitie", "amortised", "siprad").
    phi_m rad; b_x, b_y T nm; rgb colour-wheel map of B in [0, 1]; image_fit the
    forward-model image; loss the per-iteration image misfit; latency_s from the
    camera timestamp to the result; warm False for a cold start (and for
    one-pass methods), with ``restart_reason``; drift_px the (dy, dx) shift from
    the method's previous frame.  held_back : None, or why the maps are the
    instant answer's although SIPRAD refined the frame (``LiveConfig.publish_guard``).
    frame_misfit : image misfit of SIPRAD's phase on the frame itself (uniform
    amplitude; set when the publish guard ran), comparable across frames
    whatever image SIPRAD fitted (``LiveConfig.refine_input``).  kept_iteration :
    index in ``loss`` of the iterate published (held-out stop), None = the last;
    ``final_loss`` is its misfit.
    """

    seq: int
    timestamp_ns: int
    phi_m: torch.Tensor
    b_x: torch.Tensor
    b_y: torch.Tensor
    rgb: torch.Tensor
    image_fit: torch.Tensor
    loss: list[float]
    iterations: int
    stop_reason: str
    warm: bool
    restart_reason: str | None
    drift_px: tuple[float, float]
    compute_s: float
    latency_s: float
    params: MicroscopeParams
    metadata: dict[str, Any]
    method: str = "siprad"
    held_back: str | None = None
    frame_misfit: float | None = None
    kept_iteration: int | None = None

    @functools.cached_property
    def census(self) -> dict[str, Any]:
        """Texture census of ``phi_m`` (:func:`lorentz_live.analysis.census.census_header`),
        computed once per result however many streams publish it."""
        return census_header(self.phi_m.numpy(), self.params.pixel_size_nm)

    @property
    def final_loss(self) -> float:
        """Image misfit of the iterate published: ``loss[kept_iteration]`` (held-out
        stop), else the last; NaN without iterations."""
        if not self.loss:
            return float("nan")
        kept = len(self.loss) - 1 if self.kept_iteration is None else self.kept_iteration
        return self.loss[min(max(kept, 0), len(self.loss) - 1)]


def make_instant(config: LiveConfig) -> Reconstructor:
    """The instant method named by ``config.instant``."""
    if config.instant == "amortised":
        from lorentz_live.live.amortised import AmortisedConfig, AmortisedMethod

        return AmortisedMethod(
            AmortisedConfig(average=config.instant_average), device=config.device
        )
    return SitieMethod(config.device, average=config.instant_average)


class LiveEngine:
    """Answers frames with an instant method and refines them with SIPRAD.

    :meth:`answer` (instant) and :meth:`process` (refiner) may run in two
    threads, one each; :meth:`request_cold_restart` from any thread.
    """

    def __init__(
        self,
        config: LiveConfig | None = None,
        *,
        instant: Reconstructor | None = None,
        refiner: Reconstructor | None = None,
    ) -> None:
        self.config = config or LiveConfig()
        self.instant: Reconstructor = instant or make_instant(self.config)
        self.refiner: Reconstructor = refiner or SipradMethod(self.config)
        self._listeners: list[Callable[[LiveResult], None]] = []
        self._lock = threading.Lock()
        self.frames_done = 0
        self.bad_frames = 0
        #: SIPRAD results replaced by the instant answer (``LiveConfig.publish_guard``)
        self.guarded = 0
        self._instant: OrderedDict[int, Estimate] = OrderedDict()
        self._transfer = TransferCache(self.config.device)

    @property
    def cold_starts(self) -> int:
        """Cold starts of the refiner so far."""
        return int(getattr(self.refiner, "cold_starts", 0))

    def add_listener(self, listener: Callable[[LiveResult], None]) -> None:
        """Call ``listener(result)`` after every result (in the thread that made it)."""
        self._listeners.append(listener)

    def request_cold_restart(self, reason: str = "operator request") -> None:
        """Make the next frame of every method start cold."""
        self.refiner.request_restart(reason)
        self.instant.request_restart(reason)

    def reconfigure(self, **changes: Any) -> None:
        """Change :class:`LiveConfig` fields (operator controls; any thread).

        The refiner takes them at its next frame; its warm state is kept.
        """
        self.config = dataclasses.replace(self.config, **changes)
        reconfigure = getattr(self.refiner, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(self.config)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the methods' own threads (the amortised network's training) and join them."""
        for method in (self.instant, self.refiner):
            close = getattr(method, "close", None)
            if close is not None:
                close(timeout_s)

    def __enter__(self) -> LiveEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, frame: LiveFrame) -> LiveResult:
        """Refine one frame (warm-started SIPRAD).

        Refines the instant path's running mean when :meth:`answer` has seen
        the frame (``LiveConfig.refine_input``) and applies the publish guard.
        Raises :class:`InputError` for a bad frame (non-2D, non-finite, zero
        mean, unusable defocus); the method's state is then left as it was, so
        the next good frame continues warm.
        """
        with self._lock:
            instant = self._instant.get(frame.seq)
        if instant is not None and self.config.refine_input == "mean":
            frame = dataclasses.replace(frame, average=instant.average)
        return self._run(self.refiner, frame, instant)

    def answer(self, frame: LiveFrame) -> LiveResult:
        """The instant answer to one frame (ms); :class:`InputError` as :meth:`process`."""
        return self._run(self.instant, frame)

    def _run(
        self, method: Reconstructor, frame: LiveFrame, instant: Estimate | None = None
    ) -> LiveResult:
        start = time.perf_counter()
        image = self._validate(frame)
        estimate = method.reconstruct(frame, image)
        name, guard, misfit = method.method, None, None
        if method is self.instant:
            with self._lock:
                self._instant[frame.seq] = estimate
                while len(self._instant) > INSTANT_KEPT:
                    self._instant.popitem(last=False)
        elif instant is not None and self.config.publish_guard is not None:
            guard, misfit = self._guard(frame, image, estimate, instant)
            if guard is not None:
                estimate = dataclasses.replace(
                    estimate, phi_m=instant.phi_m, image_fit=instant.image_fit
                )
        result = self._result(name, frame, estimate, time.perf_counter() - start)
        result.held_back, result.frame_misfit = guard, misfit
        with self._lock:
            self.frames_done += 1
            self.guarded += guard is not None
        for listener in self._listeners:
            listener(result)
        return result

    def _guard(
        self, frame: LiveFrame, image: torch.Tensor, refined: Estimate, instant: Estimate
    ) -> tuple[str | None, float]:
        """Why the instant answer is published instead of ``refined`` (None: it is
        not), and ``refined``'s image misfit on the frame.

        Both phases go through the same forward model (uniform amplitude,
        periodic) and are compared on the frame itself.
        """
        assert self.config.publish_guard is not None
        shape = (int(image.shape[0]), int(image.shape[1]))
        transfer = self._transfer(shape, frame.params)
        norm = (image / image.mean()).to(transfer.device)
        misfits = [
            float(torch.mean((model_fit(phi.to(transfer.device), transfer) - norm) ** 2))
            for phi in (refined.phi_m, instant.phi_m)
        ]
        if misfits[0] <= (1.0 + self.config.publish_guard) * misfits[1]:
            return None, misfits[0]
        return (
            f"SIPRAD held back: image misfit {misfits[0]:.4g} > {misfits[1]:.4g} "
            f"of the {self.instant.method} answer, which is shown"
        ), misfits[0]

    def _validate(self, frame: LiveFrame) -> torch.Tensor:
        # a copy: received pixels may be a read-only view of the socket buffer
        pixels = np.array(frame.image, dtype=np.float32)
        try:
            if pixels.ndim != 2:
                raise InputError(
                    f"frame {frame.seq}: expected a 2D image, got shape {pixels.shape}"
                )
            frame.params.require_reconstruction_defocus()
            return validate_image(torch.from_numpy(pixels))
        except InputError as error:
            with self._lock:
                self.bad_frames += 1
            message = str(error)
            if not message.startswith(f"frame {frame.seq}"):
                message = f"frame {frame.seq}: {message}"
            raise InputError(message) from None

    def _result(
        self, method: str, frame: LiveFrame, estimate: Estimate, compute_s: float
    ) -> LiveResult:
        phi_m = estimate.phi_m.detach().to("cpu", torch.float32)
        b_x, b_y = integrated_induction(phi_m, frame.params.pixel_size_nm)
        return LiveResult(
            seq=frame.seq,
            timestamp_ns=frame.timestamp_ns,
            phi_m=phi_m,
            b_x=b_x,
            b_y=b_y,
            rgb=colour_wheel_rgb(b_x, b_y),
            image_fit=estimate.image_fit.detach().to("cpu", torch.float32),
            loss=list(estimate.loss),
            kept_iteration=estimate.kept_iteration,
            iterations=estimate.iterations,
            stop_reason=estimate.stop_reason,
            warm=estimate.warm,
            restart_reason=estimate.restart_reason,
            drift_px=estimate.drift_px,
            compute_s=compute_s,
            latency_s=(time.time_ns() - frame.timestamp_ns) * 1e-9,
            params=frame.params,
            metadata=dict(frame.metadata),
            method=method,
        )


__all__ = ["LiveConfig", "LiveEngine", "LiveFrame", "LiveResult", "make_instant"]
