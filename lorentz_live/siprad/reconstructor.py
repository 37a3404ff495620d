"""SIPRAD: magnetic phase from one defocused image with a deep image prior.

A CNN (the DIP) is given a noise-filtered SITIE phase of the image as input,
pre-trained to reproduce it, then optimised (Adam) so that the forward model
(:func:`lorentz_live.physics.forward_image`) of its output matches the measured,
mean-normalised image in the MSE sense.  Regularisation, measured in
docs/accuracy.md:

* stopping by the discrepancy principle: the iteration stops as soon as the
  image misfit reaches the noise variance estimated from the spectrum where the
  envelope has removed the signal (:mod:`lorentz_live.siprad.noise`), and that
  iterate is kept; a loss plateau or ``max_iterations`` stop it otherwise;
* fresh Gaussian input noise each iteration (not accumulated);
* the DIP output is a phase in units of the input's standard deviation;
* final Gaussian smoothing of phi_m (sigma = 2 px, paper Methods).

The step is separate from any loop that feeds it frames: :meth:`SipradReconstructor.reconstruct`
takes an image, microscope parameters and optionally the :class:`SipradState` of a
previous run (warm start) and returns a :class:`SipradResult` with the new state.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lorentz_live.errors import InputError
from lorentz_live.physics import (
    Material,
    MicroscopeParams,
    forward_image,
    gaussian_filter,
    integrated_induction,
    sitie_phase,
    transfer_function,
)
from lorentz_live.physics.registration import fourier_shift
from lorentz_live.siprad.amplitude import (
    MIN_AMPLITUDE,
    AmplitudeMap,
    dual_valued,
    electrostatic_from_amplitude,
    threshold_amplitude,
)
from lorentz_live.siprad.network import DeepImagePrior, NetworkConfig
from lorentz_live.siprad.noise import NoiseEstimate, estimate_noise

AMPLITUDE_MODES = ("none", "threshold", "learn")
STOP_RULES = ("discrepancy", "plateau", "none")

#: progress(iteration, max_iterations, loss); called once per main-loop iteration.
ProgressCallback = Callable[[int, int, float], None]
#: observe(iteration, phi_m) with the current unsmoothed phase (diagnostics only).
ObserveCallback = Callable[[int, torch.Tensor], None]


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
    stop : ``"discrepancy"`` (misfit <= ``discrepancy_factor`` x estimated noise
        variance, or a plateau), ``"plateau"`` or ``"none"`` (run ``max_iterations``).
    discrepancy_factor : tau of the discrepancy principle.
    noise_sigma : known noise std / mean intensity; ``None`` = estimate it.
    plateau_window : iterations per window of the plateau test.
    plateau_tolerance : stop when the mean loss of a window improves on the previous
        window's by less than this fraction.
    smoothing_sigma_px : Gaussian smoothing of the final phi_m, pixels (paper: 2).
    adaptive_smoothing : smooth more when noise limits the resolution: sigma is
        raised to :func:`resolution_sigma_px` (at least ``smoothing_sigma_px``).
    boundary : ``"periodic"`` (default): the forward model's FFT field is the
        image; ``"pad"``: the DIP models a field ``pad_fraction`` x the image size
        larger on each side, the forward model images it and the loss compares
        only the measured window (no wrap-around at the image edges).  Measured
        on a non-periodic 128 px crop of the paper's phase, "pad" lost phase
        accuracy (0.725 vs 0.908; B 0.879 vs 0.907): the padded margin leaves
        long-wavelength ramps unconstrained (docs/accuracy.md).
    pad_fraction : padding per side as a fraction of the larger image side
        (at least 8 px).
    input_filter : ``"wiener"`` (SITIE of the image Wiener-filtered with the noise
        estimate; damps the 1/k^2 noise amplification of SITIE) or ``"none"``.
    amplitude : ``"none"`` (uniform), ``"threshold"`` (fixed dual-valued map from
        the image) or ``"learn"`` (a second DIP, paper Methods).
    threshold : amplitude threshold in units of the mean intensity (None = 3/4 of
        the mode).
    material : contaminant constants that turn an amplitude into phi_e.
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
    stop: str = "discrepancy"
    discrepancy_factor: float = 1.0
    noise_sigma: float | None = None
    plateau_window: int = 100
    plateau_tolerance: float = 2.0e-3
    smoothing_sigma_px: float = 2.0
    adaptive_smoothing: bool = False
    boundary: str = "periodic"
    pad_fraction: float = 0.125
    input_filter: str = "wiener"
    loss_weighting: str = "none"
    amplitude: str = "none"
    threshold: float | None = None
    material: Material = field(default_factory=Material)
    amplitude_network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(width=8, depth=3, max_width=32)
    )
    dual_value_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.amplitude not in AMPLITUDE_MODES:
            raise InputError(f"amplitude must be one of {AMPLITUDE_MODES}, got {self.amplitude!r}")
        if self.stop not in STOP_RULES:
            raise InputError(f"stop must be one of {STOP_RULES}, got {self.stop!r}")
        if self.boundary not in ("pad", "periodic"):
            raise InputError(f"boundary must be 'pad' or 'periodic', got {self.boundary!r}")
        if self.input_filter not in ("wiener", "none"):
            raise InputError(f"input_filter must be 'wiener' or 'none', got {self.input_filter!r}")
        if self.max_iterations < 0 or self.pretrain_iterations < 0 or self.min_iterations < 0:
            raise InputError("iteration counts must be >= 0")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate!r}")

    def replace(self, **changes: Any) -> SipradConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


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

    phi_m : magnetic phase, rad, smoothed, zero mean.
    phi_m_raw : the DIP's phase before smoothing, rad (what the forward model saw).
    smoothing_sigma_px : the smoothing applied, pixels.
    b_x, b_y : integrated in-plane induction, T nm (from the smoothed phi_m).
    image : the measured image, mean-normalised.
    image_fit : forward-model image of the kept iterate (unsmoothed phase).
    sitie : the SITIE phase used as the DIP input, rad.
    amplitude, phase_e : the amplitude map and phi_e (rad), or None.
    loss : image MSE per main-loop iteration (mean-normalised units).
    iterations : main-loop iterations used.  stop_reason : why it stopped
        (``"max_iterations"``: the iteration cap was reached before convergence).
    pretrain_iterations : pre-training iterations run (0 for a warm start).
    noise : the noise estimate used by the discrepancy principle.
    target : the misfit the discrepancy principle stops at (noise power passed
        by the loss, times ``discrepancy_factor``).
    state : network weights + optimiser state for a warm start.
    seconds : wall time.
    """

    phi_m: torch.Tensor
    phi_m_raw: torch.Tensor
    smoothing_sigma_px: float
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


def wiener_gain(image: torch.Tensor, noise_variance: float) -> torch.Tensor:
    """Wiener gain S / (S + N) [H, W] on the FFT grid of the mean-normalised ``image``.

    Signal power per ring of |k| = measured power - noise power (floored at 0),
    so the gain needs no ground truth, only the noise estimate.  DC gets gain 1.
    """
    height, width = image.shape
    spectrum = torch.fft.fft2(image - image.mean())
    power = spectrum.abs() ** 2 / (height * width)
    k_y = torch.fft.fftfreq(height, device=image.device)[:, None]
    k_x = torch.fft.fftfreq(width, device=image.device)[None, :]
    ring = torch.round(torch.sqrt(k_y**2 + k_x**2) * max(height, width)).long()
    count = torch.bincount(ring.flatten()).clamp_min(1)
    mean_power = torch.bincount(ring.flatten(), weights=power.flatten().double()) / count
    signal = (mean_power - noise_variance).clamp_min(0.0).to(power.dtype)[ring]
    gain = signal / (signal + noise_variance) if noise_variance > 0 else torch.ones_like(signal)
    gain[0, 0] = 1.0
    return gain


def wiener_contrast(image: torch.Tensor, noise_variance: float) -> torch.Tensor:
    """Mean-normalised ``image`` [H, W] Wiener-filtered by :func:`wiener_gain`."""
    spectrum = torch.fft.fft2(image - image.mean())
    return 1.0 + torch.fft.ifft2(spectrum * wiener_gain(image, noise_variance)).real


def resolution_sigma_px(image: torch.Tensor, noise_variance: float) -> float:
    """Gaussian sigma (px) matched to the noise-limited resolution of ``image`` [H, W].

    k_c = the highest ring of |k| whose mean Wiener gain (:func:`wiener_gain`) is
    >= 1/2, i.e. where signal power still exceeds noise power; sigma is chosen so
    the Gaussian's transfer is 1/2 at k_c: exp(-2 pi^2 sigma^2 k_c^2) = 1/2.
    """
    height, width = image.shape
    gain = wiener_gain(image, noise_variance)
    k_y = torch.fft.fftfreq(height, device=image.device)[:, None]
    k_x = torch.fft.fftfreq(width, device=image.device)[None, :]
    size = max(height, width)
    ring = torch.round(torch.sqrt(k_y**2 + k_x**2) * size).long()
    count = torch.bincount(ring.flatten()).clamp_min(1)
    profile = torch.bincount(ring.flatten(), weights=gain.flatten().double()) / count
    passing = torch.nonzero(profile[1:] >= 0.5).flatten()
    if passing.numel() == 0:
        return 8.0
    k_c = float(passing.max() + 1) / size
    return min(8.0, math.sqrt(math.log(2.0) / 2.0) / (math.pi * k_c))


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
        self._transfers: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def transfer(self, shape: tuple[int, int], params: MicroscopeParams) -> torch.Tensor:
        """T(k) [H, W] complex64 for ``shape`` and ``params``, cached (8 entries)."""
        key = (tuple(shape), params)
        if key in self._transfers:
            self._transfers.move_to_end(key)
            return self._transfers[key]
        value = transfer_function(tuple(shape), params, device=self.device)
        self._transfers[key] = value
        while len(self._transfers) > 8:
            self._transfers.popitem(last=False)
        return value

    def _build_network(self, in_channels: int, cfg: NetworkConfig, seed: int) -> DeepImagePrior:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = DeepImagePrior(in_channels, 1, cfg)
        return net.to(self.device)

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

        Returns
        -------
        SipradResult
        """
        cfg = self.config
        start = time.perf_counter()
        image = validate_image(image)
        params.require_reconstruction_defocus()
        image = (image / image.mean()).to(self.device)
        shape = tuple(image.shape)
        transfer = self.transfer(shape, params)
        noise = estimate_noise(image, transfer)
        height, width = shape
        pad = 0
        if cfg.boundary == "pad":
            pad = max(8, math.ceil(cfg.pad_fraction * max(height, width)))
            pad = min(pad, height - 1, width - 1)
        field_transfer = self.transfer((height + 2 * pad, width + 2 * pad), params)

        def extend(x: torch.Tensor) -> torch.Tensor:
            if pad == 0:
                return x
            return F.pad(x[None, None], (pad, pad, pad, pad), mode="reflect")[0, 0]

        def measured(x: torch.Tensor) -> torch.Tensor:
            return x[..., pad : pad + height, pad : pad + width]

        def simulate(phase: torch.Tensor, amp: torch.Tensor | None) -> torch.Tensor:
            fit = measured(forward_image(phase, field_transfer, amp, normalise=False))
            return fit / fit.mean()

        if cfg.noise_sigma is not None:
            noise = NoiseEstimate(float(cfg.noise_sigma), 0.0, "given")

        amp_map: AmplitudeMap | None = None
        sitie_source = image
        if cfg.amplitude in ("threshold", "learn"):
            amp_map = threshold_amplitude(image, cfg.material, params.kv, threshold=cfg.threshold)
            # the contaminants' contrast is not magnetic: hide it from the SITIE input
            soft = gaussian_filter(amp_map.mask.to(image.dtype), 2.0)
            sitie_source = image * (1.0 - soft) + soft
        if cfg.input_filter == "wiener":
            sitie_source = wiener_contrast(sitie_source, noise.variance)
        weight = None
        if cfg.loss_weighting == "wiener":
            weight = wiener_gain(image, noise.variance)
        sitie = sitie_phase(sitie_source, params, symmetrize=pad > 0)

        # a warm start keeps the architecture its weights were trained with
        net = self._build_network(
            1, cfg.network if state is None else state.network_config, cfg.seed
        )
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        if state is not None:
            net.load_state_dict(state.network)
            # deep copy: Adam would otherwise step the caller's state tensors in place
            optimiser.load_state_dict(copy.deepcopy(state.optimiser))
            phase_scale = state.phase_scale
        else:
            phase_scale = float(sitie.std()) or 1.0
        net_input = (extend(sitie) / phase_scale)[None, None]
        if (
            state is not None
            and state.net_input is not None
            and tuple(state.net_input.shape) == tuple(net_input.shape)
        ):
            net_input = state.net_input.to(self.device, net_input.dtype)

        amp_net = amp_opt = amp_input = None
        if cfg.amplitude == "learn":
            assert amp_map is not None
            amp_net = self._build_network(1, cfg.amplitude_network, cfg.seed + 7919)
            amp_opt = torch.optim.Adam(amp_net.parameters(), lr=cfg.learning_rate)
            amp_input = extend(amp_map.amplitude)[None, None]
            if state is not None and state.amplitude_network is not None:
                amp_net.load_state_dict(state.amplitude_network)
                if state.amplitude_optimiser is not None:
                    amp_opt.load_state_dict(copy.deepcopy(state.amplitude_optimiser))

        generator = torch.Generator(device=self.device)
        generator.manual_seed(cfg.seed + 1)

        def noisy(x: torch.Tensor) -> torch.Tensor:
            if cfg.input_noise <= 0:
                return x
            return x + cfg.input_noise * torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype
            )

        pretrained = 0
        if state is None:
            # pre-training may use half of the time left before the deadline
            now = time.perf_counter()
            pretrain_end = None if deadline is None else now + (deadline - now) / 2.0
            for _ in range(cfg.pretrain_iterations):
                if pretrain_end is not None and pretrained and time.perf_counter() >= pretrain_end:
                    break
                optimiser.zero_grad(set_to_none=True)
                loss = torch.mean((net(noisy(net_input)) - net_input) ** 2)
                if amp_net is not None:
                    loss = loss + torch.mean((amp_net(noisy(amp_input)) - amp_input) ** 2)
                    amp_opt.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if amp_opt is not None:
                    amp_opt.step()
                pretrained += 1
                if pretrain_progress is not None:
                    pretrain_progress(pretrained, cfg.pretrain_iterations, float(loss.detach()))

        fixed_amp = fixed_phase_e = None
        if cfg.amplitude == "threshold":
            assert amp_map is not None
            fixed_amp, fixed_phase_e = extend(amp_map.amplitude), extend(amp_map.phase_e)

        shift_px = (0.0, 0.0) if state is None else state.output_shift_px

        def exit_parts(x: torch.Tensor, a_in: torch.Tensor | None):
            phi_m = phase_scale * net(x)[0, 0]
            if shift_px != (0.0, 0.0):
                phi_m = fourier_shift(phi_m, shift_px)
            if amp_net is not None:
                amp = amp_net(a_in)[0, 0].clamp(MIN_AMPLITUDE, 1.0)
                return (
                    phi_m,
                    phi_m + electrostatic_from_amplitude(amp, cfg.material, params.kv),
                    amp,
                )
            if fixed_amp is not None:
                return phi_m, phi_m + fixed_phase_e, fixed_amp
            return phi_m, phi_m, None

        # expected misfit of the true phase: the noise power the loss lets through
        passed = 1.0 if weight is None else float(weight.mean())
        target = cfg.discrepancy_factor * noise.variance * passed
        losses: list[float] = []
        stop_reason = "max_iterations"
        iterations = 0
        window = max(1, cfg.plateau_window)
        for iteration in range(cfg.max_iterations):
            if deadline is not None and iterations > 0 and time.perf_counter() >= deadline:
                stop_reason = "time budget"
                break
            optimiser.zero_grad(set_to_none=True)
            if amp_opt is not None:
                amp_opt.zero_grad(set_to_none=True)
            _, phase, amp = exit_parts(
                noisy(net_input), None if amp_input is None else noisy(amp_input)
            )
            fit = simulate(phase, amp)
            if weight is None:
                loss = torch.mean((fit - image) ** 2)
            else:
                residual = torch.fft.fft2(fit - image)
                loss = torch.mean(weight * (residual.real**2 + residual.imag**2)) / residual.numel()
            value = float(loss.detach())
            if not math.isfinite(value):
                stop_reason = "diverged"
                break
            losses.append(value)
            iterations = iteration
            if progress is not None:
                progress(iteration + 1, cfg.max_iterations, value)
            if observe is not None and iteration % observe_every == 0:
                with torch.no_grad():
                    observe(iteration, measured(phase_scale * net(net_input)[0, 0]).cpu())
            if iteration >= cfg.min_iterations:
                if cfg.stop == "discrepancy" and value <= target:
                    stop_reason = "discrepancy"
                    break
                if (
                    cfg.stop in ("discrepancy", "plateau")
                    and len(losses) >= 2 * window
                    and len(losses) % window == 0
                ):
                    previous = sum(losses[-2 * window : -window]) / window
                    current = sum(losses[-window:]) / window
                    if previous - current < cfg.plateau_tolerance * previous:
                        stop_reason = "plateau"
                        break
            loss.backward()
            optimiser.step()
            if amp_opt is not None:
                amp_opt.step()
                if (iteration + 1) % cfg.dual_value_every == 0:
                    self._project_amplitude(amp_net, amp_opt, amp_input)
            iterations = iteration + 1

        if amp_net is not None:
            self._project_amplitude(amp_net, amp_opt, amp_input)

        with torch.no_grad():
            phi_raw, phase, amp = exit_parts(net_input, amp_input)
            if amp_net is not None:
                # after the last iteration the amplitude is made dual-valued (paper)
                amp = dual_valued(amp)
                phase = phi_raw + electrostatic_from_amplitude(amp, cfg.material, params.kv)
            image_fit = simulate(phase, amp)
            phi_raw, phase = measured(phi_raw), measured(phase)
            amp = None if amp is None else measured(amp)
            sigma_px = cfg.smoothing_sigma_px
            if cfg.adaptive_smoothing:
                sigma_px = max(sigma_px, resolution_sigma_px(image, noise.variance))
            phi_m = gaussian_filter(phi_raw, sigma_px)
            phi_m = phi_m - phi_m.mean()
            b_x, b_y = integrated_induction(phi_m, params.pixel_size_nm)
            phase_e = None if amp is None else phase - phi_raw

        new_state = SipradState(
            network={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            optimiser=_to_cpu(optimiser.state_dict()),
            phase_scale=phase_scale,
            network_config=cfg.network,
            amplitude_network=None
            if amp_net is None
            else {k: v.detach().cpu().clone() for k, v in amp_net.state_dict().items()},
            amplitude_optimiser=None if amp_opt is None else _to_cpu(amp_opt.state_dict()),
            net_input=net_input.detach().cpu().clone(),
            output_shift_px=shift_px,
        )

        def cpu(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.detach().to("cpu", torch.float32)

        return SipradResult(
            phi_m=cpu(phi_m),
            phi_m_raw=cpu(phi_raw),
            smoothing_sigma_px=sigma_px,
            b_x=cpu(b_x),
            b_y=cpu(b_y),
            image=cpu(image),
            image_fit=cpu(image_fit),
            sitie=cpu(sitie),
            amplitude=cpu(amp),
            phase_e=cpu(phase_e),
            loss=losses,
            iterations=iterations,
            stop_reason=stop_reason,
            noise=noise,
            target=target,
            state=new_state,
            seconds=time.perf_counter() - start,
            pretrain_iterations=pretrained,
        )

    def _project_amplitude(
        self, amp_net: DeepImagePrior, amp_opt: torch.optim.Optimizer, amp_input: torch.Tensor
    ) -> None:
        """Dual-valued constraint: fit the amplitude DIP to its two-valued projection."""
        with torch.no_grad():
            target = dual_valued(amp_net(amp_input)[0, 0].clamp(MIN_AMPLITUDE, 1.0))
        for _ in range(20):
            amp_opt.zero_grad(set_to_none=True)
            loss = torch.mean((amp_net(amp_input)[0, 0] - target) ** 2)
            loss.backward()
            amp_opt.step()


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


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
