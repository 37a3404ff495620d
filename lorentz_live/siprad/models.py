"""The models SIPRAD optimises, each with its state in and out.

:class:`PhaseModel`: the phase DIP (weights, Adam state, output scale).
Amplitude models give the non-magnetic part of the exit wave, (a, phi_e):
:class:`UniformAmplitude` (none), :class:`FixedAmplitude` (a map held fixed) and
:class:`LearnedAmplitude` (a second DIP, dual-valued every so often; paper Methods).
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from lorentz_live.physics import Material
from lorentz_live.physics.fourier import frequency_grid
from lorentz_live.physics.registration import fourier_shift
from lorentz_live.siprad.amplitude import MIN_AMPLITUDE, dual_valued, electrostatic_from_amplitude
from lorentz_live.siprad.network import DeepImagePrior, NetworkConfig, seeded_init

#: Adam steps fitting the amplitude DIP to its dual-valued projection.
PROJECTION_STEPS = 20


class InputNoise:
    """Adds fresh seeded Gaussian noise of std ``level`` to a network input."""

    def __init__(self, level: float, seed: int, device: torch.device) -> None:
        self.level = level
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` + noise (``x`` itself when the level is 0)."""
        if self.level <= 0:
            return x
        noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x + self.level * noise


class OutputAverage:
    """Mean of the last ``count`` phase outputs of the main loop (snapshot averaging).

    The outputs are those the loop fits (noisy input), detached; ``count`` 0 = off.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.items: deque[torch.Tensor] = deque(maxlen=max(count, 1))

    def record(self, phi: torch.Tensor) -> torch.Tensor:
        """Keep ``phi`` (detached) when averaging; returns ``phi`` unchanged."""
        if self.count > 0:
            self.items.append(phi.detach())
        return phi

    def value(self) -> torch.Tensor | None:
        """The mean of the kept outputs, or None (off, or nothing recorded)."""
        if not self.items:
            return None
        return torch.stack(tuple(self.items)).mean(dim=0)


def build_network(
    cfg: NetworkConfig, seed: int, device: torch.device, outputs: int = 1
) -> DeepImagePrior:
    """A DIP (one input channel, ``outputs`` output channels) initialised from ``seed``
    (the global RNG is left alone)."""
    with seeded_init(seed):
        net = DeepImagePrior(1, outputs, cfg)
    return net.to(device)


def weights(net: torch.nn.Module) -> dict[str, Any]:
    """CPU copy of a network's weights."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def to_cpu(value: Any) -> Any:
    """CPU copy of a (nested) optimiser state."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cpu(v) for v in value]
    return value


@dataclass
class ModelState:
    """Weights, Adam state and architecture of one DIP (CPU tensors)."""

    network: dict[str, Any]
    optimiser: dict[str, Any] | None
    config: NetworkConfig


class _Dip:
    """A DIP with its Adam optimiser and fixed input [1, 1, H, W]."""

    #: Output channels of the network.
    outputs = 1

    def __init__(
        self,
        cfg: NetworkConfig,
        net_input: torch.Tensor,
        learning_rate: float,
        seed: int,
        state: ModelState | None,
    ) -> None:
        device = net_input.device
        self.config = cfg if state is None else state.config
        self.net = build_network(self.config, seed, device, self.outputs)
        # foreach: the same update as the per-tensor loop, in fewer kernel calls
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=learning_rate, foreach=True)
        if state is not None:
            self.net.load_state_dict(state.network)
            if state.optimiser is not None:
                # deep copy: Adam would otherwise step the caller's state tensors in place
                self.optimiser.load_state_dict(copy.deepcopy(state.optimiser))
        self.input = net_input

    def output(self, noise: InputNoise | None) -> torch.Tensor:
        """Network output [H, W] for the input (+ fresh noise unless ``noise`` is None)."""
        x = self.input if noise is None else noise(self.input)
        return self.net(x)[0, 0]

    def pretrain_loss(self, noise: InputNoise) -> torch.Tensor:
        """MSE between the output for a noisy input and the input."""
        return torch.mean((self.output(noise) - self.input[0, 0]) ** 2)

    def zero_grad(self) -> None:
        """Clear the gradients."""
        self.optimiser.zero_grad(set_to_none=True)

    def step(self) -> None:
        """One Adam step."""
        self.optimiser.step()

    def update(self, iteration: int) -> None:
        """Main-loop step ``iteration`` (an Adam step)."""
        self.optimiser.step()

    def state(self) -> ModelState:
        """CPU copy of weights and optimiser state."""
        return ModelState(weights(self.net), to_cpu(self.optimiser.state_dict()), self.config)


class PhaseModel(_Dip):
    """Phase DIP: phi_m (rad) = ``scale`` x output; input = SITIE / ``scale``.

    ``scale`` (rad) is the SITIE phase's std on a cold start, the state's on a warm one.
    ``net_input`` [1, 1, H, W] replaces SITIE / scale when given (a warm start that
    keeps the input its weights were fitted with).  ``shift_px`` (dy, dx): the
    output is translated by it (periodic, band-limited; the live loop's drift).
    """

    def __init__(
        self,
        cfg: NetworkConfig,
        sitie: torch.Tensor,
        learning_rate: float,
        seed: int,
        *,
        state: ModelState | None = None,
        scale: float | None = None,
        net_input: torch.Tensor | None = None,
        shift_px: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.scale = scale if scale is not None else (float(sitie.std()) or 1.0)
        self.shift_px = (float(shift_px[0]), float(shift_px[1]))
        if net_input is None:
            net_input = (sitie / self.scale)[None, None]
        super().__init__(cfg, net_input, learning_rate, seed, state)

    def phase(self, noise: InputNoise | None) -> torch.Tensor:
        """phi_m [H, W], rad."""
        phi = self.scale * self.output(noise)
        if self.shift_px != (0.0, 0.0):
            phi = fourier_shift(phi, self.shift_px)
        return phi


def moment_kernels(shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Fourier kernels [2, H, W] (complex64) taking an in-plane moment (u_x, u_y) to phi.

    phi(k) = i (k_y u_x(k) - k_x u_y(k)) / (2 pi |k|^2), k in cycles per pixel: the
    film phase of :func:`lorentz_live.physics.magnetic_phase_from_moment` up to a
    constant factor, so that a uniform film of moment 1 has a phase slope of the order
    of 1 rad per pixel; k = 0 is dropped (phi has zero mean).
    """
    k_y, k_x = frequency_grid(shape, 1.0, device=device, dtype=torch.float32)
    k_sq = k_y**2 + k_x**2
    factor = torch.where(k_sq > 0, 1.0 / (2.0 * torch.pi * torch.where(k_sq > 0, k_sq, 1.0)), 0.0)
    return torch.stack((1j * factor * k_y, -1j * factor * k_x)).to(torch.complex64)


class MomentPhase(PhaseModel):
    """Phase DIP that outputs a magnetisation: phi_m from an in-plane moment on the material.

    The network outputs two maps (u_x, u_y), multiplied by ``support`` [H', W']
    (1 where there is magnetic material, 0 in vacuum; 1 in the model's padding
    margin, whose free moments stand for the unseen field outside the window), and
    phi_m = ``scale`` x ``gain`` x the film phase of that moment
    (:func:`moment_kernels`).  In vacuum inside the window phi_m then has only the
    stray-field (harmonic) part the material's moment sets, as in Mansuripur's
    thin-film phase.  ``gain`` (1 / px) makes a moment of 1 carry the rms phase
    slope of the input.
    """

    outputs = 2

    def __init__(
        self,
        cfg: NetworkConfig,
        sitie: torch.Tensor,
        learning_rate: float,
        seed: int,
        *,
        support: torch.Tensor,
        state: ModelState | None = None,
        scale: float | None = None,
        net_input: torch.Tensor | None = None,
        shift_px: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__(
            cfg, sitie, learning_rate, seed,
            state=state, scale=scale, net_input=net_input, shift_px=shift_px,
        )  # fmt: skip
        self.support = support.to(sitie.dtype)
        self.kernels = moment_kernels((sitie.shape[0], sitie.shape[1]), sitie.device)
        x = self.input[0, 0]
        slope = torch.sqrt(
            (torch.diff(x, dim=0)[:, :-1] ** 2 + torch.diff(x, dim=1)[:-1, :] ** 2).mean()
        )
        self.gain = float(slope) or 1.0

    def output(self, noise: InputNoise | None) -> torch.Tensor:
        """Network output [2, H, W] (the moment before the support)."""
        x = self.input if noise is None else noise(self.input)
        return self.net(x)[0]

    def phase(self, noise: InputNoise | None) -> torch.Tensor:
        """phi_m [H, W], rad: the film phase of the moment on the support."""
        moment = self.output(noise) * self.support
        spectrum = (self.kernels * torch.fft.fft2(moment)).sum(dim=0)
        phi = self.scale * self.gain * torch.fft.ifft2(spectrum).real
        if self.shift_px != (0.0, 0.0):
            phi = fourier_shift(phi, self.shift_px)
        return phi

    def pretrain_loss(self, noise: InputNoise) -> torch.Tensor:
        """MSE between the phase (input units) of the noisy-input moment and the input."""
        return torch.mean((self.phase(noise) / self.scale - self.input[0, 0]) ** 2)


class UniformAmplitude:
    """a = 1, phi_e = 0: nothing to learn."""

    def exit(self, noise: InputNoise | None) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """(amplitude or None, phi_e in rad)."""
        return None, 0.0

    def pretrain_loss(self, noise: InputNoise) -> torch.Tensor | float:
        """Nothing to pre-train."""
        return 0.0

    def zero_grad(self) -> None:
        """Nothing to clear."""

    def step(self) -> None:
        """Nothing to step (pre-training)."""

    def update(self, iteration: int) -> None:
        """Nothing to step (main loop)."""

    def finish(self) -> None:
        """Nothing to finish."""

    def state(self) -> ModelState | None:
        """No state."""
        return None


class FixedAmplitude(UniformAmplitude):
    """A fixed amplitude map and its phi_e, model-size [H, W]."""

    def __init__(self, amplitude: torch.Tensor, phase_e: torch.Tensor) -> None:
        self.amplitude = amplitude
        self.phase_e = phase_e

    def exit(self, noise: InputNoise | None) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """(amplitude, phi_e in rad)."""
        return self.amplitude, self.phase_e


class LearnedAmplitude(_Dip):
    """Amplitude DIP (paper Methods): a in [MIN_AMPLITUDE, 1], phi_e from a.

    Every ``dual_value_every`` steps and at the end the network is fitted to the
    dual-valued projection of its output; the final amplitude is dual-valued.
    """

    def __init__(
        self,
        cfg: NetworkConfig,
        initial: torch.Tensor,
        learning_rate: float,
        seed: int,
        *,
        material: Material,
        kv: float,
        dual_value_every: int,
        state: ModelState | None = None,
    ) -> None:
        super().__init__(cfg, initial[None, None], learning_rate, seed, state)
        self.material = material
        self.kv = kv
        self.dual_value_every = dual_value_every
        self.finished = False

    def exit(self, noise: InputNoise | None) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """(amplitude, phi_e in rad); dual-valued once :meth:`finish` ran."""
        amplitude = self.output(noise).clamp(MIN_AMPLITUDE, 1.0)
        if self.finished:
            amplitude = dual_valued(amplitude)
        return amplitude, electrostatic_from_amplitude(amplitude, self.material, self.kv)

    def update(self, iteration: int) -> None:
        """Adam step; project on two values every ``dual_value_every`` iterations."""
        self.optimiser.step()
        if (iteration + 1) % self.dual_value_every == 0:
            self.project()

    def project(self) -> None:
        """Fit the network to the dual-valued projection of its output."""
        with torch.no_grad():
            target = dual_valued(self.output(None).clamp(MIN_AMPLITUDE, 1.0))
        for _ in range(PROJECTION_STEPS):
            self.zero_grad()
            loss = torch.mean((self.output(None) - target) ** 2)
            loss.backward()
            self.optimiser.step()

    def finish(self) -> None:
        """Last projection; later outputs are dual-valued."""
        self.project()
        self.finished = True
