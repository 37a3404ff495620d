"""Camera-side bridge: the wire protocol, its transport and frame sources.

Needs only numpy, pyzmq and msgpack; never imports torch, Qt or lorentz_live.
The protocol is specified in docs/protocol.md.

Example
-------
Receive the newest frame from a running ``lorentz-bridge``::

    from acquisition_bridge import Subscriber

    with Subscriber("tcp://127.0.0.1:5555") as subscriber:
        message = subscriber.recv_frame(timeout_s=5.0)
        if message is not None:
            image, defocus_nm = message.pixels, message.header["defocus_nm"]
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from acquisition_bridge.keys import MICROSCOPE_KEYS

if TYPE_CHECKING:
    from acquisition_bridge.protocol import (
        PROTOCOL_VERSION,
        Frame,
        Limits,
        Message,
        ProtocolError,
        decode,
        encode_control,
        encode_frame,
    )
    from acquisition_bridge.sources import EndOfSource, MemorySource, Source, SourceError
    from acquisition_bridge.transport import (
        Publisher,
        PublisherStats,
        Subscriber,
        SubscriberStats,
    )

# Loaded on first use, so that ``acquisition_bridge.keys`` (shared with the
# engine) imports neither zmq nor msgpack.
_LAZY = {
    "PROTOCOL_VERSION": "protocol",
    "Frame": "protocol",
    "Limits": "protocol",
    "Message": "protocol",
    "ProtocolError": "protocol",
    "decode": "protocol",
    "encode_control": "protocol",
    "encode_frame": "protocol",
    "EndOfSource": "sources",
    "MemorySource": "sources",
    "Source": "sources",
    "SourceError": "sources",
    "Publisher": "transport",
    "PublisherStats": "transport",
    "Subscriber": "transport",
    "SubscriberStats": "transport",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"acquisition_bridge.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'acquisition_bridge' has no attribute {name!r}")


__all__ = [
    "MICROSCOPE_KEYS",
    "PROTOCOL_VERSION",
    "EndOfSource",
    "Frame",
    "Limits",
    "MemorySource",
    "Message",
    "ProtocolError",
    "Publisher",
    "PublisherStats",
    "Source",
    "SourceError",
    "Subscriber",
    "SubscriberStats",
    "decode",
    "encode_control",
    "encode_frame",
]
