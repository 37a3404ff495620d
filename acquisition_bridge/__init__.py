"""Camera-side bridge: the wire protocol, its transport and frame sources.

Needs only numpy, pyzmq and msgpack; never imports torch, Qt or lorentz_live.
"""

from acquisition_bridge.keys import MICROSCOPE_KEYS

__all__ = ["MICROSCOPE_KEYS"]
