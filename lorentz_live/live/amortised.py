"""The camera-rate path: a network that maps a frame's SITIE phase to phi_m in one pass.

A small U-Net (:class:`lorentz_live.siprad.DeepImagePrior` with skips) takes
the Wiener-SITIE phase of the drift-registered running mean of the frames
(:mod:`lorentz_live.live.average`; ``average = 1``: of the frame alone) and
returns phi_m = s (x + net(x)), x that phase over a fixed scale s; its last
layer starts at zero, so before any training (and after a reset) the answer
*is* its input: no separate fall-back is needed while it warms up. It is
trained online, on the stream, through the same differentiable forward model as
SIPRAD: the input comes from frame i and the image loss from frame i + 1.
Consecutive frames show nearly the same texture with independent noise, so the
network cannot learn the noise (trained against its own frame it would). The
pair is made drift-aware: frame i + 1 is shifted back by the measured stage
drift before the loss. Pairs across a change of microscope parameters or shape
are not formed, and the replay buffer keeps only the newest ``buffer`` pairs so
that the network follows a changing texture.

Training runs in its own thread (``background=True``) as fast as the CPU lets
it, at most ``steps_per_frame`` Adam steps per arriving frame; answers use a
snapshot of the weights taken after each round, so frame t is answered by a
network trained only on frames before it.

Measured (benchmarks/live_amortised.py): on a still texture the network alone
integrates the frames in its weights and beats single-frame SITIE clearly; on
drifting, changing movies the running mean does that integration directly and
better, and training on top of it lowered the B correlation, so the live
loop's default instant method is Wiener-SITIE of the running mean
(``LiveConfig.instant = "sitie"``) and this network is opt-in.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field

import torch

from lorentz_live.live.average import RunningMean
from lorentz_live.live.interface import Estimate, LiveFrame
from lorentz_live.live.methods import TransferCache, model_fit, wiener_sitie
from lorentz_live.physics import MicroscopeParams, sitie_phase
from lorentz_live.physics.registration import fourier_shift
from lorentz_live.siprad import DeepImagePrior, NetworkConfig
from lorentz_live.siprad.network import seeded_init

log = logging.getLogger("lorentz_live.live")


@dataclass(frozen=True)
class AmortisedConfig:
    """Settings of the amortised network.

    network : U-Net architecture (3 levels, additive skips).
    steps_per_frame : Adam steps per arriving frame (at most; fewer if frames
        arrive faster than the CPU trains).
    learning_rate : Adam step size.
    weight_decay : decoupled weight decay (AdamW), pulling the network towards
        zero, i.e. the answer towards Wiener-SITIE.
    buffer : training pairs kept (the newest); each step takes the newest pair
        with probability 1/2, otherwise a random one of the buffer.
    drift_aware : shift frame i + 1 back by the measured drift before the loss.
    next_frame_target : loss against frame i + 1 (``False``: against frame i
        itself, which lets the network fit the noise; kept for the benchmark).
    symmetric : also train the reverse pair (input i + 1, image i): while the
        texture changes, a one-way pair teaches the network to predict the next
        frame's texture; both ways the bias cancels to first order.
    raw_channel : also give the network the plain (unfiltered) SITIE phase as a
        second input channel, so it can learn what the Wiener filter removed.
    average : weight of the newest frame in the drift-registered running mean
        of the frames whose Wiener-SITIE is the network's input (1 = the frame
        alone).  The mean restarts on a change of microscope or shape, a gap,
        or a frame change ratio (difference / twice the noise) over
        ``reset_ratio``.
    keep_weights : keep the trained weights across a change of microscope
        parameters or image shape (the pairs and the running mean are dropped
        either way).  ``False`` (default): start a fresh network, whose answer is
        its input; after a defocus change of -0.6 -> -0.9 mm the kept weights
        scored B 0.781 / 0.827 over the next 10 frames, a fresh network 0.873 /
        0.884 (benchmarks/live_amortised.py, seeds 1, 2).
    seed : network initialisation and pair sampling.
    """

    network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(width=8, depth=3, max_width=32, skip=True)
    )
    steps_per_frame: int = 30
    learning_rate: float = 2.0e-3
    weight_decay: float = 0.0
    buffer: int = 8
    drift_aware: bool = True
    next_frame_target: bool = True
    symmetric: bool = True
    raw_channel: bool = False
    average: float = 0.3
    keep_weights: bool = False
    reset_ratio: float = 2.0
    seed: int = 0


@dataclass
class _Sample:
    """What one frame contributes to training: input, image, conditions."""

    net_input: torch.Tensor  # SITIE / scale, [1, 1, H, W]
    image: torch.Tensor  # mean-normalised [H, W]
    params: MicroscopeParams
    seq: int


@dataclass
class _Pair:
    net_input: torch.Tensor
    target: torch.Tensor
    transfer: torch.Tensor


def _zero_last_conv(net: torch.nn.Module) -> None:
    last = [module for module in net.modules() if isinstance(module, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()


class AmortisedMethod:
    """Camera-rate reconstruction by an online-trained network (see the module text).

    background : train in a daemon thread; ``False``: :meth:`train_pending`
        does the training in the caller's thread (benchmarks, tests).
    """

    method = "amortised"

    def __init__(
        self,
        config: AmortisedConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        background: bool = True,
    ) -> None:
        self.config = config or AmortisedConfig()
        self.device = torch.device(device)
        self._transfer = TransferCache(self.device)
        self._generation = 0  # bumped when the network is replaced
        self._new_network()
        self.resets = 0
        self._random = random.Random(self.config.seed)
        self._scale: float | None = None
        self._previous: _Sample | None = None
        self._mean = RunningMean(self.config.average, self.config.reset_ratio)
        self._pairs: deque[_Pair] = deque(maxlen=2 * self.config.buffer)
        self._owed = 0  # steps owed to arrived frames
        self._lock = threading.Lock()  # guards _answer_net swaps
        self._condition = threading.Condition()
        self._closed = False
        self.steps = 0
        self.frames_seen = 0
        self.last_train_loss = float("nan")
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._train_loop, name="amortised", daemon=True)
            self._thread.start()

    def _new_network(self) -> None:
        """A fresh network (its answer = its input) and optimiser."""
        with seeded_init(self.config.seed):
            channels = 2 if self.config.raw_channel else 1
            net = DeepImagePrior(channels, 1, self.config.network).to(self.device)
        _zero_last_conv(net)
        self._train_net = net
        self._answer_net = copy.deepcopy(net).eval()
        self._optimiser = torch.optim.AdamW(
            net.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        self._generation += 1

    def request_restart(self, reason: str) -> None:
        """Forget the training pairs (the weights stay: they map phase to phase)."""
        with self._condition:
            self._pairs.clear()
            self._previous = None
            self._mean.clear()

    def reconstruct(self, frame: LiveFrame, image: torch.Tensor) -> Estimate:
        shape = (int(image.shape[0]), int(image.shape[1]))
        transfer = self._transfer(shape, frame.params)
        image = image.to(self.device)
        norm = image / image.mean()
        previous = self._previous
        changed = previous is not None and (
            previous.params != frame.params or tuple(previous.image.shape) != shape
        )
        if changed and not self.config.keep_weights:
            with self._condition, self._lock:
                self._new_network()
                self.resets += 1
        update = self._mean.update(norm, frame.seq, frame.params, transfer)
        drift = update.drift_px
        sitie, _ = wiener_sitie(update.mean, frame.params, transfer)
        if self._scale is None:
            self._scale = float(sitie.std()) or 1.0
        net_input = (sitie / self._scale)[None, None]
        if self.config.raw_channel:
            raw = sitie_phase(norm, frame.params)
            net_input = torch.cat([net_input, ((raw - raw.mean()) / self._scale)[None, None]], 1)
        with torch.no_grad(), self._lock:
            phi_m = self._scale * (net_input[:, :1] + self._answer_net(net_input))[0, 0]
        phi_m = phi_m - phi_m.mean()
        fit = model_fit(phi_m, transfer)
        loss = float(torch.mean((fit - norm) ** 2))
        self._add_sample(_Sample(net_input, norm, frame.params, frame.seq), drift)
        return Estimate(
            phi_m=phi_m.cpu(),
            image_fit=fit.cpu(),
            loss=[loss],
            iterations=0,
            stop_reason=f"one pass (network trained {self.steps} steps)",
            warm=self.steps > 0,
            restart_reason=None if self.steps > 0 else "untrained: Wiener-SITIE",
            drift_px=drift or (0.0, 0.0),
            average=update.mean.cpu(),
        )

    def _add_sample(self, sample: _Sample, drift: tuple[float, float] | None) -> None:
        previous = self._previous
        self._previous = sample
        self.frames_seen += 1
        if previous is None:
            return
        if drift is None:
            with self._condition:
                self._pairs.clear()  # a new forward model or a gap: old pairs no longer apply
            return
        cfg = self.config
        source, target = previous, sample
        if not cfg.next_frame_target:
            source, target = sample, sample
        shape = (int(target.image.shape[0]), int(target.image.shape[1]))
        transfer = self._transfer(shape, target.params)
        pairs = [_Pair(source.net_input, target.image, transfer)]
        if cfg.next_frame_target:
            shift = drift if cfg.drift_aware else (0.0, 0.0)
            back = fourier_shift(target.image, (-shift[0], -shift[1]))
            pairs = [_Pair(source.net_input, back, transfer)]
            # the reverse pair would leak: frame i is part of frame i + 1's running mean
            if cfg.symmetric and cfg.average >= 1.0:
                pairs.append(_Pair(target.net_input, fourier_shift(source.image, shift), transfer))
        with self._condition:
            self._pairs.extend(pairs)
            self._owed = min(self._owed + cfg.steps_per_frame, 2 * cfg.steps_per_frame)
            self._condition.notify_all()

    def train_pending(self) -> int:
        """Run the steps owed to the frames seen so far (caller's thread); returns them."""
        with self._condition:
            owed, self._owed = self._owed, 0
            pairs = list(self._pairs)
        if owed and pairs:
            self._train(pairs, owed)
        return owed if pairs else 0

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the training thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _train(self, pairs: list[_Pair], steps: int) -> None:
        with self._condition:
            net, optimiser, generation = self._train_net, self._optimiser, self._generation
        assert self._scale is not None
        for _ in range(steps):
            pair = pairs[-1] if self._random.random() < 0.5 else self._random.choice(pairs)
            optimiser.zero_grad(set_to_none=True)
            phi = self._scale * (pair.net_input[:, :1] + net(pair.net_input))[0, 0]
            loss = torch.mean((model_fit(phi, pair.transfer) - pair.target) ** 2)
            if not torch.isfinite(loss):
                log.warning("amortised network: non-finite training loss, step skipped")
                continue
            loss.backward()
            optimiser.step()
            self.steps += 1
            self.last_train_loss = float(loss.detach())
        snapshot = copy.deepcopy(net).eval()
        with self._lock:
            if generation == self._generation:  # not replaced meanwhile
                self._answer_net = snapshot

    def _train_loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._closed or (self._owed > 0 and self._pairs))
                if self._closed:
                    return
                # one round of at most steps_per_frame, then look for newer frames
                steps = min(self._owed, self.config.steps_per_frame)
                self._owed -= steps
                pairs = list(self._pairs)
            try:
                self._train(pairs, steps)
            except Exception:  # the live loop never dies on training
                log.exception("amortised network: training round failed")


__all__ = ["AmortisedConfig", "AmortisedMethod"]
