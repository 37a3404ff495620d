"""The operator's main window: a passive view of the receiver, the model and the control client.

Layout: three image panels in the centre (raw frame, phi_m, B), docks for the
controls, convergence, metadata and census plots, a status bar.  Other
features slot in without touching this file's internals:

* :meth:`MainWindow.add_panel` adds a dock (e.g. a 3D tomography panel);
* :attr:`MainWindow.toolbar` takes actions (e.g. a record button);
* the signals :attr:`MainWindow.frame_shown` / :attr:`MainWindow.result_shown`
  hand every displayed :class:`~gui.streams.RawView` / :class:`~gui.streams.ResultView`
  to such features, :attr:`MainWindow.result_received` every result taken
  (shown or filtered out by "maps shown").

The GUI thread only displays: receiving and the per-frame numbers (levels,
|B|, arrows) happen in :class:`gui.streams.StreamReceiver`'s thread; a timer
takes the newest of each stream.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gui.model import (
    DISPLAY_POINTS,
    SIGN_CONVENTIONS,
    Series,
    ViewerModel,
    census_summary,
    defocus_from_display,
    defocus_to_display,
    focus_words,
    length_label,
    nice_length_nm,
    raw_state,
)
from gui.streams import RawView, ResultView, StreamReceiver
from lorentz_live.live.control import ControlClient
from lorentz_live.physics import colour_wheel_legend
from lorentz_live.record import RecordError, SessionWriter

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, exitCleanup=False)

#: Display timer period, ms (the receiver keeps only the newest frame meanwhile).
DISPLAY_PERIOD_MS = 15
COLOUR_MAPS = ("grey", "viridis", "inferno", "cividis", "CET-D1")
METADATA_DEFAULTS = ("temperature_k", "field_mt", "defocus_nm")
CENSUS_KEYS = ("count", "diameter_mean_nm", "hexatic_order", "handedness", "period_nm")


#: One pen and brush object for every plot symbol.  pyqtgraph's symbol atlas keys on the
#: objects' identity: colours given as tuples become new objects at every setData and
#: add an atlas entry each time (the viewer grew ~2 MB/min that way).
_SYMBOL = {"symbolPen": pg.mkPen(200, 200, 200), "symbolBrush": pg.mkBrush(50, 50, 150)}


def _lookup_table(name: str) -> np.ndarray | None:
    if name == "grey":
        return None
    return pg.colormap.get(name).getLookupTable(nPts=256)


class _Image(pg.ImageItem):
    """An ImageItem that counts its paints (what reached the screen, for benchmarks)."""

    paints = 0

    def paint(self, painter: QtGui.QPainter, *args: Any) -> None:
        self.paints += 1
        super().paint(painter, *args)


class ImagePanel(pg.GraphicsLayoutWidget):
    """One image in nm coordinates (row 0 at the top), a title and a scale bar."""

    def __init__(self, title: str, *, legend: bool = False) -> None:
        super().__init__()
        self.setBackground("k")
        self.title = self.addLabel(title, row=0, col=0, colspan=2)
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image = _Image(axisOrder="row-major")
        self.view.addItem(self.image)
        self.arrows = pg.PlotCurveItem(pen=pg.mkPen("w", width=1), connect="pairs")
        self.arrows.setVisible(False)
        self.view.addItem(self.arrows)
        self.scale_bar: pg.ScaleBar | None = None
        self._bar_for: tuple[float, float] | None = None
        self._rect: tuple[int, int, float] | None = None
        self.legend_view = None
        self.legend_labels: list[pg.TextItem] = []  # "+x" (columns), "+y" (rows)
        if legend:  # the colour-wheel legend, drawn by the physics code that colours the maps
            self.legend_view = self.addViewBox(
                row=1, col=1, lockAspect=True, invertY=True, enableMouse=False, enableMenu=False
            )
            disc = (colour_wheel_legend(96).numpy() * 255 + 0.5).astype(np.uint8)
            self.legend_view.addItem(pg.ImageItem(disc, axisOrder="row-major"))
            self.legend_view.setFixedWidth(120)
            for text, pos, anchor in (("+x", (97, 48), (0, 0.5)), ("+y", (48, 97), (0.5, 0))):
                label = pg.TextItem(text, color="w", anchor=anchor)
                label.setPos(*pos)
                self.legend_view.addItem(label)
                self.legend_labels.append(label)
            # the labels lie outside the disc: a fixed range keeps them in view
            self.legend_view.setRange(xRange=(-2, 122), yRange=(-14, 110), padding=0)
            self.legend_view.disableAutoRange()

    @property
    def paints(self) -> int:
        """Times the image was painted (benchmarks)."""
        return self.image.paints

    def show_image(self, data: np.ndarray, pixel_nm: float, **kwargs: Any) -> None:
        self.image.setImage(data, **kwargs)
        height, width = data.shape[:2]
        if self._rect != (height, width, pixel_nm):
            self._rect = (height, width, pixel_nm)
            self.image.setRect(QtCore.QRectF(0, 0, width * pixel_nm, height * pixel_nm))
            self.view.autoRange(padding=0)
            self._place_scale_bar(width * pixel_nm)

    def _place_scale_bar(self, field_nm: float) -> None:
        length = nice_length_nm(field_nm)
        if self.scale_bar is not None:
            self.view.removeItem(self.scale_bar)  # remove from the view it was added to
            self.scale_bar.setParentItem(None)
        bar = pg.ScaleBar(length, suffix="nm")
        bar.text.setText(length_label(length))
        bar.setParentItem(self.view)
        bar.anchor((1, 1), (1, 1), offset=(-12, -12))
        self.scale_bar = bar


class MainWindow(QtWidgets.QMainWindow):
    """Raw frame, phi_m and B, with controls, plots and a status bar.

    receiver : the :class:`StreamReceiver` (owned: closed with the window).
    control : a :class:`ControlClient` or ``None`` (owned).
    settings : where per-microscope choices persist (sign convention).
    """

    frame_shown = QtCore.Signal(object)
    result_shown = QtCore.Signal(object)
    result_received = QtCore.Signal(object)

    def __init__(
        self,
        receiver: StreamReceiver,
        control: ControlClient | None = None,
        *,
        settings: QtCore.QSettings | None = None,
        snapshot_dir: Path = Path("snapshots"),
        session_dir: Path = Path("sessions"),
    ) -> None:
        super().__init__()
        self.setWindowTitle("lorentz-live")
        self.receiver = receiver
        self.control = control
        self.settings = settings or QtCore.QSettings("lorentz-live", "viewer")
        self.model = ViewerModel(t0=time.monotonic())
        self.snapshot_dir = snapshot_dir
        self.session_dir = session_dir
        self.record_text = ""
        self.update_times_s: list[float] = []  # GUI-thread time per display update (benchmarks)
        self.last_raw: RawView | None = None
        self.last_result: ResultView | None = None
        self.control_state: dict[str, Any] | None = None
        self.control_replies: list[dict[str, Any]] = []
        self._control_sent_at: float | None = None
        self._control_last_reply: float | None = None
        self._params_edited = False
        self._closed = False
        self._plotted: dict[int, tuple[int, int, str]] = {}  # curve -> what it shows
        self.display_points = DISPLAY_POINTS  # per plotted history, at most

        self.toolbar = self.addToolBar("main")
        self.toolbar.setObjectName("main-toolbar")
        self.record_action = QtGui.QAction("● Record", self)
        self.record_action.setCheckable(True)
        self.record_action.setToolTip(
            "record the raw frames and results this viewer receives into a new session "
            "(lossless: lorentz-live record)"
        )
        self.record_action.toggled.connect(self._record_toggled)
        self.toolbar.addAction(self.record_action)
        self._build_images()
        self._build_controls()
        self._build_plots()
        self.status = QtWidgets.QLabel("starting")
        self.statusBar().addWidget(self.status, 1)

        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(DISPLAY_PERIOD_MS)
        self._slow_timer = QtCore.QTimer(self)
        self._slow_timer.timeout.connect(self._slow_refresh)
        self._slow_timer.start(500)
        self.resize(1500, 950)

    # ---- hooks for other features --------------------------------------------------
    def add_panel(
        self,
        title: str,
        widget: QtWidgets.QWidget,
        area: QtCore.Qt.DockWidgetArea = QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
    ) -> QtWidgets.QDockWidget:
        """Add ``widget`` as a dock (a tab behind the plots on the right by default)."""
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if area == QtCore.Qt.DockWidgetArea.RightDockWidgetArea and self._plot_docks:
            shown = [d for d in self._plot_docks if not d.visibleRegion().isEmpty()]
            self.tabifyDockWidget(self._plot_docks[-1], dock)
            (shown or self._plot_docks)[-1].raise_()  # the tab in front stays in front
        return dock

    # ---- construction --------------------------------------------------------------
    def _build_images(self) -> None:
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        self.info = QtWidgets.QLabel("waiting for results")
        self.info.setStyleSheet("font-weight: bold")
        layout.addWidget(self.info)
        grid = QtWidgets.QGridLayout()
        self.raw_panel = ImagePanel("raw frame")
        self.phase_panel = ImagePanel("phi_m (rad)")
        self.b_panel = ImagePanel("B (colour = direction)", legend=True)
        self.convergence = pg.GraphicsLayoutWidget()
        grid.addWidget(self.raw_panel, 0, 0)
        grid.addWidget(self.phase_panel, 0, 1)
        grid.addWidget(self.b_panel, 1, 0)
        grid.addWidget(self.convergence, 1, 1)
        layout.addLayout(grid, 1)
        self.roi = pg.RectROI([0, 0], [100, 100], pen=pg.mkPen("y", width=2))
        self.roi.setVisible(False)
        self.raw_panel.view.addItem(self.roi)
        self.setCentralWidget(central)

    def _build_controls(self) -> None:
        panel = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(panel)
        self._build_microscope_controls(form)
        self._build_engine_controls(form)
        self._build_display_controls(form)

        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        dock = QtWidgets.QDockWidget("Controls", self)
        dock.setObjectName("controls")
        dock.setWidget(scroll)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [330], QtCore.Qt.Orientation.Horizontal)

    def _build_microscope_controls(self, form: QtWidgets.QFormLayout) -> None:

        self.convention = QtWidgets.QComboBox()
        self.convention.addItems(SIGN_CONVENTIONS)
        self.convention.setToolTip(
            "How this microscope signs its defocus readout.  lorentz-live uses "
            "negative = underfocus; a wrong choice reverses the chirality of every texture."
        )
        self.convention.currentTextChanged.connect(self._convention_changed)
        form.addRow("microscope defocus sign", self.convention)
        self.defocus = _spin(-50000.0, 50000.0, 1, " µm")
        self.defocus.valueChanged.connect(self._params_touched)
        self.focus_label = QtWidgets.QLabel("-")
        form.addRow("defocus (as shown)", self.defocus)
        form.addRow("", self.focus_label)
        self.kv = _spin(1.0, 3000.0, 0, " kV")
        self.pixel = _spin(0.001, 1000.0, 3, " nm/px")
        self.cs = _spin(0.0, 100.0, 3, " mm")
        for label, widget in (("voltage", self.kv), ("pixel size", self.pixel), ("Cs", self.cs)):
            widget.valueChanged.connect(self._params_touched)
            form.addRow(label, widget)
        buttons = QtWidgets.QHBoxLayout()
        self.apply_params = QtWidgets.QPushButton("Apply parameters")
        self.apply_params.clicked.connect(self.send_params)
        self.clear_params = QtWidgets.QPushButton("Use frame values")
        self.clear_params.clicked.connect(self._clear_params)
        buttons.addWidget(self.apply_params)
        buttons.addWidget(self.clear_params)
        form.addRow(buttons)

    def _build_engine_controls(self, form: QtWidgets.QFormLayout) -> None:
        self.warm_iterations = QtWidgets.QSpinBox()
        self.warm_iterations.setRange(1, 10000)
        self.warm_iterations.setValue(20)
        self.budget = _spin(0.0, 600.0, 2, " s")
        self.budget.setSpecialValueText("none")
        apply_budget = QtWidgets.QPushButton("Apply budget")
        apply_budget.clicked.connect(self.send_budget)
        form.addRow("iterations per warm frame", self.warm_iterations)
        form.addRow("time per frame", self.budget)
        form.addRow(apply_budget)
        reset = QtWidgets.QPushButton("Reset warm start (cold restart)")
        reset.clicked.connect(lambda: self.send("reset"))
        form.addRow(reset)

        self.roi_box = QtWidgets.QCheckBox("show region of interest on the raw frame")
        self.roi_box.toggled.connect(self.roi.setVisible)
        roi_buttons = QtWidgets.QHBoxLayout()
        apply_roi = QtWidgets.QPushButton("Reconstruct ROI")
        apply_roi.clicked.connect(self.send_roi)
        full = QtWidgets.QPushButton("Whole frame")
        full.clicked.connect(lambda: self.send("set_roi", roi=None))
        roi_buttons.addWidget(apply_roi)
        roi_buttons.addWidget(full)
        form.addRow(self.roi_box)
        form.addRow(roi_buttons)

    def _build_display_controls(self, form: QtWidgets.QFormLayout) -> None:
        self.raw_map = QtWidgets.QComboBox()
        self.raw_map.addItems(COLOUR_MAPS)
        self.phase_map = QtWidgets.QComboBox()
        self.phase_map.addItems(COLOUR_MAPS)
        self.phase_map.setCurrentText("grey")
        self.low = _spin(0.0, 49.0, 1, " %")
        self.low.setValue(0.5)
        self.high = _spin(51.0, 100.0, 1, " %")
        self.high.setValue(99.5)
        for box in (self.low, self.high):
            box.valueChanged.connect(self._contrast_changed)
        self.map_source = QtWidgets.QComboBox()
        self.map_source.addItems(("newest", "refined only", "instant only"))
        self.map_source.setToolTip(
            "Every frame gets an instant map (SITIE or the amortised network); the newest "
            "frame is refined by SIPRAD when it is free"
        )
        form.addRow("maps shown", self.map_source)
        self.b_mode = QtWidgets.QComboBox()
        self.b_mode.addItems(("colour wheel", "|B|"))
        self.arrows_box = QtWidgets.QCheckBox("arrows")
        self.arrows_box.toggled.connect(self.b_panel.arrows.setVisible)
        form.addRow("raw colour map", self.raw_map)
        form.addRow("phase colour map", self.phase_map)
        form.addRow("contrast low", self.low)
        form.addRow("contrast high", self.high)
        form.addRow("B shows", self.b_mode)
        form.addRow(self.arrows_box)
        snapshot = QtWidgets.QPushButton("Snapshot (PNG + npz)")
        snapshot.clicked.connect(lambda _checked=False: self.snapshot())
        form.addRow(snapshot)
        self.control_reply = QtWidgets.QLabel("")
        self.control_reply.setWordWrap(True)
        form.addRow(self.control_reply)

    def _build_plots(self) -> None:
        self._plot_docks: list[QtWidgets.QDockWidget] = []
        convergence = self.convergence
        self.loss_iter = convergence.addPlot(row=0, col=0, title="loss per iteration (this frame)")
        self.loss_iter.setLogMode(y=True)
        self.loss_iter_curve = self.loss_iter.plot(pen="c")
        self.loss_frame = convergence.addPlot(row=1, col=0, title="final loss per frame")
        self.loss_frame.setLogMode(y=True)
        self.loss_frame.setLabel("bottom", "time", "s")
        self.loss_frame_curve = self.loss_frame.plot(pen="y", symbol="o", symbolSize=4, **_SYMBOL)

        metadata = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(metadata)
        self.metadata_key = QtWidgets.QComboBox()
        self.metadata_key.setEditable(False)
        box.addWidget(self.metadata_key)
        plots = pg.GraphicsLayoutWidget()
        box.addWidget(plots, 1)
        self.metadata_plots: dict[str, Any] = {}
        for row, key in enumerate((*METADATA_DEFAULTS, "picked")):
            plot = plots.addPlot(row=row, col=0, title=key)
            plot.setLabel("bottom", "time", "s")
            self.metadata_plots[key] = (plot, plot.plot(pen="w"))

        census = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(census)
        self.census_axis = QtWidgets.QComboBox()
        self.census_axis.addItems(("against time", "against temperature"))
        box.addWidget(self.census_axis)
        plots = pg.GraphicsLayoutWidget()
        box.addWidget(plots, 1)
        self.census_plots: dict[str, Any] = {}
        for row, key in enumerate(CENSUS_KEYS):
            plot = plots.addPlot(row=row, col=0, title=key)
            self.census_plots[key] = (plot, plot.plot(pen="g", symbol="o", symbolSize=3, **_SYMBOL))
        self.census_text = QtWidgets.QLabel("")
        box.addWidget(self.census_text)

        for title, widget in (("Metadata", metadata), ("Census", census)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
            if self._plot_docks:
                self.tabifyDockWidget(self._plot_docks[0], dock)
            self._plot_docks.append(dock)
        self._plot_docks[-1].raise_()
        self.resizeDocks(self._plot_docks[:1], [420], QtCore.Qt.Orientation.Horizontal)

    # ---- display (GUI thread, timer) -----------------------------------------------
    def refresh(self) -> None:
        """Show the newest raw frame and result, if any arrived (one timer tick)."""
        start = time.perf_counter()
        now = time.monotonic()
        shown = False
        raw = self.receiver.take_raw()
        if raw is not None:
            self._show_raw(raw, now)
            shown = True
        result = self.receiver.take_result()
        if result is not None:
            self._show_result(result, now)
            shown = True
        if self.control is not None:
            for reply in self.control.poll(0.0):
                self._on_reply(reply)
        if shown:
            self.update_times_s.append(time.perf_counter() - start)
            if len(self.update_times_s) > 10000:
                del self.update_times_s[:5000]

    def _show_raw(self, raw: RawView, now: float) -> None:
        header = raw.header
        pixel = float(header.get("pixel_size_nm", 1.0))
        self.raw_panel.image.setLookupTable(_lookup_table(self.raw_map.currentText()))
        self.raw_panel.show_image(raw.pixels, pixel, levels=raw.levels, autoLevels=False)
        self.model.on_raw(header, now)
        self.model.display_rate.tick(now)
        self.last_raw = raw
        if not self._params_edited:
            self._fill_params(header)
        self.frame_shown.emit(raw)

    def _show_result(self, result: ResultView, now: float) -> None:
        header, arrays = result.header, result.arrays
        self.model.on_result(header, now)
        self.result_received.emit(result)  # every result, shown or not (e.g. tilt progress)
        wanted = self.map_source.currentText()
        method = header.get("method", "siprad")
        if (wanted == "refined only" and method != "siprad") or (
            wanted == "instant only" and method == "siprad"
        ):
            return  # counted and plotted, not shown
        pixel = float(header.get("pixel_size_nm", 1.0))
        if "phi_m" in arrays:
            self.phase_panel.image.setLookupTable(_lookup_table(self.phase_map.currentText()))
            self.phase_panel.show_image(
                arrays["phi_m"], pixel, levels=result.phi_levels, autoLevels=False
            )
        if self.b_mode.currentText() == "|B|" and result.magnitude is not None:
            self.b_panel.image.setLookupTable(None)
            self.b_panel.show_image(
                result.magnitude, pixel, levels=result.magnitude_levels, autoLevels=False
            )
        elif "rgb" in arrays:
            self.b_panel.image.setLookupTable(None)
            self.b_panel.show_image(arrays["rgb"], pixel, levels=(0, 255), autoLevels=False)
        if result.arrows is not None:
            points = (result.arrows.reshape(-1, 2) + 0.5) * pixel
            self.b_panel.arrows.setData(points[:, 1], points[:, 0])
        if "loss" in arrays and len(arrays["loss"]):
            loss = np.clip(arrays["loss"], 1e-30, None)
            self.loss_iter_curve.setData(np.arange(1, len(loss) + 1), loss)
        self.last_result = result
        self.result_shown.emit(result)

    def _slow_refresh(self) -> None:
        """Plots, labels and the status bar (2 Hz: they need not follow every frame)."""
        now = time.monotonic()
        model = self.model
        if self._plot_changed(self.loss_frame_curve, model.loss_per_frame):
            t, loss = model.loss_per_frame.display_arrays(self.display_points)
            self.loss_frame_curve.setData(t, np.clip(loss, 1e-30, None))
        keys = sorted(model.metadata)
        if keys != [self.metadata_key.itemText(i) for i in range(self.metadata_key.count())]:
            current = self.metadata_key.currentText()
            self.metadata_key.blockSignals(True)
            self.metadata_key.clear()
            self.metadata_key.addItems(keys)
            self.metadata_key.setCurrentText(current or (keys[0] if keys else ""))
            self.metadata_key.blockSignals(False)
        for key, (plot, curve) in self.metadata_plots.items():
            name = self.metadata_key.currentText() if key == "picked" else key
            if plot.titleLabel.text != name:
                plot.setTitle(name)
            series = model.metadata.get(name)
            if series is not None and self._plot_changed(curve, series, name):
                curve.setData(*series.display_arrays(self.display_points))
        by_temperature = self.census_axis.currentText() == "against temperature"
        source = model.census_temperature if by_temperature else model.census
        for key, (plot, curve) in self.census_plots.items():
            axis = "temperature" if by_temperature else "time"
            if plot.getAxis("bottom").labelText != axis:
                plot.setLabel("bottom", axis, "K" if by_temperature else "s")
            series = source.get(key)
            if series is not None and self._plot_changed(curve, series, axis):
                curve.setData(*series.display_arrays(self.display_points))
        self._update_info(now)
        self._update_status(now)
        if self.control is not None and (
            self._control_sent_at is None or now - self._control_sent_at > 2.0
        ):
            self._control_sent_at = now
            self.control.send("status")

    def _plot_changed(self, curve: Any, series: Series, view: str = "") -> bool:
        """Whether ``curve`` must be redrawn from ``series`` (new points or another view).

        Plots are redrawn only when their data changed, and always decimated
        (:meth:`gui.model.Series.display_arrays`): their cost, in time and in
        memory, stays bounded over a session of any length.
        """
        if not len(series):
            return False
        state = (id(series), series.total, view)
        if self._plotted.get(id(curve)) == state:
            return False
        self._plotted[id(curve)] = state
        return True

    def _update_info(self, now: float) -> None:
        result = self.last_result
        if result is None:
            self.info.setText(f"results: {self.model.results_state(now)}")
            return
        header = result.header
        made = header.get("result_timestamp_ns")
        age = (time.time_ns() - made) * 1e-9 if isinstance(made, int) else now - result.received_at
        method = header.get("method", "siprad")
        if header.get("warm"):
            warm = "warm"
        elif header.get("restart_reason"):
            warm = f"cold ({header['restart_reason']})"
        else:
            warm = "one pass"
        defocus = header.get("defocus_nm")
        focus = focus_words(defocus) if isinstance(defocus, (int, float)) else "?"
        roi = (header.get("frame") or {}).get("roi")
        self.info.setText(
            f"map: {method} · frame {header.get('seq')} · age {age:.1f} s · "
            f"{header.get('iterations')} it · {warm} · {focus}" + (f" · ROI {roi}" if roi else "")
        )
        self.census_text.setText(census_summary(header.get("census") or {}))

    def _update_status(self, now: float) -> None:
        model = self.model
        raw = raw_state(self.receiver.raw_stats())
        results = model.results_state(now)
        header = model.last_result_header or {}
        latency = header.get("latency_s")
        control = "off"
        if self.control is not None:
            if self._control_last_reply is None:
                control = "no reply yet"
            elif now - self._control_last_reply > 6.0:
                control = f"no reply for {now - self._control_last_reply:.0f} s"
            else:
                control = "ok"
        device = (self.control_state or {}).get("device", "?")
        parts = [
            f"raw: {raw}",
            f"results: {results}",
            f"control: {control}",
            f"camera {model.camera_rate.per_second(now):.1f} fps",
            f"display {model.display_rate.per_second(now):.1f} fps",
            f"reconstruction {model.result_rate.per_second(now):.2f} fps",
            f"latency {latency:.2f} s" if isinstance(latency, (int, float)) else "latency -",
            f"it/frame {header.get('iterations', '-')}",
            f"dropped {header.get('dropped_so_far', '-')}",
            f"bad {header.get('bad_frames_so_far', '-')}",
            f"device {device}",
        ]
        self.record_text = self._recording_state()
        if self.record_text:
            parts.append(self.record_text)
        self.status.setText("  |  ".join(parts))
        for panel, state in ((self.raw_panel, raw), (self.phase_panel, results)):
            colour = "#8f8" if state == "live" else "#fb4"
            name = "raw frame" if panel is self.raw_panel else "phi_m (rad)"
            panel.title.setText(f"{name} — {state}", color=colour)

    # ---- controls ------------------------------------------------------------------
    def _fill_params(self, header: dict[str, Any]) -> None:
        widgets = (self.defocus, self.kv, self.pixel, self.cs)
        for widget in widgets:
            widget.blockSignals(True)
        convention = self._convention_for(header.get("source"))
        shown = defocus_to_display(float(header.get("defocus_nm", 0.0)), convention)
        self.defocus.setValue(shown / 1000.0)
        self.kv.setValue(float(header.get("kv", 200.0)))
        self.pixel.setValue(float(header.get("pixel_size_nm", 1.0)))
        self.cs.setValue(float(header.get("cs_nm", 0.0)) / 1e6)
        for widget in widgets:
            widget.blockSignals(False)
        self._update_focus_label()

    def _convention_for(self, source: Any) -> str:
        key = f"sign_convention/{source or 'default'}"
        convention = str(self.settings.value(key, SIGN_CONVENTIONS[0]))
        if self.convention.currentText() != convention:
            self.convention.blockSignals(True)
            self.convention.setCurrentText(convention)
            self.convention.blockSignals(False)
        return convention

    def _convention_changed(self, convention: str) -> None:
        source = (self.last_raw.header.get("source") if self.last_raw else None) or "default"
        self.settings.setValue(f"sign_convention/{source}", convention)
        if self.last_raw is not None and not self._params_edited:
            self._fill_params(self.last_raw.header)
        self._update_focus_label()

    def _params_touched(self) -> None:
        self._params_edited = True
        self._update_focus_label()

    def _update_focus_label(self) -> None:
        ours = self.defocus_nm()
        self.focus_label.setText(focus_words(ours) + ("  (edited)" if self._params_edited else ""))

    def defocus_nm(self) -> float:
        """The defocus field in our convention (negative = underfocus), nm."""
        return defocus_from_display(self.defocus.value() * 1000.0, self.convention.currentText())

    def send(self, command: str, **args: Any) -> int | None:
        """Send a control command (non-blocking); the reply shows when it arrives."""
        if self.control is None:
            self.control_reply.setText("no control socket")
            return None
        ident = self.control.send(command, **args)
        self.control_reply.setText(f"sent {command}" if ident else f"could not send {command}")
        return ident

    def send_params(self) -> int | None:
        params = {
            "defocus_nm": self.defocus_nm(),
            "kv": self.kv.value(),
            "pixel_size_nm": self.pixel.value(),
            "cs_nm": self.cs.value() * 1e6,
        }
        return self.send("set_params", params=params)

    def _clear_params(self) -> None:
        self._params_edited = False
        self.send("clear_params")
        if self.last_raw is not None:
            self._fill_params(self.last_raw.header)

    def send_budget(self) -> int | None:
        budget = self.budget.value() or None
        return self.send(
            "set_budget", warm_iterations=self.warm_iterations.value(), time_budget_s=budget
        )

    def send_roi(self) -> int | None:
        if self.last_raw is None:
            return None
        pixel = float(self.last_raw.header.get("pixel_size_nm", 1.0))
        x, y = (float(v) / pixel for v in self.roi.pos())
        width, height = (float(v) / pixel for v in self.roi.size())
        shape = self.last_raw.pixels.shape
        y0, x0 = max(0, round(y)), max(0, round(x))
        height = min(round(height), shape[0] - y0)
        width = min(round(width), shape[1] - x0)
        return self.send("set_roi", roi=[y0, x0, height, width])

    def _on_reply(self, reply: dict[str, Any]) -> None:
        self._control_last_reply = time.monotonic()
        self.control_replies.append(reply)
        del self.control_replies[:-50]
        if "state" in reply:
            self.control_state = reply["state"]
        if reply.get("command") == "status":
            return
        if reply.get("ok"):
            self.control_reply.setText(
                f"{reply.get('command')}: accepted, applies {reply.get('applies')}"
            )
        else:
            self.control_reply.setText(f"refused: {reply.get('error')}")

    def _contrast_changed(self) -> None:
        self.receiver.contrast = (self.low.value(), self.high.value())

    # ---- recording -----------------------------------------------------------------
    def start_recording(self, folder: Path | None = None) -> SessionWriter | None:
        """Record into a new session folder (default: a time-stamped one in ``session_dir``)."""
        folder = Path(folder or self.session_dir / f"session-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            writer = SessionWriter(folder, command="lorentz-live gui: record button")
        except (RecordError, OSError) as exc:
            self.control_reply.setText(f"record: {exc}")
            self.record_action.blockSignals(True)
            self.record_action.setChecked(False)
            self.record_action.blockSignals(False)
            return None
        self.receiver.start_recording(writer)
        self.control_reply.setText(f"recording into {folder}")
        return writer

    def stop_recording(self) -> threading.Thread | None:
        """Stop recording; the session is finished in a background thread (returned)."""
        writer = self.receiver.stop_recording()
        if writer is None:
            return None
        closer = threading.Thread(target=writer.close, name="viewer-session-close")
        closer.start()
        self.control_reply.setText(
            f"recorded {writer.stats.frames} frames, {writer.stats.results} results "
            f"into {writer.folder}"
        )
        return closer

    def _record_toggled(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def _recording_state(self) -> str:
        writer = self.receiver.recording
        if writer is None:
            return ""
        if writer.error is not None:
            return f"REC stopped: {writer.error}"
        return f"REC {writer.stats.frames} frames / {writer.stats.results} results"

    # ---- export --------------------------------------------------------------------
    def snapshot(self, folder: Path | None = None) -> tuple[Path, Path] | None:
        """Save the B panel (map, scale bar, colour wheel) as PNG and the arrays as .npz."""
        result = self.last_result
        if result is None:
            self.control_reply.setText("snapshot: no result yet")
            return None
        folder = Path(folder or self.snapshot_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = (
            folder / f"lorentz-live-{time.strftime('%Y%m%d-%H%M%S')}-seq{result.header.get('seq')}"
        )
        png, npz = stem.with_suffix(".png"), stem.with_suffix(".npz")
        self.b_panel.grab().save(str(png))
        arrays: dict[str, Any] = {name: np.array(value) for name, value in result.arrays.items()}
        if self.last_raw is not None:
            arrays["raw"] = np.array(self.last_raw.pixels)
        np.savez(npz, header=json.dumps(result.header, default=str), **arrays)
        self.control_reply.setText(f"saved {png.name} and {npz.name}")
        return png, npz

    # ---- closing -------------------------------------------------------------------
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers, the receiver thread and the sockets (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._slow_timer.stop()
        self.receiver.close()
        if self.control is not None:
            self.control.close()


def _spin(low: float, high: float, decimals: int, suffix: str) -> QtWidgets.QDoubleSpinBox:
    box = QtWidgets.QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box
