"""SIPRAD: single-image phase retrieval by a deep image prior through the LTEM forward model.

Pure compute (torch only): frames and state in, results and state out.
"""

from lorentz_live.siprad.amplitude import (
    AmplitudeMap,
    dual_valued,
    electrostatic_from_amplitude,
    threshold_amplitude,
)
from lorentz_live.siprad.config import SipradConfig
from lorentz_live.siprad.models import ModelState
from lorentz_live.siprad.network import DeepImagePrior, NetworkConfig, parameter_count
from lorentz_live.siprad.noise import NoiseEstimate, estimate_noise
from lorentz_live.siprad.reconstructor import (
    SipradReconstructor,
    SipradResult,
    SipradState,
    optimise,
    reconstruct,
    validate_image,
)
from lorentz_live.siprad.stopping import (
    AnyOf,
    Deadline,
    Discrepancy,
    HeldOut,
    Plateau,
    StopRule,
)

__all__ = [
    "AmplitudeMap",
    "AnyOf",
    "Deadline",
    "DeepImagePrior",
    "Discrepancy",
    "HeldOut",
    "ModelState",
    "NetworkConfig",
    "NoiseEstimate",
    "Plateau",
    "SipradConfig",
    "SipradReconstructor",
    "SipradResult",
    "SipradState",
    "StopRule",
    "dual_valued",
    "electrostatic_from_amplitude",
    "estimate_noise",
    "optimise",
    "parameter_count",
    "reconstruct",
    "threshold_amplitude",
    "validate_image",
]
