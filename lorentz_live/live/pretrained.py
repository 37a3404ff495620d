"""Pre-trained SIPRAD weights kept per (image shape, microscope, settings).

A SIPRAD cold start first fits the DIP to reproduce its own input (the
frame's Wiener-SITIE phase in units of its std).  The live loop pre-trains
once per key and keeps the weights (and Adam's state) in memory and on disk,
so a later cold start, in this session or the next, skips pre-training.  The
pre-trained DIP fits its own frame rather than being a general identity map:
from another frame's weights the fit starts farther from the answer
(docs/benchmarks.md, "Live loop", cold start).

Key: a hash of the image shape, every :class:`MicroscopeParams` field, the
settings that shape the pre-training (network, iterations, rate, input noise,
seed, boundary, padding, input filter) and the device type.  Files:
``<directory>/<key>.pt`` written atomically; a file that cannot be read is a
miss (and is overwritten).  The default directory is ``$LORENTZ_LIVE_CACHE``
or ``$XDG_CACHE_HOME/lorentz-live/pretrained`` (``~/.cache/...``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

from lorentz_live.physics import MicroscopeParams
from lorentz_live.siprad import ModelState, NetworkConfig, SipradConfig

log = logging.getLogger("lorentz_live.live")

#: bump when the meaning of cached weights changes (network code, pre-training loss)
CACHE_VERSION = 1
#: entries kept in memory
MEMORY_ENTRIES = 8


def default_cache_dir() -> Path:
    """``$LORENTZ_LIVE_CACHE``, else ``$XDG_CACHE_HOME`` (or ~/.cache) / lorentz-live/pretrained."""
    explicit = os.environ.get("LORENTZ_LIVE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lorentz-live" / "pretrained"


def pretrained_key(
    shape: tuple[int, int], params: MicroscopeParams, config: SipradConfig, device: str
) -> str:
    """Hex digest naming the pre-trained weights of one (shape, microscope, settings)."""
    settings = {
        "version": CACHE_VERSION,
        "shape": [int(shape[0]), int(shape[1])],
        "params": params.to_dict(),
        "network": dataclasses.asdict(config.network),
        "pretrain_iterations": config.pretrain_iterations,
        "learning_rate": config.learning_rate,
        "input_noise": config.input_noise,
        "seed": config.seed,
        "boundary": config.boundary,
        "pad_fraction": config.pad_fraction,
        "input_filter": config.input_filter,
        "device": torch.device(device).type,
    }
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PretrainedCache:
    """Pre-trained phase-DIP states by key: memory first, then ``directory``.

    directory : where the ``.pt`` files live (``None``: memory only).
    ``hits`` / ``misses`` count :meth:`get` outcomes.
    """

    def __init__(self, directory: Path | str | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._memory: OrderedDict[str, ModelState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path | None:
        """The file of ``key`` (``None`` without a directory)."""
        return None if self.directory is None else self.directory / f"{key}.pt"

    def get(self, key: str) -> ModelState | None:
        """The state stored under ``key``, or None."""
        state = self._memory.get(key)
        if state is None:
            state = self._load(key)
            if state is not None:
                self._remember(key, state)
        if state is None:
            self.misses += 1
        else:
            self.hits += 1
            self._memory.move_to_end(key)
        return state

    def any_compatible(self, network: NetworkConfig) -> ModelState | None:
        """The newest stored state of a DIP with architecture ``network``, whatever
        its key (another shape or microscope), or None.

        The DIP is fully convolutional, so weights pre-trained under other
        conditions start a fit as weights from another sample do.  Memory
        first, then the newest ``MEMORY_ENTRIES`` files of the directory.
        """
        for state in reversed(self._memory.values()):
            if state.config == network:
                return state
        if self.directory is None or not self.directory.is_dir():
            return None
        try:
            files = sorted(
                self.directory.glob("*.pt"), key=lambda f: f.stat().st_mtime, reverse=True
            )
        except OSError:
            return None
        for path in files[:MEMORY_ENTRIES]:
            loaded = self._load(path.stem)
            if loaded is not None and loaded.config == network:
                return loaded
        return None

    def put(self, key: str, state: ModelState) -> None:
        """Store ``state`` under ``key`` (memory, and disk when there is a directory)."""
        self._remember(key, state)
        path = self.path(key)
        if path is None:
            return
        payload = {
            "network": state.network,
            "optimiser": state.optimiser,
            "config": dataclasses.asdict(state.config),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(handle)
            torch.save(payload, tmp)
            os.replace(tmp, path)
        except OSError as error:  # a read-only or full disk costs speed, not results
            log.warning("could not cache pre-trained weights in %s: %s", path.parent, error)

    def _remember(self, key: str, state: ModelState) -> None:
        self._memory[key] = state
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

    def _load(self, key: str) -> ModelState | None:
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return ModelState(
                payload["network"], payload["optimiser"], NetworkConfig(**payload["config"])
            )
        except Exception as error:
            log.warning("ignoring unreadable pre-trained weights %s: %s", path, error)
            return None


__all__ = ["PretrainedCache", "default_cache_dir", "pretrained_key"]
