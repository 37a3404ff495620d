"""SIPRAD: single-image phase retrieval by a deep image prior through the LTEM forward model.

Pure compute (torch only): frames and state in, results and state out.
"""

from lorentz_live.siprad.amplitude import (
    AmplitudeMap,
    dual_valued,
    electrostatic_from_amplitude,
    threshold_amplitude,
)
from lorentz_live.siprad.network import DeepImagePrior, NetworkConfig, parameter_count
from lorentz_live.siprad.noise import NoiseEstimate, estimate_noise
from lorentz_live.siprad.reconstructor import (
    SipradConfig,
    SipradReconstructor,
    SipradResult,
    SipradState,
    reconstruct,
    validate_image,
    wiener_contrast,
)

__all__ = [
    "AmplitudeMap",
    "DeepImagePrior",
    "NetworkConfig",
    "NoiseEstimate",
    "SipradConfig",
    "SipradReconstructor",
    "SipradResult",
    "SipradState",
    "dual_valued",
    "electrostatic_from_amplitude",
    "estimate_noise",
    "parameter_count",
    "reconstruct",
    "threshold_amplitude",
    "validate_image",
    "wiener_contrast",
]
