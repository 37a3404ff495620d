"""Fixtures for bridge tests: a private ZeroMQ context, metadata, bridge processes.

Sockets bind to random ports on 127.0.0.1 (or ipc paths in tmp), linger 0, and
the context is destroyed after each test, so nothing outlives a test or hangs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from acquisition_bridge.keys import MICROSCOPE_KEYS
from acquisition_bridge.protocol import Message
from acquisition_bridge.transport import Subscriber

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    """A private context; every socket still open at the end is closed with linger 0."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def raw_push(context: zmq.Context) -> Iterator[tuple[zmq.Socket, str]]:
    """A bare PUSH socket on a random loopback port, for hand-made (hostile) messages."""
    socket = context.socket(zmq.PUSH)
    socket.linger = 0
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield socket, f"tcp://127.0.0.1:{port}"
    socket.close(linger=0)


#: Microscope metadata as a camera bridge would send it (every key; aperture: none).
CAMERA_MICROSCOPE: dict[str, Any] = {
    "kv": 300.0,
    "pixel_size_nm": 2.5,
    "defocus_nm": -8.0e5,
    "cs_nm": 1.2e6,
    "theta_c_rad": 2e-5,
    "defocus_spread_nm": 60.0,
    "astigmatism_nm": 15.0,
    "astigmatism_angle_rad": 0.3,
    "aperture_per_nm": None,
}


@pytest.fixture
def meta() -> dict[str, Any]:
    """A fresh copy of :data:`CAMERA_MICROSCOPE` (tests may change it)."""
    values = dict(CAMERA_MICROSCOPE)
    assert set(values) == set(MICROSCOPE_KEYS)
    return values


def wait_connected(subscriber: Subscriber, publisher: Any, timeout_s: float = 5.0) -> None:
    """Send heartbeats until the subscriber has seen one (PUB/SUB joins late)."""
    deadline = time.monotonic() + timeout_s
    while not subscriber.wait_for_publisher(0.02):
        publisher.heartbeat()
        assert time.monotonic() < deadline, "subscriber never connected"


def drain(subscriber: Subscriber, timeout_s: float = 1.0) -> list[Message]:
    """Every message until none arrives for ``timeout_s``."""
    messages = []
    while (message := subscriber.recv(timeout_s)) is not None:
        messages.append(message)
    return messages


def ramp(shape: tuple[int, int], dtype: str) -> np.ndarray:
    """A distinct value in every pixel (wrapping for small types)."""
    return (np.arange(shape[0] * shape[1]) % 251).reshape(shape).astype(dtype)


class BridgeProcess:
    """``python -m acquisition_bridge ARGS`` as a child process; stops it on exit."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "acquisition_bridge", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)

    def stop(self) -> tuple[int, str]:
        """SIGTERM (a clean end of stream), then the exit code and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.wait()

    def wait(self, timeout_s: float = 10.0) -> tuple[int, str]:
        """Wait for the process to exit by itself; its exit code and stderr."""
        _, err = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, err

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            _, err = self.process.communicate()
            raise AssertionError(f"bridge exited with {self.process.returncode}: {err}")


@pytest.fixture
def bridge_process() -> Iterator[Any]:
    """Factory of :class:`BridgeProcess`; every one started is killed at teardown."""
    started: list[BridgeProcess] = []

    def start(args: list[str]) -> BridgeProcess:
        process = BridgeProcess(args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
