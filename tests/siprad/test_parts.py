"""The parts of SIPRAD on their own: stopping rules, driver loop, scale fit, forward problem."""

from __future__ import annotations

import time

import pytest
import torch

from lorentz_live.physics import MicroscopeParams, forward_image, simulate_image, transfer_function
from lorentz_live.siprad import AnyOf, Deadline, Discrepancy, HeldOut, Plateau, optimise
from lorentz_live.siprad.problem import ForwardProblem, TransferCache
from lorentz_live.siprad.scale import fit_scale
from tests.siprad.conftest import bubble_phase


def test_discrepancy_fires_at_target_after_minimum() -> None:
    rule = Discrepancy(target=1.0, min_iterations=3)
    assert rule(2, [0.5]) is None
    assert rule(3, [1.5]) is None
    assert rule(3, [1.0]) == "discrepancy"


def test_plateau_compares_window_means() -> None:
    rule = Plateau(window=2, tolerance=0.1)
    assert rule(3, [4.0, 4.0, 1.0, 1.0]) is None  # improved by 75 %
    assert rule(3, [4.0, 4.0, 3.9, 3.8]) == "plateau"  # improved by 4 %
    assert rule(4, [4.0, 4.0, 3.9, 3.8, 3.7]) is None  # not at a window boundary


def test_held_out_keeps_the_best_and_waits_patience() -> None:
    rule = HeldOut(patience=30, smoothing=0.0)  # no smoothing: the raw values
    assert rule(50, []) is None  # nothing recorded yet
    fired = []
    for i, value in enumerate([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.05, 2.0]):
        rule.record(10 * i, value)  # scored every 10 iterations
        fired.append(rule(10 * i, []))
        if i == 2:
            assert rule.improved and rule.best_iteration == 20
        if i == 3:
            assert not rule.improved
    # best at iteration 20; 30 iterations without a new best -> fires at 50
    assert fired[:5] == [None] * 5 and fired[5] == "held-out"
    smooth = HeldOut(patience=100, smoothing=0.5)
    for i, value in enumerate((4.0, 0.0, 4.0)):
        smooth.record(i, value)
    assert smooth.average == 3.0 and smooth.best == 2.0 and smooth.best_iteration == 1


def test_deadline_and_any_of_order() -> None:
    past = Deadline(time.perf_counter() - 1.0)
    assert past(0, [1.0]) is None  # never before the first step
    assert past(1, [1.0, 1.0]) == "time budget"
    both = AnyOf((Discrepancy(2.0), past))
    assert both(1, [1.0, 1.0]) == "discrepancy"
    assert AnyOf(())(5, [1.0]) is None


def test_driver_keeps_the_iterate_that_stops() -> None:
    x = torch.tensor(4.0, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.25)

    def step(_: int) -> torch.Tensor:
        opt.zero_grad()
        return x**2

    losses, iterations, reason = optimise(
        step, lambda _: opt.step(), Discrepancy(target=1.0), max_iterations=50
    )
    # x halves every step: 16, 4, 1 -> stop at the third misfit, no step after it
    assert losses == [16.0, 4.0, 1.0]
    assert (iterations, reason) == (2, "discrepancy")
    assert float(x.detach()) == 1.0
    _, n, why = optimise(step, lambda _: opt.step(), AnyOf(()), max_iterations=3)
    assert (n, why) == (3, "max_iterations")


def test_driver_stops_on_divergence() -> None:
    values = iter([1.0, float("nan")])
    losses, iterations, reason = optimise(
        lambda _: torch.tensor(next(values), requires_grad=True),
        lambda _: None,
        AnyOf(()),
        max_iterations=5,
    )
    assert (losses, iterations, reason) == ([1.0], 1, "diverged")


def test_fit_scale_recovers_a_damped_phase() -> None:
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=-1.0e6)
    phase = bubble_phase((64, 64), seed=4)
    transfer = transfer_function((64, 64), params)
    image = forward_image(phase, transfer)
    damped = 0.7 * phase

    def misfit(alpha: float) -> float:
        return float(torch.mean((forward_image(alpha * damped, transfer) - image) ** 2))

    assert fit_scale(misfit) == pytest.approx(1.0 / 0.7, rel=0.01)
    # no evidence for a change: alpha stays 1 exactly
    assert fit_scale(lambda a: 1.0) == 1.0


def test_pad_problem_crops_the_window_of_a_larger_field() -> None:
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=-0.5e6)
    cache = TransferCache(torch.device("cpu"))
    phase = bubble_phase((40, 48), seed=1)
    pad = ForwardProblem.build((40, 48), params, "pad", 0.1, cache)
    assert pad.pad == 8  # at least 8 px
    assert pad.model_shape == (56, 64)
    assert tuple(pad.transfer.shape) == (56, 64)
    torch.testing.assert_close(pad.measured(pad.extend(phase)), phase)
    # the window of the field's image, renormalised: the same as imaging the field
    field = pad.extend(phase)
    full = simulate_image(field, params)[8:48, 8:56]
    torch.testing.assert_close(pad.simulate(field, None), full / full.mean())
    periodic = ForwardProblem.build((40, 48), params, "periodic", 0.1, cache)
    assert periodic.pad == 0
    torch.testing.assert_close(periodic.simulate(phase, None), simulate_image(phase, params))


def test_excluded_pixels_do_not_enter_the_misfit() -> None:
    from lorentz_live.siprad.reconstructor import _misfit, fresnel_length_px, widen

    gen = torch.Generator().manual_seed(0)
    image = 1.0 + 0.1 * torch.randn(32, 32, generator=gen)
    fit = 1.0 + 0.1 * torch.randn(32, 32, generator=gen)
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[10:14, 10:14] = True
    grown = widen(mask, 2.0)
    assert int(grown.sum()) == 8 * 8  # 4 px square grown by 2 px on each side
    assert bool(grown[8, 8]) and not bool(grown[7, 8])
    valid = ~grown
    changed = fit.clone()
    changed[grown] = 50.0  # a dark particle's wild contrast, inside the mask
    same = _misfit(fit, image, None, valid)
    torch.testing.assert_close(_misfit(changed, image, None, valid), same)
    assert float(_misfit(changed, image, None, None)) > 10 * float(_misfit(fit, image, None, None))
    # sqrt(lambda |dz|): 200 kV (2.51 pm), 1 mm -> 50.1 nm = 12.5 px of 4 nm
    params = MicroscopeParams(pixel_size_nm=4.0, defocus_nm=-1.0e6)
    assert fresnel_length_px(params) == pytest.approx(12.53, rel=0.01)


def test_networks_built_in_threads_match_the_serial_build() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lorentz_live.siprad.models import build_network
    from lorentz_live.siprad.network import NetworkConfig

    config = NetworkConfig()
    device = torch.device("cpu")
    reference = {seed: build_network(config, seed, device).state_dict() for seed in (1, 2)}
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with ThreadPoolExecutor(4) as pool:  # the live engine builds networks concurrently
        built = list(pool.map(lambda s: (s, build_network(config, s, device)), [1, 2] * 4))
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left alone
    for seed, net in built:
        for name, value in net.state_dict().items():
            assert torch.equal(value, reference[seed][name]), (seed, name)


def test_output_average_keeps_the_mean_of_the_last_outputs() -> None:
    from lorentz_live.siprad.models import OutputAverage

    off = OutputAverage(0)
    assert off.record(torch.ones(2, 2)) is not None and off.value() is None
    average = OutputAverage(3)
    for value in range(5):  # keeps 2, 3, 4
        average.record(torch.full((2, 2), float(value), requires_grad=True))
    kept = average.value()
    assert kept is not None and not kept.requires_grad
    assert torch.equal(kept, torch.full((2, 2), 3.0))


def test_snapshot_averaging_returns_the_mean_of_the_fitted_phases(noisy_bubbles) -> None:
    from lorentz_live.siprad import SipradConfig, SipradReconstructor
    from lorentz_live.siprad.network import NetworkConfig

    config = SipradConfig(
        network=NetworkConfig(width=8, depth=2, max_width=16), boundary="periodic",
        pretrain_iterations=20, max_iterations=40, stop="none", input_noise=0.0,
        calibrate_scale=False,
    )  # fmt: skip
    case = noisy_bubbles
    phases: list[torch.Tensor] = []
    many = SipradReconstructor(config.replace(average_outputs=10)).reconstruct(
        case.image, case.params, observe=lambda i, phi: phases.append(phi), observe_every=1
    )
    # without input noise the fitted phases are the noise-free ones observed: 30..39
    expected = torch.stack(phases[-10:]).mean(dim=0)
    assert torch.allclose(many.phi_m_raw, expected, atol=1e-5)
    assert not torch.allclose(many.phi_m_raw, phases[-1], atol=1e-3)
