"""Operator display (PySide6 + pyqtgraph): the only package that imports Qt.

A pure client of three sockets, so it runs in its own process or on another
machine: the camera stream (``acquisition_bridge.transport.Subscriber``), the
engine's results stream (``acquisition_bridge.results.ResultSubscriber``) and
the engine's control socket (``lorentz_live.live.control.ControlClient``).

* ``gui.model``: histories, rates, stream states, defocus sign handling (no Qt);
* ``gui.streams``: the receiver thread (newest frame / result, display levels);
* ``gui.window``: the main window (passive view; hooks for more docks/actions);
* ``gui.app``: ``lorentz-live gui`` (``--screenshot FILE.png --exit-after S``).
"""
