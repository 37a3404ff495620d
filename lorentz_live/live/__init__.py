"""Live reconstruction: every frame answered at once, SIPRAD refinement warm-started.

``interface`` is what methods implement; ``methods`` (Wiener-SITIE, warm SIPRAD)
and ``amortised`` (the online-trained network) implement it; ``engine`` turns
their estimates into results; ``pipeline`` runs the instant path inline and the
refinement in a thread; ``runner`` joins it to the bridge and the results stream.
"""

from lorentz_live.live.engine import LiveConfig, LiveEngine, LiveResult
from lorentz_live.live.interface import Estimate, LiveFrame, Reconstructor
from lorentz_live.live.pipeline import LivePipeline

__all__ = [
    "Estimate",
    "LiveConfig",
    "LiveEngine",
    "LiveFrame",
    "LivePipeline",
    "LiveResult",
    "Reconstructor",
]
