"""Accuracy of a reconstruction against a known phase (SIPRAD paper, Fig. 3).

Accuracy is the Pearson correlation with the truth on the [N/16 : -N/16] crop
(the edges are left out, as in the paper); B accuracy is the mean of the B_x and
B_y correlations.
"""

from __future__ import annotations

import torch

from lorentz_live.physics import MicroscopeParams, integrated_induction, transfer_function


def correlation(a: torch.Tensor, b: torch.Tensor, *, crop: bool = True) -> float:
    """Pearson correlation of two [H, W] maps (0 if either is constant)."""
    if crop:
        height, width = a.shape[-2:]
        cy, cx = height // 16, width // 16
        a, b = a[..., cy : height - cy, cx : width - cx], b[..., cy : height - cy, cx : width - cx]
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    norm = torch.sqrt((a @ a) * (b @ b))
    return float((a @ b) / norm) if norm > 0 else 0.0


def phase_and_b_accuracy(
    phase: torch.Tensor, truth: torch.Tensor, pixel_size_nm: float, *, crop: bool = True
) -> tuple[float, float]:
    """(phase correlation, mean B_x / B_y correlation) of ``phase`` against ``truth`` (rad)."""
    b, t = integrated_induction(phase, pixel_size_nm), integrated_induction(truth, pixel_size_nm)
    b_accuracy = 0.5 * (correlation(b[0], t[0], crop=crop) + correlation(b[1], t[1], crop=crop))
    return correlation(phase, truth, crop=crop), b_accuracy


def magnitude_ratio(
    phase: torch.Tensor, truth: torch.Tensor, pixel_size_nm: float, *, crop: bool = True
) -> float:
    """Median of |B| / |B_true| over the pixels where |B_true| > half its maximum.

    The quantitative test of a reconstruction (|B| is Ms t): 1 is exact.  Phases
    [H, W] in rad, on the [N/16 : -N/16] crop unless ``crop`` is False.
    """
    b_x, b_y = integrated_induction(phase, pixel_size_nm)
    t_x, t_y = integrated_induction(truth, pixel_size_nm)
    found, true = torch.hypot(b_x, b_y), torch.hypot(t_x, t_y)
    if crop:
        height, width = found.shape[-2:]
        cy, cx = height // 16, width // 16
        found = found[..., cy : height - cy, cx : width - cx]
        true = true[..., cy : height - cy, cx : width - cx]
    strong = true > 0.5 * true.max()
    if not bool(strong.any()):
        return float("nan")
    return float((found[strong] / true[strong]).median())


def linear_oracle(
    truth: torch.Tensor, params: MicroscopeParams, noise_sigma: float
) -> torch.Tensor:
    """The truth phase [H, W] (rad) as the best linear reconstruction sees it.

    Weak-phase imaging passes phi(k) to the image contrast with gain
    h(k) = 2 |Im T(k)| (envelope x sin chi).  Against white noise of
    ``noise_sigma`` (std / mean intensity) the minimum-mean-square-error linear
    filter, built with the truth's own power spectrum S(k), keeps
    h^2 S / (h^2 S + N) of each frequency (N = sigma^2 H W).  Its |B| ratio
    (:func:`magnitude_ratio`) is an information limit: walls narrower than the
    frequencies that survive the envelope and the noise lose their peak |B|.
    The field is treated as periodic.
    """
    height, width = truth.shape[-2:]
    gain = 2.0 * transfer_function((height, width), params, device=truth.device).imag.abs()
    spectrum = torch.fft.fft2(truth - truth.mean())
    signal = gain**2 * spectrum.abs() ** 2
    kept = signal / (signal + noise_sigma**2 * height * width)
    return torch.fft.ifft2(spectrum * kept).real


def harmonic_free_correlation(
    phase: torch.Tensor, truth: torch.Tensor, degree: int = 3, *, crop: bool = True
) -> float:
    """Phase correlation after removing the harmonic part of the error.

    Inside a window of a larger field, a harmonic phase (lap phi = 0: offsets,
    ramps, saddles ...) leaves the TIE contrast -(lambda dz / 2 pi) lap phi
    unchanged, so a cropped (non-periodic) image does not determine it: it is
    set by the magnetisation outside the window.  The error ``phase`` - ``truth``
    [H, W] (rad) is fitted with the harmonic polynomials Re, Im (x + i y)^n,
    n <= ``degree``, on the [N/16 : -N/16] crop (unless ``crop`` is False), the
    fit is subtracted and :func:`correlation` is returned.
    """
    if crop:
        height, width = phase.shape[-2:]
        cy, cx = height // 16, width // 16
        phase = phase[..., cy : height - cy, cx : width - cx]
        truth = truth[..., cy : height - cy, cx : width - cx]
    height, width = phase.shape[-2:]
    y, x = torch.meshgrid(
        torch.linspace(-1.0, 1.0, height, dtype=torch.float64),
        torch.linspace(-1.0, 1.0, width, dtype=torch.float64),
        indexing="ij",
    )
    z = torch.complex(x, y)
    basis = [torch.ones_like(x)]
    for n in range(1, degree + 1):
        basis += [(z**n).real, (z**n).imag]
    design = torch.stack([b.flatten() for b in basis], dim=1)
    error = (phase.double() - truth.double()).flatten()[:, None]
    coefficients = torch.linalg.lstsq(design, error).solution
    corrected = phase.double().flatten() - (design @ coefficients)[:, 0]
    return correlation(corrected.reshape(height, width), truth.double(), crop=False)
