"""The viewer's 3D panel: tilt-series capture progress and x/y/z slices of a B.npz.

Plugged into the main window by :func:`install` (a dock, a File menu entry and
the window's ``result_received`` signal).  Progress comes from the results
headers (:class:`gui.tomo_model.TomoProgress`); a volume is read and sliced in
a background thread (:func:`gui.tomo_model.load_volume`,
:func:`gui.tomo_model.slice_stacks`), so the GUI thread only picks slices.
In-plane B is a colour wheel (the 2D maps' colours and legend), the component
normal to the slice (B_z for z slices) a diverging map with a colour bar in T.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gui.streams import ResultView
from gui.tomo_model import (
    FIELDS,
    PLANES,
    ROLES,
    SliceStack,
    TomoProgress,
    Volume,
    VolumeError,
    load_volume,
    slice_stacks,
)
from gui.window import ImagePanel, MainWindow

#: Diverging colour map of the normal component (white at zero).
DIVERGING_MAP = "CET-D1"


class TomoPanel(QtWidgets.QWidget):
    """Capture progress of the x and y tilt series and slices of the newest 3D result."""

    #: (Volume, stacks) or (None, error message), from the loader thread
    _loaded = QtCore.Signal(object, object, int)
    #: a volume is shown (its path)
    volume_shown = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = TomoProgress()
        self.volume: Volume | None = None
        self.stacks: dict[str, dict[str, SliceStack]] = {}
        self._generation = 0
        self._announced: str | None = None
        self._loader: threading.Thread | None = None
        self._loaded.connect(self._on_loaded)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        bars = QtWidgets.QFormLayout()
        self.bars: dict[str, QtWidgets.QProgressBar] = {}
        for role in ROLES:
            bar = QtWidgets.QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("no series yet")
            self.bars[role] = bar
            bars.addRow(f"{role[-1]} tilt series", bar)
        layout.addLayout(bars)
        self.progress_text = QtWidgets.QLabel("waiting for tilt-series frames")
        self.progress_text.setWordWrap(True)
        layout.addWidget(self.progress_text)

        controls = QtWidgets.QHBoxLayout()
        self.field = QtWidgets.QComboBox()
        self.field.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.axis = QtWidgets.QComboBox()
        self.axis.addItems(tuple(PLANES))
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.position = QtWidgets.QLabel("-")
        self.open_button = QtWidgets.QPushButton("Open…")
        self.open_button.setToolTip("open a B.npz (lorentz-live tomo / run --tomo-out)")
        self.open_button.clicked.connect(self.open_dialog)
        for widget in (self.field, self.axis, self.slider, self.position, self.open_button):
            controls.addWidget(widget, 1 if widget is self.slider else 0)
        layout.addLayout(controls)
        self.field.currentIndexChanged.connect(self.show_slice)
        self.axis.currentIndexChanged.connect(self._axis_changed)
        self.slider.valueChanged.connect(self.show_slice)

        self.in_plane = ImagePanel("in-plane B", legend=True)
        self.normal = ImagePanel("B_z (T)")
        self.colour_bar = pg.ColorBarItem(
            values=(-1.0, 1.0),
            colorMap=pg.colormap.get(DIVERGING_MAP),
            interactive=False,
            label="T",
            colorMapMenu=False,
        )
        self.colour_bar.setImageItem(self.normal.image)
        self.normal.addItem(self.colour_bar, row=1, col=1)
        images = QtWidgets.QHBoxLayout()
        images.addWidget(self.in_plane)
        images.addWidget(self.normal)
        layout.addLayout(images, 1)
        self.message = QtWidgets.QLabel("no 3D result yet (File > Open 3D result)")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    # ---- progress ------------------------------------------------------------------
    def on_result(self, result: ResultView) -> None:
        """Follow the tilt series and the engine's written volumes (every result)."""
        if not self.progress.on_result(result.header):
            return
        for role, bar in self.bars.items():
            series = self.progress.latest(role)
            if series is None:
                continue
            total = series.expected or max(series.received, 1)
            bar.setRange(0, total)
            bar.setValue(min(series.received, total))
            count = f"{series.received} / {series.expected}" if series.expected else ""
            state = "complete" if series.complete else ""
            if not series.complete and series.current_deg is not None:
                state = f"now {series.current_deg:+.1f}°"
            bar.setFormat(f"{count or series.received} tilts  {state}".strip())
        lines = [entry.text() for entry in reversed(self.progress.series.values())]
        self.progress_text.setText("\n".join(lines[:4]))
        volume = self.progress.latest_volume
        if volume is not None and volume["path"] != self._announced:
            self._announced = volume["path"]
            if Path(volume["path"]).is_file():
                self.open_path(volume["path"])
            else:
                self.message.setText(
                    f"engine wrote {volume['path']} (not on this machine: copy it, "
                    "then File > Open 3D result)"
                )

    # ---- volumes -------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open 3D result", "", "3D result (*.npz);;all files (*)"
        )
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> threading.Thread:
        """Read and slice ``path`` in a background thread; the panel shows it when done."""
        self._generation += 1
        generation = self._generation
        self.message.setText(f"loading {Path(path).name} …")

        def work() -> None:
            volume: Volume | None = None
            payload: Any
            try:
                volume = load_volume(path)
                payload = slice_stacks(volume)
            except VolumeError as error:
                volume, payload = None, str(error)
            except (MemoryError, RuntimeError) as error:
                volume, payload = None, f"{Path(path).name}: {error}"
            with contextlib.suppress(RuntimeError):  # the panel was closed meanwhile
                self._loaded.emit(volume, payload, generation)

        self._loader = threading.Thread(target=work, name="viewer-tomo-load", daemon=True)
        self._loader.start()
        return self._loader

    def _on_loaded(self, volume: Volume | None, payload: Any, generation: int) -> None:
        if generation != self._generation:
            return  # a newer file was asked for meanwhile
        if volume is None:
            self.message.setText(f"cannot show 3D result: {payload}")
            return
        self.volume, self.stacks = volume, payload
        current = self.field.currentData()
        self.field.blockSignals(True)
        self.field.clear()
        for name in self.stacks:
            self.field.addItem(f"{FIELDS[name]} ({name})", name)
        index = self.field.findData(current)
        self.field.setCurrentIndex(max(index, 0))
        self.field.blockSignals(False)
        size = next(iter(volume.fields.values())).shape[1]
        text = f"{Path(volume.path).name}: {size}³ voxels of {volume.voxel_nm:g} nm"
        self.message.setText(text + (f" ({volume.note})" if volume.note else ""))
        self._axis_changed()
        self.volume_shown.emit(volume.path)

    def _axis_changed(self) -> None:
        stack = self.current_stack()
        if stack is None:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(stack.rgb) - 1)
        self.slider.setValue(len(stack.rgb) // 2)
        self.slider.blockSignals(False)
        cols, rows = stack.components
        for label, text in zip(self.in_plane.legend_labels, (f"+{cols}", f"+{rows}"), strict=True):
            label.setText(text)
        self.colour_bar.setLevels((-stack.normal_max_t, stack.normal_max_t))
        self.show_slice()

    def current_stack(self) -> SliceStack | None:
        """The slices of the chosen field along the chosen axis (``None``: no volume)."""
        field = self.field.currentData()
        if field not in self.stacks:
            return None
        return self.stacks[field][self.axis.currentText()]

    def show_slice(self) -> None:
        """Display slice ``slider.value()`` of the current stack (indexing only)."""
        stack, volume = self.current_stack(), self.volume
        if stack is None or volume is None:
            return
        index = self.slider.value()
        voxel = volume.voxel_nm
        cols, rows = stack.components
        self.in_plane.show_image(stack.rgb[index], voxel, levels=(0, 255), autoLevels=False)
        self.normal.show_image(
            stack.normal[index],
            voxel,
            levels=(-stack.normal_max_t, stack.normal_max_t),
            autoLevels=False,
        )
        self.in_plane.title.setText(
            f"in-plane (B_{cols}, B_{rows}); full colour at {stack.in_plane_scale_t:.3g} T"
        )
        self.normal.title.setText(f"B_{stack.axis} (T), ±{stack.normal_max_t:.3g} T")
        centre = (len(stack.rgb) // 2) * voxel
        self.position.setText(
            f"{stack.axis} = {index * voxel - centre:+.1f} nm  ({index + 1}/{len(stack.rgb)})"
        )


def install(window: MainWindow) -> TomoPanel:
    """Add the 3D panel to ``window``: a dock (brought to the front when it shows a
    volume), File > Open 3D result, every result fed in."""
    panel = TomoPanel()
    dock = window.add_panel("3D", panel)
    panel.volume_shown.connect(lambda _path: dock.raise_())
    window.result_received.connect(panel.on_result)
    menu = window.menuBar().addMenu("&File")
    action = menu.addAction("Open 3D result…")
    action.triggered.connect(panel.open_dialog)
    return panel
