"""Non-magnetic exit-wave parts for SIPRAD: a dual-valued amplitude and its phi_e.

Surface contamination lowers the amplitude (absorption, a = exp(-t / xi0)) and
adds an electrostatic phase phi_e = sigma V0 t (SIPRAD eqs. 3 and 6).  From an
amplitude map the thickness is t = -xi0 ln a, hence

    phi_e = -sigma(kV) V0 xi0 ln a.

``threshold`` mode (paper Fig. 5): the image, lightly smoothed, is thresholded
at 3/4 of its intensity mode (or a user value, in units of the mean intensity);
pixels below it get the low amplitude sqrt(<I_below> / I_mode), all others 1.
The map is held fixed while phi_m is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lorentz_live.errors import InputError
from lorentz_live.physics import Material, gaussian_filter, interaction_constant_rad_per_v_m
from lorentz_live.physics.constants import NM

#: Threshold = this fraction of the intensity mode (paper Methods).
MODE_FRACTION = 0.75
#: Pre-smoothing of the image before thresholding, pixels (noise would speckle the mask).
THRESHOLD_SMOOTHING_PX = 2.0
#: Lowest amplitude allowed (keeps ln a finite).
MIN_AMPLITUDE = 0.02


@dataclass(frozen=True)
class AmplitudeMap:
    """A dual-valued amplitude and its electrostatic phase, arrays [H, W].

    amplitude : dimensionless, 1 on the clean film, ``low`` on contamination.
    phase_e : electrostatic phase, rad (0 on the clean film).
    mask : True where contaminated.
    threshold : the threshold used, in units of the mean intensity.
    low : the amplitude on contamination.
    """

    amplitude: torch.Tensor
    phase_e: torch.Tensor
    mask: torch.Tensor
    threshold: float
    low: float


def intensity_mode(image: torch.Tensor, bins: int = 256) -> float:
    """Most frequent value of ``image`` (histogram peak, bin centre)."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return low
    hist = torch.histc(image.float(), bins=bins, min=low, max=high)
    index = int(torch.argmax(hist))
    return low + (index + 0.5) * (high - low) / bins


def electrostatic_from_amplitude(
    amplitude: torch.Tensor, material: Material, kv: float
) -> torch.Tensor:
    """phi_e (rad) = -sigma V0 xi0 ln a for absorption-only amplitude ``a`` [..., H, W]."""
    thickness_nm = -material.absorption_length_nm * torch.log(amplitude.clamp_min(MIN_AMPLITUDE))
    return (
        interaction_constant_rad_per_v_m(kv) * material.mean_inner_potential_v * thickness_nm * NM
    )


def dual_valued(amplitude: torch.Tensor) -> torch.Tensor:
    """Project an amplitude map onto two values (paper Methods).

    High value = the mode, low value = the minimum, threshold = 3/4 of the mode;
    the result is divided by the mode so the clean film has amplitude 1.
    """
    mode = intensity_mode(amplitude)
    if mode <= 0:
        return torch.ones_like(amplitude)
    low = max(float(amplitude.min()) / mode, MIN_AMPLITUDE)
    return torch.where(amplitude < MODE_FRACTION * mode, low, 1.0).to(amplitude.dtype)


def threshold_amplitude(
    image: torch.Tensor,
    material: Material,
    kv: float,
    *,
    threshold: float | None = None,
) -> AmplitudeMap:
    """Dual-valued amplitude from thresholding the image (paper Fig. 5).

    Parameters
    ----------
    image : intensity [H, W], any positive scale (normalised by its mean here).
    material : contaminant constants (mean inner potential V0, absorption length xi0).
    kv : accelerating voltage, kV (sets the interaction constant).
    threshold : intensity below which a pixel is contaminated, in units of the mean
        intensity; ``None`` = 3/4 of the intensity mode of the smoothed image.
    """
    image = image / image.mean()
    smoothed = gaussian_filter(image, THRESHOLD_SMOOTHING_PX)
    mode = intensity_mode(smoothed)
    cut = MODE_FRACTION * mode if threshold is None else float(threshold)
    if not cut > 0:
        raise InputError(f"amplitude threshold must be > 0 (mean intensity = 1), got {cut:g}")
    mask = smoothed < cut
    if bool(mask.any()):
        low = float(smoothed[mask].mean() / mode) ** 0.5
        low = min(max(low, MIN_AMPLITUDE), 1.0)
    else:
        low = 1.0
    amplitude = torch.where(mask, low, 1.0).to(image.dtype)
    return AmplitudeMap(
        amplitude=amplitude,
        phase_e=electrostatic_from_amplitude(amplitude, material, kv),
        mask=mask,
        threshold=cut,
        low=low,
    )
