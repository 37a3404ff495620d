"""Known-answer tests that pin the conventions of docs/conventions.md.

A flipped defocus, FFT or helicity sign reverses the chirality of every texture
we show; each test here fails for exactly such a flip.
"""

from __future__ import annotations

import math

import pytest
import torch

from lorentz_live.physics import (
    BLOCH_CCW,
    BLOCH_CW,
    NEEL_OUT,
    Bubble,
    MicroscopeParams,
    bubble_texture,
    damping_envelope_g,
    electron_wavelength_m,
    film_magnetic_phase,
    forward_image,
    integrated_induction,
    phase_transfer_chi,
    simulate_image,
    transfer_function,
)
from lorentz_live.physics.constants import MU0_H_PER_M
from lorentz_live.physics.fourier import frequency_grid

IDEAL = dict(cs_nm=0.0, theta_c_rad=0.0, defocus_spread_nm=0.0)


def test_wavelength_at_200_and_300_kv() -> None:
    assert electron_wavelength_m(200.0) == pytest.approx(2.5079e-12, rel=2e-4)
    assert electron_wavelength_m(300.0) == pytest.approx(1.9687e-12, rel=2e-4)
    assert MicroscopeParams(kv=200).wavelength_nm == pytest.approx(2.508e-3, rel=1e-3)


def test_transfer_is_identity_without_defocus_aberrations_or_envelope(device: torch.device) -> None:
    params = MicroscopeParams(defocus_nm=0.0, **IDEAL)
    transfer = transfer_function((24, 18), params, device=device)
    assert transfer.dtype == torch.complex64
    torch.testing.assert_close(transfer, torch.ones_like(transfer))


def test_chi_is_plus_pi_lambda_dz_k_squared() -> None:
    params = MicroscopeParams(defocus_nm=2.0e5, **IDEAL)
    k_y, k_x = frequency_grid((16, 16), params.pixel_size_m)
    chi = phase_transfer_chi(k_y, k_x, params)
    expected = math.pi * params.wavelength_m * params.defocus_m * (k_y**2 + k_x**2)
    torch.testing.assert_close(chi, expected)
    assert chi[0, 3] > 0  # positive defocus (overfocus) gives positive chi


def test_spatial_envelope_vanishes_where_chi_is_stationary() -> None:
    """The spatial-coherence term follows |d chi/dk|: zero where Cs and an underfocus cancel."""
    params = MicroscopeParams(
        defocus_nm=-500.0, cs_nm=1.0e6, theta_c_rad=1e-3, defocus_spread_nm=0.0
    )
    lam, cs, dz = params.wavelength_m, params.cs_nm * 1e-9, params.defocus_m
    k_star = math.sqrt(-dz / (cs * lam**2))
    k = torch.tensor([[k_star, 0.5 * k_star]], dtype=torch.float64)
    g = damping_envelope_g(torch.zeros_like(k), k, params)
    assert g[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert g[0, 1] > 1.0


def _gaussian_bump(shape: tuple[int, int], sigma_px: float, height_rad: float) -> torch.Tensor:
    y = torch.arange(shape[0], dtype=torch.float64)[:, None] - shape[0] / 2
    x = torch.arange(shape[1], dtype=torch.float64)[None, :] - shape[1] / 2
    return height_rad * torch.exp(-(x**2 + y**2) / (2 * sigma_px**2))


def test_weak_phase_image_matches_linearised_tie() -> None:
    """I/I0 = 1 - (lambda dz / 2 pi) lap phi for a weak, smooth phase at small defocus."""
    shape = (64, 48)
    params = MicroscopeParams(defocus_nm=-5.0e4, pixel_size_nm=5.0, **IDEAL)
    phase = _gaussian_bump(shape, 5.0, 0.05)
    image = simulate_image(phase, params)
    k_y, k_x = frequency_grid(shape, params.pixel_size_m)
    laplacian = torch.fft.ifft2(-4 * math.pi**2 * (k_y**2 + k_x**2) * torch.fft.fft2(phase)).real
    predicted = 1.0 - params.wavelength_m * params.defocus_m / (2 * math.pi) * laplacian
    contrast, predicted_contrast = image - 1.0, predicted - predicted.mean()
    assert contrast.abs().max() > 1e-3  # the test sees real contrast
    assert (contrast - predicted_contrast).abs().max() < 0.03 * contrast.abs().max()


def test_underfocus_darkens_a_positive_phase_bump() -> None:
    """A converging phase bump (lap phi < 0 at its centre) is dark underfocus, bright overfocus."""
    phase = _gaussian_bump((48, 48), 4.0, 0.5)
    under = simulate_image(phase, MicroscopeParams(defocus_nm=-5.0e4))
    over = simulate_image(phase, MicroscopeParams(defocus_nm=5.0e4))
    assert under[24, 24] < 0.95
    assert over[24, 24] > 1.05


def _bubble_phase(helicity: float, shape: tuple[int, int] = (64, 64)) -> torch.Tensor:
    texture = bubble_texture(shape, 4.0, [Bubble(128.0, 128.0, 40.0, helicity)], wall_width_nm=8.0)
    return film_magnetic_phase(texture, 2.0e5, 50.0, 4.0)


@pytest.mark.parametrize(("helicity", "sense"), [(BLOCH_CCW, 1.0), (BLOCH_CW, -1.0)])
def test_bloch_bubble_induction_circulates_with_its_helicity(helicity: float, sense: float) -> None:
    b_x, b_y = integrated_induction(_bubble_phase(helicity), 4.0)
    y = torch.arange(64.0)[:, None] * 4.0 - 128.0
    x = torch.arange(64.0)[None, :] * 4.0 - 128.0
    r = torch.sqrt(x**2 + y**2)
    wall = (r > 30) & (r < 50)
    tangential = (-y * b_x + x * b_y) / r.clamp_min(1e-9)  # B . (z x r_hat)
    assert sense * tangential[wall].mean() > 0
    assert (sense * tangential[wall] > 0).float().mean() > 0.95


def test_ccw_bloch_bubble_core_is_bright_underfocus() -> None:
    """End to end: texture helicity, Mansuripur sign, chi sign and FFT sign together.

    curl B > 0 inside a counter-clockwise wall, so lap phi > 0 there and the
    inside of the bubble is bright underfocus, dark overfocus (and a clockwise
    bubble the reverse).
    """
    y = torch.arange(64.0)[:, None] * 4.0 - 128.0
    x = torch.arange(64.0)[None, :] * 4.0 - 128.0
    r = torch.sqrt(x**2 + y**2)
    inside, outside = r < 40, (r > 40) & (r < 60)
    for helicity, sense in [(BLOCH_CCW, 1.0), (BLOCH_CW, -1.0)]:
        phase = _bubble_phase(helicity)
        for defocus_nm in (-2.0e5, -1.0e6, 2.0e5):
            image = simulate_image(phase, MicroscopeParams(defocus_nm=defocus_nm))
            bright_inside = image[inside].mean() - image[outside].mean()
            assert sense * math.copysign(1.0, -defocus_nm) * bright_inside > 0.05


def test_neel_bubble_has_no_phase_at_normal_incidence() -> None:
    assert _bubble_phase(NEEL_OUT).abs().max() < 1e-3 * _bubble_phase(BLOCH_CCW).abs().max()


def test_in_plane_domains_give_b_equal_mu0_ms_t() -> None:
    """Domains magnetised along +-x in y bands (divergence free): B_x = +-mu0 Ms t."""
    height, width, ms, thickness_nm = 64, 40, 3.0e5, 30.0
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    # smooth (2 px) walls at rows 16 and 48 keep the spectral solution free of ringing
    m_x = -torch.tanh((rows - 16.0) / 2.0) * torch.tanh((rows - 48.0) / 2.0)
    texture = torch.stack([m_x, torch.zeros_like(m_x), torch.zeros_like(m_x)])
    phase = film_magnetic_phase(texture, ms, thickness_nm, 5.0)
    b_x, b_y = integrated_induction(phase, 5.0)
    expected_t_nm = MU0_H_PER_M * ms * thickness_nm  # T nm
    inside, outside = b_x[28:36], torch.cat([b_x[:4], b_x[60:]])
    torch.testing.assert_close(inside, torch.full_like(inside, expected_t_nm), rtol=1e-4, atol=0)
    torch.testing.assert_close(outside, torch.full_like(outside, -expected_t_nm), rtol=1e-4, atol=0)
    assert b_y.abs().max() < 1e-9 * expected_t_nm


def test_forward_model_gradcheck_float64() -> None:
    params = MicroscopeParams(defocus_nm=-3.0e4, pixel_size_nm=3.0)
    transfer = transfer_function((6, 5), params, dtype=torch.complex128)
    generator = torch.Generator().manual_seed(3)
    phase = torch.rand((6, 5), dtype=torch.float64, generator=generator).requires_grad_()
    amplitude = (
        0.5 + torch.rand((6, 5), dtype=torch.float64, generator=generator)
    ).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, a: forward_image(p, transfer, a), (phase, amplitude))


def test_forward_model_is_batched(device: torch.device) -> None:
    params = MicroscopeParams(defocus_nm=-1.0e5)
    phases = torch.stack([_bubble_phase(BLOCH_CCW), _bubble_phase(BLOCH_CW)]).to(device)
    transfer = transfer_function((64, 64), params, device=device)
    batch = forward_image(phases, transfer)
    single = forward_image(phases[1], transfer)
    torch.testing.assert_close(batch[1], single)
    assert batch.shape == (2, 64, 64)
    torch.testing.assert_close(batch.mean(dim=(-2, -1)), torch.ones(2, device=device))
