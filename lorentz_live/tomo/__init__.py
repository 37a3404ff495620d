"""3D magnetic reconstruction from tilt series: projector, conventional VFET, MagNet.

Pure torch; conventions in docs/conventions.md ("Tomography").  Modules:
``projector`` (tilt projection and its adjoint, phase of a tilt), ``fields``
(B from M, divergence, NRMSE), ``vfet`` (direct Fourier reconstruction, B_z),
``textures`` (the training library), ``dataset``, ``unet``, ``magnet``
(inference), ``refine`` (data consistency), ``train``, ``reconstruct``.
"""

from lorentz_live.tomo.fields import induction_from_magnetisation, nrmse
from lorentz_live.tomo.magnet import load_model, magnet
from lorentz_live.tomo.projector import backproject, project, tilt_phase
from lorentz_live.tomo.reconstruct import TomoResult, reconstruct_tilt_series
from lorentz_live.tomo.vfet import vfet

__all__ = [
    "TomoResult",
    "backproject",
    "induction_from_magnetisation",
    "load_model",
    "magnet",
    "nrmse",
    "project",
    "reconstruct_tilt_series",
    "tilt_phase",
    "vfet",
]
