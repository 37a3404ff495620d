"""Live reconstruction: SIPRAD per frame, warm-started from the previous frame.

``engine`` is pure compute (frames in, results out, no sockets); ``runner`` joins
it to the bridge's subscriber and the results stream.
"""

from lorentz_live.live.engine import Frame, LiveConfig, LiveEngine, LiveResult

__all__ = ["Frame", "LiveConfig", "LiveEngine", "LiveResult"]
