"""ZeroMQ endpoints: checked before any socket is made, with the network exposure named.

Every bind in the project defaults to loopback; :func:`warn_if_exposed` logs a
warning for an endpoint other hosts can reach (docs/protocol.md, "Threat model").
"""

from __future__ import annotations

import ipaddress
import logging
import re

log = logging.getLogger("acquisition_bridge")

_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):(\d{1,5}|\*)$")


class EndpointError(ValueError):
    """An endpoint string ZeroMQ would not accept; the message names it."""


def check_endpoint(endpoint: str, *, what: str = "endpoint") -> str:
    """Return ``endpoint`` if it is ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME``.

    Raises :class:`EndpointError` otherwise (port 0-65535 or ``*``; 0 and ``*`` pick a free one).
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise EndpointError(f"{what} is empty")
    transport, separator, rest = endpoint.partition("://")
    if not separator or transport not in ("tcp", "ipc", "inproc"):
        raise EndpointError(
            f"{what} {endpoint!r} is not an endpoint: expected tcp://HOST:PORT, "
            "ipc://PATH or inproc://NAME"
        )
    if transport != "tcp":
        if not rest:
            raise EndpointError(f"{what} {endpoint!r} has no path or name")
        return endpoint
    match = _TCP.match(endpoint)
    if match is None or (match.group(2) != "*" and not 0 <= int(match.group(2)) <= 65535):
        raise EndpointError(f"{what} {endpoint!r}: expected tcp://HOST:PORT with PORT 0-65535 or *")
    return endpoint


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// endpoints on a loopback address."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name
        return False


def warn_if_exposed(endpoint: str, *, encrypted: bool, what: str = "frames") -> bool:
    """Log a warning if a bound ``endpoint`` is reachable from the network; True if it is."""
    if is_loopback(endpoint):
        return False
    log.warning(
        "%s is reachable from the network%s",
        endpoint,
        "" if encrypted else f"; {what} travel unencrypted and anyone who can connect gets them",
    )
    return True
