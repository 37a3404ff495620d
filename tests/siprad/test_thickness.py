"""The thickness amplitude model: estimate, material checks, SIPRAD with it."""

from __future__ import annotations

import math

import pytest
import torch

import lorentz_live.siprad.thickness as thickness_module
from lorentz_live.errors import InputError
from lorentz_live.metrics import phase_and_b_accuracy
from lorentz_live.physics import (
    Material,
    MicroscopeParams,
    amplitude_from_thickness,
    contaminant_thickness,
    electrostatic_phase,
    simulate_image,
)
from lorentz_live.siprad import NetworkConfig, SipradConfig, SipradReconstructor
from lorentz_live.siprad.thickness import estimate_thickness
from tests.siprad.conftest import PIXEL_NM, add_noise, bubble_phase

SIZE = 96
PARAMS = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-0.5e6)


def contaminated(seed: int, noise: float = 0.3):
    """(image, phi_m, thickness nm) of a 96 px bubble lattice under two particles."""
    phase_m = bubble_phase((SIZE, SIZE), seed=seed)
    thickness = contaminant_thickness(
        (SIZE, SIZE), PIXEL_NM, count=2, radius_nm=(40.0, 60.0), height_nm=50.0, seed=seed
    )
    material = Material()
    phase = phase_m + electrostatic_phase(thickness, material, PARAMS.kv)
    image = simulate_image(phase, PARAMS, amplitude_from_thickness(thickness, material))
    return add_noise(image, noise, 100 + seed), phase_m, thickness


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_recovers_a_known_thickness_map(seed: int) -> None:
    image, _, thickness = contaminated(seed)
    estimate = estimate_thickness(image, Material(), PARAMS)
    corr = float(torch.corrcoef(torch.stack([estimate.flatten(), thickness.flatten()]))[0, 1])
    rmse = float((estimate - thickness).pow(2).mean().sqrt())
    # measured over seeds 0-2: corr 0.913-0.949, rmse 6.1-7.6 nm (peaks 50 nm); the
    # median of the clean film around the particles comes out at 0 nm
    assert corr > 0.88
    assert rmse < 10.0
    clean = thickness == 0
    assert float(estimate[clean].median()) < 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_island_estimate_is_two_valued_and_finds_the_islands(seed: int) -> None:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    islands = ((yy // 24 + xx // 24) % 2 == 0) & (yy % 24 > 4) & (xx % 24 > 4)
    thickness = islands.float() * 10.0
    material = Material()
    params = MicroscopeParams(pixel_size_nm=PIXEL_NM, defocus_nm=-1.0e6)
    image = simulate_image(
        electrostatic_phase(thickness, material, params.kv),
        params,
        amplitude_from_thickness(thickness, material),
    )
    estimate = estimate_thickness(
        add_noise(image, 0.3, seed), material, params, island_thickness_nm=10.0
    )
    assert set(torch.unique(estimate).tolist()) <= {0.0, 10.0}
    # measured over seeds 0-2: 0.880-0.889 of the pixels agree; the misses are a
    # 1-2 px rim round each island (the edge fringes read as island: 0.42-0.43 of
    # the pixels come out as island against 0.31)
    assert float((estimate == thickness).float().mean()) > 0.85
    assert float(estimate[islands].eq(10.0).float().mean()) > 0.97


def small_config(seed: int) -> SipradConfig:
    return SipradConfig(
        network=NetworkConfig(width=8, depth=3, max_width=32),
        boundary="periodic",
        pretrain_iterations=100,
        max_iterations=200,
        seed=seed,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thickness_mode_beats_threshold_on_contamination(seed: int) -> None:
    image, phase_m, _ = contaminated(seed)
    scores = {}
    for mode in ("threshold", "thickness"):
        result = SipradReconstructor(small_config(seed).replace(amplitude=mode)).reconstruct(
            image, PARAMS
        )
        scores[mode] = phase_and_b_accuracy(result.phi_m, phase_m, PIXEL_NM)
    # measured over seeds 0-2 (phase, B): thickness 0.67-0.82, 0.76-0.80;
    # threshold -0.37..-0.06, -0.20..-0.04
    assert scores["thickness"][0] > max(0.5, scores["threshold"][0] + 0.4)
    assert scores["thickness"][1] > max(0.6, scores["threshold"][1] + 0.4)


@pytest.mark.parametrize(
    ("material", "island", "message"),
    [
        (Material(-10.0, 100.0), None, "mean inner potential"),
        (Material(10.0, math.nan), None, "absorption length"),
        (Material(10.0, 0.0), None, "absorption length"),
        (Material(), -5.0, "island thickness"),
        (Material(), math.inf, "island thickness"),
    ],
)
def test_bad_material_constants_are_refused(material, island, message) -> None:
    with pytest.raises(InputError, match=message):
        SipradConfig(amplitude="thickness", material=material, island_thickness_nm=island)


def test_a_known_thickness_map_must_match_the_image() -> None:
    image, _, thickness = contaminated(0)
    rec = SipradReconstructor(small_config(0).replace(max_iterations=1, pretrain_iterations=1))
    with pytest.raises(InputError, match="shape"):
        rec.reconstruct(image, PARAMS, thickness_nm=thickness[:-1])
    with pytest.raises(InputError, match=">= 0"):
        rec.reconstruct(image, PARAMS, thickness_nm=-thickness)


def test_thickness_floor_keeps_the_clean_film_out_of_the_fit() -> None:
    from lorentz_live.siprad.problem import ForwardProblem, TransferCache
    from lorentz_live.siprad.thickness import thickness_model

    image, _, _ = contaminated(0)
    image = image / image.mean()
    problem = ForwardProblem.build((SIZE, SIZE), PARAMS, "periodic", 0.0, TransferCache("cpu"))
    estimate = estimate_thickness(image, Material(), PARAMS)
    clean = estimate <= 2.0
    fitted = {}
    for floor in (0.0, 2.0):
        config = small_config(0).replace(amplitude="thickness", thickness_floor_nm=floor)
        model = thickness_model(image, PARAMS, problem, config)
        model.fit(problem, torch.zeros_like(image), image, iterations=60)
        fitted[floor] = model.thickness()
    # with phi_m held at 0 the fit turns the bubbles' contrast into thickness on the
    # clean film; the floor forbids it (measured over seeds 0-2: 0.85-0.88 of the
    # clean film > 0.5 nm without a floor, none with it; mean t on the particles'
    # support 11-17 nm with the floor)
    assert float((fitted[0.0][clean] > 0.5).float().mean()) > 0.5
    assert float(fitted[2.0][clean].abs().max()) == 0.0
    assert float(fitted[2.0][~clean].mean()) > 5.0


def test_exclude_start_is_an_exclude_pass_then_a_warm_thickness_pass(monkeypatch) -> None:
    monkeypatch.setattr(thickness_module, "FIT_ITERATIONS", 30)  # a shorter thickness fit
    image, _, _ = contaminated(1)
    config = small_config(1).replace(
        amplitude="thickness", thickness_floor_nm=2.0, pretrain_iterations=20, max_iterations=30
    )
    both = SipradReconstructor(config.replace(thickness_start="exclude")).reconstruct(image, PARAMS)
    rough = SipradReconstructor(config.replace(amplitude="exclude")).reconstruct(image, PARAMS)
    warm = SipradReconstructor(config).reconstruct(image, PARAMS, state=rough.state)
    assert torch.allclose(both.phi_m, warm.phi_m, atol=1e-6)
    assert both.amplitude is not None and torch.allclose(both.amplitude, warm.amplitude)
    assert both.iterations == rough.iterations + warm.iterations
    assert both.pretrain_iterations == 20 and warm.pretrain_iterations == 0


def test_joint_thickness_fit_goes_on_in_the_main_loop(monkeypatch) -> None:
    monkeypatch.setattr(thickness_module, "FIT_ITERATIONS", 60)  # a shorter thickness fit
    image, _, _ = contaminated(0)
    config = small_config(0).replace(
        amplitude="thickness", thickness_floor_nm=2.0, pretrain_iterations=20,
        max_iterations=40, stop="none",
    )  # fmt: skip
    fixed = SipradReconstructor(config).reconstruct(image, PARAMS)
    joint = SipradReconstructor(config.replace(thickness_joint=True)).reconstruct(image, PARAMS)
    assert fixed.phase_e is not None and joint.phase_e is not None
    # measured over seeds 0-2: the map moves by up to 0.37-0.55 rad of phi_e and the
    # misfit of the last 10 iterations drops by 5.4-6.4 %
    assert float((joint.phase_e - fixed.phase_e).abs().max()) > 0.15
    assert sum(joint.loss[-10:]) < 0.98 * sum(fixed.loss[-10:])


def test_exclude_start_honours_pretrained_weights_and_observe(monkeypatch) -> None:
    monkeypatch.setattr(thickness_module, "FIT_ITERATIONS", 30)  # a shorter thickness fit
    image, _, _ = contaminated(2)
    config = small_config(2).replace(
        amplitude="thickness", thickness_floor_nm=2.0, pretrain_iterations=10, max_iterations=25,
        stop="none",
    )  # fmt: skip
    given = SipradReconstructor(config.replace(amplitude="none")).reconstruct(image, PARAMS)
    assert given.pretrained is not None
    seen: list[int] = []
    both = SipradReconstructor(
        config.replace(thickness_start="exclude", pretrain_iterations=0)
    ).reconstruct(
        image, PARAMS, pretrained=given.pretrained, observe=lambda i, _: seen.append(i),
        observe_every=10,
    )  # fmt: skip
    # no pre-training: the first pass starts from (and reports) the given weights
    assert both.pretrained is not None
    for key, value in given.pretrained.network.items():
        assert torch.equal(both.pretrained.network[key], value), key
    # both passes observed, the second's iterations counted on from the first's
    assert seen == [0, 10, 20, 25, 35, 45]
