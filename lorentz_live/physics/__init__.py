"""LTEM physics: pure, differentiable, device-agnostic torch functions.

Conventions (exact; docs/conventions.md is the reference and tests pin them):

* Arrays are [y, x]: x along axis 1, y along axis 0, both increasing with index.
  Leading dimensions are batch dimensions.  float32 / complex64 by default.
* Exit wave psi = a e^{i phi}, phi = phi_e + phi_m in rad, a dimensionless.
* Forward FFT is the standard e^{-2 pi i k.r} (``torch.fft.fft2``); spatial
  frequencies k in cycles per length; d/dx <-> 2 pi i k_x.
* chi(k) = pi lambda dz |k|^2 + (pi/2) Cs lambda^3 |k|^4 (+ two-fold astigmatism),
  and T = A e^{-i chi} e^{-g} multiplies FFT(psi).  Negative defocus = underfocus.
  A weak phase then images as I/I0 = 1 - (lambda dz / 2 pi) lap phi.
* (B_x, B_y) = (Phi_0 / pi) (-d phi_m / dy, d phi_m / dx), integrated along the
  beam, in T nm.
* SI inside; the public API takes lengths in nm where the name says ``_nm``.
"""

from lorentz_live.physics.constants import FLUX_QUANTUM_WB, MU0_H_PER_M
from lorentz_live.physics.filters import gaussian_filter, mirror_pad
from lorentz_live.physics.forward import exit_wave, forward_image, image_from_wave, simulate_image
from lorentz_live.physics.induction import (
    colour_wheel_legend,
    colour_wheel_rgb,
    integrated_induction,
)
from lorentz_live.physics.magnetic_phase import film_magnetic_phase, magnetic_phase_from_moment
from lorentz_live.physics.microscope import (
    MicroscopeParams,
    electron_wavelength_m,
    interaction_constant_rad_per_v_m,
)
from lorentz_live.physics.sample import (
    Material,
    Specimen,
    amplitude_from_thickness,
    contaminant_thickness,
    electrostatic_phase,
    specimen_from_magnetisation,
)
from lorentz_live.physics.spectra import (
    gaussian_half_transfer,
    noise_limited_cutoff,
    radial_mean,
    resolution_sigma_px,
    ring_index,
    sigma_for_cutoff,
    wiener_contrast,
    wiener_gain,
)
from lorentz_live.physics.textures import (
    BLOCH_CCW,
    BLOCH_CW,
    NEEL_IN,
    NEEL_OUT,
    Bubble,
    bubble_texture,
    hexagonal_lattice,
    stripe_domains,
)
from lorentz_live.physics.tie import sitie_phase, tie_phase
from lorentz_live.physics.transfer import damping_envelope_g, phase_transfer_chi, transfer_function

__all__ = [
    "BLOCH_CCW",
    "BLOCH_CW",
    "FLUX_QUANTUM_WB",
    "MU0_H_PER_M",
    "NEEL_IN",
    "NEEL_OUT",
    "Bubble",
    "Material",
    "MicroscopeParams",
    "Specimen",
    "amplitude_from_thickness",
    "bubble_texture",
    "colour_wheel_legend",
    "colour_wheel_rgb",
    "contaminant_thickness",
    "damping_envelope_g",
    "electron_wavelength_m",
    "electrostatic_phase",
    "exit_wave",
    "film_magnetic_phase",
    "forward_image",
    "gaussian_filter",
    "gaussian_half_transfer",
    "hexagonal_lattice",
    "image_from_wave",
    "integrated_induction",
    "interaction_constant_rad_per_v_m",
    "magnetic_phase_from_moment",
    "mirror_pad",
    "noise_limited_cutoff",
    "phase_transfer_chi",
    "radial_mean",
    "resolution_sigma_px",
    "ring_index",
    "sigma_for_cutoff",
    "simulate_image",
    "sitie_phase",
    "specimen_from_magnetisation",
    "stripe_domains",
    "tie_phase",
    "transfer_function",
    "wiener_contrast",
    "wiener_gain",
]
