"""Warm-started live SIPRAD: one reconstruction per frame, no sockets, no Qt.

Consecutive frames of an in-situ movie differ little, so the DIP weights (and
Adam moments) that fit frame n are a close starting point for frame n+1; its
input is frame n+1's own SITIE phase.  Pre-training is skipped and the
discrepancy-principle stop ends the warm run after a few iterations.

A cold start (fresh network, pre-training, full iteration budget) happens

* for the first frame, and when the operator asks for one;
* when the microscope changes in a way that changes the forward model
  (kV, pixel size, defocus, Cs, ...; a different image shape);
* when the warm start diverges: the loss is not finite, or the warm run ends
  with a misfit more than ``divergence_factor`` times the previous frame's.

Stage drift is measured between consecutive frames (phase correlation) and
reported; the warm start needs no shifting because the DIP is convolutional and
its input (the new frame's SITIE) moves with the sample (benchmarks/live.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from acquisition_bridge.keys import MICROSCOPE_KEYS
from lorentz_live.errors import InputError
from lorentz_live.physics import MicroscopeParams, colour_wheel_rgb
from lorentz_live.physics.registration import estimate_shift
from lorentz_live.siprad import SipradConfig, SipradReconstructor, SipradResult, SipradState


@dataclass(frozen=True)
class Frame:
    """One camera frame as the engine sees it.

    image : [H, W] intensities (any real dtype).  params : imaging conditions.
    seq : the source's frame counter.  timestamp_ns : camera time (UTC, ns).
    metadata : the rest of the frame header (temperature, field, ...), passed through.
    """

    image: np.ndarray
    params: MicroscopeParams
    seq: int
    timestamp_ns: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveConfig:
    """Settings of the live loop.

    siprad : settings of a cold (full) reconstruction.
    warm_max_iterations : iteration cap of a warm-started frame.
    warm_min_iterations : iterations a warm frame runs before it may stop.
    carry_optimiser : carry Adam's moments from frame to frame as well as the
        weights.  Off by default: on a 128 px field-cooling movie (12 frames,
        50 % noise) carrying them gave phase / B 0.753 / 0.792 in 33 iterations
        per frame, a fresh Adam 0.824 / 0.824 in 18 (cold per frame: 0.817 /
        0.825 in 228 with pre-training).  Measured once by hand (not a benchmark
        target): rerun benchmarks/live.py with both settings to check it.
    warm_learning_rate_scale : Adam step of warm frames relative to
        ``siprad.learning_rate`` (2: a fresh Adam restarts its step size small).
    time_budget_s : wall-time budget per frame (``None`` = none); a frame stops
        at whichever of convergence or budget comes first.
    divergence_factor : a warm frame whose final misfit exceeds this multiple
        of the previous frame's is redone cold.
    measure_drift : estimate the stage drift between consecutive frames.
    device : "cpu" or "cuda".
    """

    siprad: SipradConfig = field(default_factory=SipradConfig)
    warm_max_iterations: int = 20
    warm_min_iterations: int = 5
    carry_optimiser: bool = False
    warm_learning_rate_scale: float = 2.0
    time_budget_s: float | None = None
    divergence_factor: float = 3.0
    measure_drift: bool = True
    device: str = "cpu"

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

    phi_m rad; b_x, b_y T nm; rgb colour-wheel map of B in [0, 1]; image_fit the
    forward-model image; loss the per-iteration image misfit; latency_s from the
    camera timestamp to the result; warm False for a cold start, with
    ``restart_reason``; drift_px the (dy, dx) shift from the previous frame.
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

    @property
    def final_loss(self) -> float:
        return self.loss[-1] if self.loss else float("nan")


class LiveEngine:
    """Reconstructs frames one after another, warm-starting each from the last.

    Not thread-safe: call :meth:`process` from one thread; :meth:`request_cold_restart`
    may be called from any thread (it only sets a flag).
    """

    def __init__(self, config: LiveConfig | None = None) -> None:
        self.config = config or LiveConfig()
        self._cold = SipradReconstructor(self.config.siprad, device=self.config.device)
        self._warm = SipradReconstructor(self.config.warm_siprad(), device=self.config.device)
        #: the warm-start state carried to the next frame (None before the first)
        self.state: SipradState | None = None
        self._last_params: MicroscopeParams | None = None
        self._last_shape: tuple[int, int] | None = None
        self._last_image: torch.Tensor | None = None
        self._last_loss: float | None = None
        self._restart_requested: str | None = None
        self._listeners: list[Callable[[LiveResult], None]] = []
        #: on_progress(stage, iteration, total, loss) during a cold start (status line)
        self.on_progress: Callable[[str, int, int, float], None] | None = None
        self.frames_done = 0
        self.cold_starts = 0
        self.bad_frames = 0

    def add_listener(self, listener: Callable[[LiveResult], None]) -> None:
        """Call ``listener(result)`` after every reconstructed frame (same thread)."""
        self._listeners.append(listener)

    def request_cold_restart(self, reason: str = "operator request") -> None:
        """Make the next frame start cold."""
        self._restart_requested = reason

    def _restart_reason(self, frame: Frame, shape: tuple[int, int]) -> str | None:
        if self._restart_requested is not None:
            return self._restart_requested
        if self.state is None:
            return "first frame"
        if shape != self._last_shape:
            return f"frame shape changed {self._last_shape} -> {shape}"
        if self._last_params is not None:
            for key in MICROSCOPE_KEYS:  # each one changes the forward model
                old, new = getattr(self._last_params, key), getattr(frame.params, key)
                if old != new:
                    return f"{key} changed {old} -> {new}"
        return None

    def process(self, frame: Frame) -> LiveResult:
        """Reconstruct one frame.

        Raises :class:`InputError` for a bad frame (non-2D, non-finite, zero
        mean, unusable defocus); the engine state is then left as it was, so the
        next good frame continues warm.
        """
        # a copy: received pixels may be a read-only view of the socket buffer
        image = torch.from_numpy(np.array(frame.image, dtype=np.float32))
        try:
            if image.ndim != 2:
                raise InputError(
                    f"frame {frame.seq}: expected a 2D image, got shape {tuple(image.shape)}"
                )
            frame.params.require_reconstruction_defocus()
            if not bool(torch.isfinite(image).all()):
                raise InputError(f"frame {frame.seq}: image has NaN or infinite pixels")
            if not float(image.mean()) > 0:
                raise InputError(f"frame {frame.seq}: mean intensity is not positive")
        except InputError:
            self.bad_frames += 1
            raise
        shape = (int(image.shape[0]), int(image.shape[1]))
        start = time.perf_counter()
        reason = self._restart_reason(frame, shape)
        drift = (0.0, 0.0)
        if self.config.measure_drift and reason is None and self._last_image is not None:
            drift = estimate_shift(self._last_image, image)

        result: SipradResult | None = None
        warm = reason is None
        if warm:
            result = self._warm.reconstruct(
                image, frame.params, state=self.state, **self._budget(start)
            )
            reason = self._divergence(result)
            if reason is not None:
                warm, result = False, None
        if result is None:
            result = self._cold.reconstruct(
                image, frame.params, **self._budget(start), **self._progress()
            )
            self.cold_starts += 1
            self._restart_requested = None

        self.state = result.state
        self._last_params, self._last_shape = frame.params, shape
        self._last_image = image
        self._last_loss = result.loss[-1] if result.loss else None
        self.frames_done += 1
        compute_s = time.perf_counter() - start
        live = LiveResult(
            seq=frame.seq,
            timestamp_ns=frame.timestamp_ns,
            phi_m=result.phi_m,
            b_x=result.b_x,
            b_y=result.b_y,
            rgb=colour_wheel_rgb(result.b_x, result.b_y),
            image_fit=result.image_fit,
            loss=result.loss,
            iterations=result.iterations,
            stop_reason=result.stop_reason,
            warm=warm,
            restart_reason=reason,
            drift_px=drift,
            compute_s=compute_s,
            latency_s=(time.time_ns() - frame.timestamp_ns) * 1e-9,
            params=frame.params,
            metadata=dict(frame.metadata),
        )
        for listener in self._listeners:
            listener(live)
        return live

    def _warm_state(self) -> SipradState:
        """The carried state, with Adam restarted at the warm step size unless carried."""
        state = self.state
        assert state is not None
        if self.config.carry_optimiser:
            return state
        rate = self.config.siprad.learning_rate * self.config.warm_learning_rate_scale
        groups = [dict(group, lr=rate) for group in state.optimiser["param_groups"]]
        return dataclasses.replace(state, optimiser={"state": {}, "param_groups": groups})

    def _divergence(self, result: SipradResult) -> str | None:
        """Why a warm result must be redone cold, or None if it is acceptable."""
        final = result.loss[-1] if result.loss else math.nan
        if result.stop_reason == "diverged" or not math.isfinite(final):
            return "warm start diverged (non-finite loss)"
        if self._last_loss is not None and final > self.config.divergence_factor * self._last_loss:
            return f"warm start diverged (loss {self._last_loss:.3g} -> {final:.3g})"
        return None

    def _progress(self) -> dict[str, Any]:
        report = self.on_progress
        if report is None:
            return {}
        return {
            "pretrain_progress": lambda i, n, loss: report("pre-training", i, n, loss),
            "progress": lambda i, n, loss: report("fit", i, n, loss),
        }

    def _budget(self, start: float) -> dict[str, Any]:
        if self.config.time_budget_s is None:
            return {}
        return {"deadline": start + self.config.time_budget_s}
