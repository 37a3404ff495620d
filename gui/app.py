"""``lorentz-live gui``: build the viewer for three endpoints and run the Qt event loop.

``--screenshot FILE.png --exit-after S`` saves the window after S seconds and
exits (works under ``QT_QPA_PLATFORM=offscreen``: tests, docs, headless checks).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lorentz_live.demo import display_available as has_display
from lorentz_live.errors import InputError

#: Seconds before the screenshot when ``--screenshot`` is given without ``--exit-after``.
DEFAULT_SCREENSHOT_S = 5.0


def build_window(
    source: str | None,
    results: str | None,
    control: str | None,
    *,
    control_curve_key: bytes | None = None,
):
    """The main window with the 3D panel on these endpoints (needs a QApplication)."""
    from gui import tomo_panel
    from gui.streams import StreamReceiver
    from gui.window import MainWindow
    from lorentz_live.live.control import ControlClient

    receiver = StreamReceiver(source, results)
    client = ControlClient(control, curve_server_key=control_curve_key) if control else None
    window = MainWindow(receiver, client)
    tomo_panel.install(window)
    return window


def run_viewer(args: argparse.Namespace) -> int:
    """Open the viewer for ``args`` (source, results, control, screenshot, exit_after)."""
    if args.exit_after is not None and not args.exit_after > 0:
        raise InputError(f"--exit-after must be > 0 s, got {args.exit_after:g}")
    if args.screenshot and Path(args.screenshot).suffix.lower() != ".png":
        raise InputError(f"--screenshot must name a .png file, got {args.screenshot}")
    if args.screenshot and not Path(args.screenshot).resolve().parent.is_dir():
        raise InputError(f"--screenshot folder does not exist: {Path(args.screenshot).parent}")
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM") and not has_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if not has_display():
        raise InputError(
            "no display (DISPLAY / WAYLAND_DISPLAY unset); use --screenshot FILE.png "
            "--exit-after S, or set QT_QPA_PLATFORM=offscreen"
        )
    key = None
    if args.control_curve_key:
        import zmq.auth

        try:
            key, _ = zmq.auth.load_certificate(args.control_curve_key)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read CURVE key {args.control_curve_key}: {exc}") from None

    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["lorentz-live"])
    window = build_window(args.source, args.results, args.control, control_curve_key=key)
    window.show()
    delay = args.exit_after
    if args.screenshot and delay is None:
        delay = DEFAULT_SCREENSHOT_S

    def finish() -> None:
        if args.screenshot:
            window.grab().save(str(args.screenshot))
            print(f"wrote {args.screenshot}", flush=True)
        window.close()

    if delay is not None:
        QtCore.QTimer.singleShot(round(delay * 1000), finish)
    try:
        app.exec()
    finally:
        window.shutdown()
        window.deleteLater()
        app.processEvents()
    return 0
