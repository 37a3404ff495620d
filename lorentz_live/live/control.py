"""The engine's control socket: operator commands (viewer, scripts), applied between frames.

``lorentz-live run --control tcp://127.0.0.1:5557`` binds a ZeroMQ ``ROUTER``;
clients connect a ``REQ`` or ``DEALER`` and send one msgpack map per request
(docs/protocol.md, "Control socket").  A :class:`ControlServer` thread
receives, validates and answers at once; valid commands wait in an
:class:`EngineControl` until the live loop calls :meth:`EngineControl.prepare`
before its next frame, so the engine never waits for a client and a client
never waits for a reconstruction.  A malformed or unknown request gets an
error reply and changes nothing.

Commands (``"command"`` key; every other key is an argument):

========================  ====================================================
``status``                the current settings and counters
``set_params``            ``params``: microscope keys that override every
                          frame's header (e.g. ``{"defocus_nm": -8e5}``); the
                          forward model changes, so the engine restarts cold
``clear_params``          ``keys`` (optional): drop overrides (all by default)
``set_budget``            ``time_budget_s`` (s, or nil = none),
                          ``warm_iterations``, ``cold_iterations``; warm state kept
``reset``                 next frame starts cold (reason "operator request")
``set_roi``               ``roi``: ``[y0, x0, height, width]`` px of the camera
                          frame to reconstruct, or nil for the whole frame;
                          the shape changes, so the engine restarts cold
``set_sample``            SIPRAD's sample model: ``amplitude`` (mode),
                          ``mean_inner_potential_v`` (V), ``absorption_length_nm``,
                          ``island_thickness_nm`` (nm or nil); the forward
                          model changes, so the engine restarts cold
========================  ====================================================
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgpack
import zmq

from acquisition_bridge.keys import MICROSCOPE_KEYS
from lorentz_live.errors import InputError
from lorentz_live.physics import MicroscopeParams
from lorentz_live.siprad.config import AMPLITUDE_MODES, SipradConfig

log = logging.getLogger("lorentz_live.live.control")

#: Largest request accepted (ZMQ_MAXMSGSIZE): libzmq drops the connection of a bigger one.
MAX_REQUEST_BYTES = 64 * 1024
#: Smallest side of a region of interest, px.
MIN_ROI_PX = 16
COMMANDS = (
    "status",
    "set_params",
    "clear_params",
    "set_budget",
    "reset",
    "set_roi",
    "set_sample",
)
#: ``set_sample`` arguments that are material constants (> 0; nm or V as named).
SAMPLE_NUMBERS = ("mean_inner_potential_v", "absorption_length_nm")


class ControlError(ValueError):
    """A request that cannot be applied; its message is the reply's ``error``."""


def _number(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ControlError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ControlError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def parse_request(request: Any) -> tuple[str, dict[str, Any]]:
    """(command, checked arguments) of a decoded request; :class:`ControlError` if invalid."""
    if not isinstance(request, dict):
        raise ControlError(f"a request is a msgpack map, got {type(request).__name__}")
    command = request.get("command")
    if command not in COMMANDS:
        raise ControlError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    given = {k: v for k, v in request.items() if k not in ("command", "id")}
    allowed = {
        "status": set(),
        "set_params": {"params"},
        "clear_params": {"keys"},
        "set_budget": {"time_budget_s", "warm_iterations", "cold_iterations"},
        "reset": {"reason"},
        "set_roi": {"roi"},
        "set_sample": {"amplitude", "island_thickness_nm", *SAMPLE_NUMBERS},
    }[command]
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ControlError(
            f"{command}: unknown argument {unknown[0]!r}; allowed: {sorted(allowed)}"
        )
    return command, _CHECKS[command](given)


def _check_params(given: dict[str, Any]) -> dict[str, Any]:
    params = given.get("params")
    if not isinstance(params, dict) or not params:
        raise ControlError("set_params needs params: a non-empty map of microscope keys")
    for key, value in params.items():
        if key not in MICROSCOPE_KEYS:
            raise ControlError(f"set_params: {key!r} is not a microscope key")
        _number(key, value, allow_none=key == "aperture_per_nm")
    try:  # the checks of a frame header: a value no frame could carry is refused here
        MicroscopeParams.from_mapping({**MicroscopeParams().to_dict(), **params})
    except InputError as error:
        raise ControlError(f"set_params: {error}") from None
    return {"params": dict(params)}


def _check_clear(given: dict[str, Any]) -> dict[str, Any]:
    keys = given.get("keys")
    if keys is not None and (
        not isinstance(keys, list) or not all(k in MICROSCOPE_KEYS for k in keys)
    ):
        raise ControlError(f"clear_params: keys must be a list of microscope keys, got {keys!r}")
    return {"keys": keys}


def _check_budget(given: dict[str, Any]) -> dict[str, Any]:
    if not given:
        raise ControlError("set_budget needs time_budget_s, warm_iterations or cold_iterations")
    checked: dict[str, Any] = {}
    if "time_budget_s" in given:
        budget = _number("time_budget_s", given["time_budget_s"], allow_none=True)
        if budget is not None and budget <= 0:
            raise ControlError(f"time_budget_s must be > 0 s or nil, got {budget:g}")
        checked["time_budget_s"] = budget
    for name in ("warm_iterations", "cold_iterations"):
        if name in given:
            checked[name] = _count(name, given[name])
    return checked


def _check_reset(given: dict[str, Any]) -> dict[str, Any]:
    reason = given.get("reason", "operator request")
    if not isinstance(reason, str) or len(reason) > 200:
        raise ControlError("reset: reason must be a string of at most 200 characters")
    return {"reason": reason}


def _check_roi(given: dict[str, Any]) -> dict[str, Any]:
    roi = given.get("roi", "missing")
    if roi is None:
        return {"roi": None}
    if (
        not isinstance(roi, list)
        or len(roi) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
    ):
        raise ControlError(
            f"set_roi: roi must be [y0, x0, height, width] in px or nil, got {roi!r}"
        )
    y0, x0, height, width = roi
    if y0 < 0 or x0 < 0 or height < MIN_ROI_PX or width < MIN_ROI_PX:
        raise ControlError(
            f"set_roi: need y0, x0 >= 0 and height, width >= {MIN_ROI_PX} px, got {roi}"
        )
    return {"roi": roi}


def _check_sample(given: dict[str, Any]) -> dict[str, Any]:
    if not given:
        raise ControlError(
            "set_sample needs amplitude, mean_inner_potential_v, absorption_length_nm "
            "or island_thickness_nm"
        )
    checked: dict[str, Any] = {}
    if "amplitude" in given:
        if given["amplitude"] not in AMPLITUDE_MODES:
            raise ControlError(
                f"set_sample: amplitude must be one of {AMPLITUDE_MODES}, "
                f"got {given['amplitude']!r}"
            )
        checked["amplitude"] = given["amplitude"]
    for name in SAMPLE_NUMBERS:
        if name in given:
            value = _number(name, given[name])
            if value is None or value <= 0:
                raise ControlError(f"set_sample: {name} must be > 0, got {value!r}")
            checked[name] = value
    if "island_thickness_nm" in given:
        value = _number("island_thickness_nm", given["island_thickness_nm"], allow_none=True)
        if value is not None and value <= 0:
            raise ControlError(f"set_sample: island_thickness_nm must be > 0 or nil, got {value!r}")
        checked["island_thickness_nm"] = value
    return checked


_CHECKS = {
    "status": lambda given: {},
    "set_params": _check_params,
    "clear_params": _check_clear,
    "set_budget": _check_budget,
    "reset": _check_reset,
    "set_roi": _check_roi,
    "set_sample": _check_sample,
}


class EngineControl:
    """The settings the operator changed, shared by the server thread and the live loop.

    :meth:`submit` (server thread) validates and queues; :meth:`prepare` (live
    loop, between frames) applies what is queued to the engine and adjusts the
    next frame (parameter overrides, region of interest).
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.param_overrides: dict[str, Any] = {}
        self.roi: list[int] | None = None
        self.applied = 0
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def submit(self, request: Any) -> dict[str, Any]:
        """Validate and queue one request; the reply (``ok`` False with ``error`` if refused)."""
        ident = request.get("id") if isinstance(request, dict) else None
        try:
            command, args = parse_request(request)
        except ControlError as error:
            return {"ok": False, "id": ident, "error": str(error)}
        if command != "status":
            with self._lock:
                self._queue.append((command, args))
        reply = {"ok": True, "id": ident, "command": command, "state": self.state()}
        if command != "status":
            reply["applies"] = "before the next frame"
        return reply

    def state(self) -> dict[str, Any]:
        """Settings and counters (any thread)."""
        engine = self.engine
        config = engine.config
        with self._lock:
            pending = [command for command, _ in self._queue]
            overrides, roi = dict(self.param_overrides), self.roi
        return {
            "param_overrides": overrides,
            "roi": roi,
            "time_budget_s": config.time_budget_s,
            "warm_iterations": config.warm_max_iterations,
            "cold_iterations": config.siprad.max_iterations,
            "sample": sample_state(config.siprad),
            "device": config.device,
            "frames_done": engine.frames_done,
            "cold_starts": engine.cold_starts,
            "bad_frames": engine.bad_frames,
            "pending": pending,
            "applied": self.applied,
        }

    def apply_pending(self) -> list[str]:
        """Apply queued commands to the engine (live-loop thread, between frames)."""
        with self._lock:
            queue, self._queue = self._queue, []
        for command, args in queue:
            self._apply(command, args)
        return [command for command, _ in queue]

    def _apply(self, command: str, args: dict[str, Any]) -> None:
        engine = self.engine
        if command == "set_params":
            with self._lock:
                self.param_overrides.update(args["params"])
        elif command == "clear_params":
            with self._lock:
                for key in args["keys"] or list(self.param_overrides):
                    self.param_overrides.pop(key, None)
        elif command == "set_budget":
            changes: dict[str, Any] = {}
            if "time_budget_s" in args:
                changes["time_budget_s"] = args["time_budget_s"]
            if "warm_iterations" in args:
                changes["warm_max_iterations"] = args["warm_iterations"]
            if "cold_iterations" in args:
                changes["siprad"] = engine.config.siprad.replace(
                    max_iterations=args["cold_iterations"]
                )
            engine.reconfigure(**changes)
        elif command == "reset":
            engine.request_cold_restart(args["reason"])
        elif command == "set_roi":
            with self._lock:
                self.roi = args["roi"]
        elif command == "set_sample":
            engine.reconfigure(siprad=sample_config(engine.config.siprad, args))
            engine.request_cold_restart("sample changed")
        self.applied += 1
        log.info("control: applied %s %s", command, args)

    def prepare(self, frame: Any) -> Any:
        """Apply queued commands, then the frame as the engine should see it.

        ``frame`` is the engine's frame dataclass (``image``, ``params``,
        ``metadata``); raises :class:`InputError` when the region of interest
        does not fit in it (the runner counts a bad frame).
        """
        self.apply_pending()
        with self._lock:
            overrides, roi = dict(self.param_overrides), self.roi
        changes: dict[str, Any] = {}
        if overrides:
            changes["params"] = frame.params.replace(**overrides)
        if roi is not None:
            y0, x0, height, width = roi
            image = frame.image
            if image.ndim != 2 or y0 + height > image.shape[0] or x0 + width > image.shape[1]:
                raise InputError(
                    f"frame {frame.seq}: region of interest {roi} does not fit a "
                    f"{tuple(image.shape)} frame"
                )
            changes["image"] = image[y0 : y0 + height, x0 : x0 + width]
            changes["metadata"] = {**frame.metadata, "roi": list(roi)}
        return dataclasses.replace(frame, **changes) if changes else frame


def sample_config(siprad: SipradConfig, args: Mapping[str, Any]) -> SipradConfig:
    """``siprad`` (a SipradConfig) with the checked ``set_sample`` arguments applied."""
    changes: dict[str, Any] = {}
    if "amplitude" in args:
        changes["amplitude"] = args["amplitude"]
    if "island_thickness_nm" in args:
        changes["island_thickness_nm"] = args["island_thickness_nm"]
    material = {k: args[k] for k in SAMPLE_NUMBERS if k in args}
    if material:
        changes["material"] = dataclasses.replace(siprad.material, **material)
    return siprad.replace(**changes)


def sample_state(siprad: SipradConfig) -> dict[str, Any]:
    """The sample model of ``siprad`` as ``set_sample`` keys (for ``state``)."""
    return {
        "amplitude": siprad.amplitude,
        "mean_inner_potential_v": siprad.material.mean_inner_potential_v,
        "absorption_length_nm": siprad.material.absorption_length_nm,
        "island_thickness_nm": siprad.island_thickness_nm,
    }


def _decode(parts: list[bytes]) -> Any:
    """The request map of a client message (after the routing id); ControlError if malformed."""
    if parts and parts[0] == b"":  # REQ clients put an empty delimiter first
        parts = parts[1:]
    if len(parts) != 1:
        raise ControlError(f"a request is one msgpack part, got {len(parts)} parts")
    try:
        return msgpack.unpackb(parts[0], raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise ControlError(f"malformed request: not msgpack ({type(error).__name__})") from None


class ControlServer:
    """A thread serving an :class:`EngineControl` on a ROUTER socket.

    bind : endpoint; a ``tcp://`` address that is not loopback needs
        ``curve_secret_key`` (Z85): the server then runs CurveZMQ and clients
        need its public key.  Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        bind: str,
        control: EngineControl,
        *,
        curve_secret_key: bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        from acquisition_bridge.cli import is_loopback

        if not is_loopback(bind) and curve_secret_key is None:
            raise InputError(
                f"control endpoint {bind} is reachable from the network: give a CURVE secret "
                "key (--control-curve-secret, from `lorentz-bridge keygen`) or bind to 127.0.0.1"
            )
        self.control = control
        self.replies = 0
        self.refused = 0
        socket = (context or zmq.Context.instance()).socket(zmq.ROUTER)
        socket.linger = 0
        socket.maxmsgsize = MAX_REQUEST_BYTES
        socket.sndtimeo = 0
        if curve_secret_key is not None:
            socket.curve_secretkey = curve_secret_key
            socket.curve_publickey = zmq.curve_public(curve_secret_key)
            socket.curve_server = True
        try:
            socket.bind(bind)
        except zmq.ZMQError:
            socket.close()
            raise
        self.address: str = socket.last_endpoint.decode()
        self._socket = socket
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        socket = self._socket
        try:
            while not self._stop.is_set():
                if not socket.poll(100, zmq.POLLIN):
                    continue
                routing, *parts = socket.recv_multipart()
                delimiter = [b""] if parts and parts[0] == b"" else []
                try:
                    reply = self.control.submit(_decode(parts))
                except ControlError as error:
                    reply = {"ok": False, "id": None, "error": str(error)}
                if not reply["ok"]:
                    self.refused += 1
                    log.warning("control: refused a request: %s", reply["error"])
                try:
                    socket.send_multipart([routing, *delimiter, msgpack.packb(reply)])
                    self.replies += 1
                except zmq.Again:  # the client is gone or not reading: never wait for it
                    pass
        finally:
            socket.close(linger=0)

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ControlClient:
    """A DEALER client of the control socket, usable without blocking (GUI timers).

    :meth:`send` queues a request and returns its id; :meth:`poll` returns the
    replies that arrived; :meth:`request` sends and waits (scripts, tests).
    """

    def __init__(
        self,
        address: str,
        *,
        curve_server_key: bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        socket.linger = 0
        socket.sndhwm = 16
        socket.sndtimeo = 0
        socket.maxmsgsize = 1 << 20
        if curve_server_key is not None:
            public, secret = zmq.curve_keypair()
            socket.curve_serverkey = curve_server_key
            socket.curve_publickey, socket.curve_secretkey = public, secret
        socket.connect(address)
        self.address = address
        self._socket = socket
        self._next_id = 0

    def send(self, command: str, **args: Any) -> int | None:
        """Queue a request; its id, or None if the send queue is full (server gone)."""
        self._next_id += 1
        request = {"command": command, "id": self._next_id, **args}
        try:
            self._socket.send_multipart([b"", msgpack.packb(request)])
        except zmq.Again:
            return None
        return self._next_id

    def poll(self, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """Replies received within ``timeout_s`` (0: what has arrived, never blocks)."""
        replies = []
        timeout_ms = round(timeout_s * 1000)
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            parts = self._socket.recv_multipart()
            try:
                reply = msgpack.unpackb(parts[-1], raw=False)
            except Exception:  # a broken reply is not ours to crash on
                continue
            if isinstance(reply, Mapping):
                replies.append(dict(reply))
            timeout_ms = 0
        return replies

    def request(self, command: str, timeout_s: float = 5.0, **args: Any) -> dict[str, Any] | None:
        """Send and wait for the matching reply; None after ``timeout_s``."""
        ident = self.send(command, **args)
        deadline = time.monotonic() + timeout_s
        while ident is not None and (remaining := deadline - time.monotonic()) > 0:
            for reply in self.poll(remaining):
                if reply.get("id") == ident:
                    return reply
        return None

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
