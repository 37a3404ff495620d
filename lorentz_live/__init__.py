"""lorentz-live engine: LTEM physics, SIPRAD reconstruction, live loop, recording.

The flat public API lives here; modules below are implementation.
"""

from lorentz_live.errors import InputError
from lorentz_live.physics import MicroscopeParams

__all__ = ["InputError", "MicroscopeParams"]
__version__ = "0.1.0"
