"""The ``tomo`` block of results headers: tilt-series progress and written volumes.

``lorentz-live run --tomo-out DIR`` adds it to every published result so that
viewers can follow the capture and find the 3D result (docs/protocol.md,
section 10).  No sockets and no Qt: the runner asks :meth:`TomoStatus.header`
for the block when it publishes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Series and volumes listed in the block (the newest ones).
SERIES_LISTED = 4
VOLUMES_LISTED = 4


class TomoStatus:
    """What the ``tomo`` header block says.

    progress : returns per series id ``{"role", "tilts", "range_deg", "complete"}``
        (:meth:`lorentz_live.tomo.collect.TiltSeriesCollector.progress`).
    """

    def __init__(self, progress: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._volumes: collections.deque[dict[str, Any]] = collections.deque(maxlen=VOLUMES_LISTED)

    def written(self, path: Path, info: dict[str, Any]) -> None:
        """A volume was written (called from the reconstruction thread)."""
        keys = ("series_x", "series_y", "tilts_x", "tilts_y")
        entry = {
            "path": str(Path(path).resolve()),
            **{key: info[key] for key in keys if key in info},
            "voxel_size_nm": float(info.get("voxel_size_nm", float("nan"))),
        }
        with self._lock:
            self._volumes.append(entry)

    def header(self) -> dict[str, Any]:
        """``{"series": {id: {...}}, "volumes": [{"path", ...}]}``, newest last."""
        series = list(self._progress().items())[-SERIES_LISTED:]
        with self._lock:
            volumes = list(self._volumes)
        return {
            "series": {
                key: {
                    "role": info["role"],
                    "tilts": int(info["tilts"]),
                    "range_deg": list(info["range_deg"]) if info.get("range_deg") else None,
                    "complete": bool(info["complete"]),
                }
                for key, info in series
            },
            "volumes": volumes,
        }
