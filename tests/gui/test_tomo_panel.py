"""The 3D panel: tilt-series progress from results headers, B.npz slices, bad files (offscreen)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6 import QtWidgets

from gui.streams import ResultView, StreamReceiver
from gui.tomo_model import TomoProgress, load_volume, slice_stack
from gui.tomo_panel import TomoPanel, install
from gui.window import MainWindow

pytestmark = pytest.mark.timeout(120)

N = 12
VOXEL_NM = 4.0


def tilt_header(role: str, series_id: str, angle: float, expected: int | None = 5, **extra):
    frame = {"series_role": role, "series_id": series_id, f"{role}_deg": angle}
    if expected is not None:
        frame["series_tilts"] = expected
    return {"method": "sitie", "seq": 1, "frame": frame, **extra}


def view(header: dict) -> ResultView:
    return ResultView({}, header, (0.0, 1.0), None, (0.0, 1.0), None, time.monotonic())


def write_volume(path: Path, b_xyz=(0.5, 0.0, 0.2), **extra) -> Path:
    b = np.zeros((3, N, N, N), np.float32)
    for component, value in enumerate(b_xyz):
        b[component] = value
    np.savez(path, b=b, b_vfet=0.5 * b, pixel_size_nm=VOXEL_NM, **extra)
    return path


def test_progress_counts_distinct_tilts_and_takes_the_engines_counts() -> None:
    progress = TomoProgress()
    for angle in (-20.0, -10.0, -10.0, 0.0):  # instant and SIPRAD results share a frame
        progress.on_result(tilt_header("tilt_x", "sx", angle))
    series = progress.latest("tilt_x")
    assert series is not None and series.angles_deg == [-20.0, -10.0, 0.0]
    assert (series.received, series.expected, series.current_deg) == (3, 5, 0.0)
    assert "3 / 5 tilts" in series.text() and "now +0.0°" in series.text()
    assert progress.latest("tilt_y") is None
    # the engine counted a tilt the viewer's display skipped, and the series ended
    tomo = {
        "series": {"sx": {"role": "tilt_x", "tilts": 4, "range_deg": [-20, 10], "complete": True}},
        "volumes": [{"path": "/nowhere/tomo_sx_sy.npz", "series_x": "sx"}],
    }
    assert progress.on_result({"method": "sitie", "tomo": tomo})
    assert series.received == 4 and series.complete and "complete" in series.text()
    assert progress.latest_volume == tomo["volumes"][0]
    assert not progress.on_result({"method": "sitie", "frame": {"temperature_k": 10.0}})


def test_slices_of_a_uniform_field_have_the_colour_wheel_colours(tmp_path: Path) -> None:
    volume = load_volume(write_volume(tmp_path / "b.npz"))
    assert volume.voxel_nm == VOXEL_NM and set(volume.fields) == {"b", "b_vfet"}
    b = volume.fields["b"]
    along_z = slice_stack(b, "z")  # in plane (B_x, B_y) = (0.5, 0): +x is red
    assert along_z.components == ("x", "y")
    np.testing.assert_array_equal(along_z.rgb[3, 5, 7], [255, 0, 0])
    np.testing.assert_allclose(along_z.normal, 0.2)
    along_x = slice_stack(b, "x")  # in plane (B_y, B_z) = (0, 0.2): +rows is hue 1/4
    assert along_x.components == ("y", "z")
    np.testing.assert_allclose(along_x.rgb[0, 0, 0], [127.5, 255, 0], atol=1)
    np.testing.assert_allclose(along_x.normal, 0.5)
    assert along_x.normal_max_t == pytest.approx(0.5)


def test_slices_keep_the_axes_apart(tmp_path: Path) -> None:
    """B_z = z index: z slices are constant, x slices vary along their rows only."""
    b = np.zeros((3, N, N, N), np.float32)
    b[2] = np.arange(N, dtype=np.float32)[:, None, None]
    along_z, along_x = slice_stack(b, "z"), slice_stack(b, "x")
    assert np.ptp(along_z.normal[4]) == 0 and along_z.normal[4, 0, 0] == 4
    np.testing.assert_array_equal(along_x.rgb[0][:, 0, 0] > 0, np.arange(N) > 0)
    assert np.ptp(along_x.rgb[0][5, :, 0]) == 0  # same z, same colour along y


def test_panel_shows_progress_and_a_volume_with_known_values(qtbot, tmp_path: Path) -> None:
    panel = TomoPanel()
    qtbot.addWidget(panel)
    for angle in (-10.0, 0.0):
        panel.on_result(view(tilt_header("tilt_x", "sx", angle)))
    bar = panel.bars["tilt_x"]
    assert (bar.value(), bar.maximum()) == (2, 5) and "now +0.0°" in bar.format()
    assert "tilt_x sx: 2 / 5 tilts" in panel.progress_text.text()
    assert panel.bars["tilt_y"].format() == "no series yet"

    panel.open_path(write_volume(tmp_path / "b.npz")).join(30)
    qtbot.waitUntil(lambda: panel.volume is not None, timeout=10000)
    assert "12³ voxels of 4 nm" in panel.message.text()
    assert panel.field.currentData() == "b" and panel.slider.value() == N // 2
    np.testing.assert_array_equal(panel.in_plane.image.image[0, 0], [255, 0, 0])
    np.testing.assert_allclose(panel.normal.image.image, 0.2)
    assert panel.normal.title.text.startswith("B_z (T)")
    assert [label.toPlainText() for label in panel.in_plane.legend_labels] == ["+x", "+y"]
    assert panel.position.text().startswith("z = +0.0 nm")
    panel.axis.setCurrentText("x")
    np.testing.assert_allclose(panel.normal.image.image, 0.5)
    assert [label.toPlainText() for label in panel.in_plane.legend_labels] == ["+y", "+z"]
    panel.slider.setValue(0)
    assert panel.position.text().startswith(f"x = {-N // 2 * VOXEL_NM:+.1f} nm")
    panel.field.setCurrentIndex(panel.field.findData("b_vfet"))
    np.testing.assert_allclose(panel.normal.image.image, 0.25)
    # the scale is in nm: the image spans N voxels
    assert panel.normal.image.mapRectToParent(panel.normal.image.boundingRect()).width() == (
        pytest.approx(N * VOXEL_NM)
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.npz", "no such file"),
        (lambda p: (p / "text.npz").write_text("not a zip") and p / "text.npz", "not a readable"),
        (
            lambda p: np.savez(p / "flat.npz", b=np.zeros((3, 4, 4))) or p / "flat.npz",
            "must be (3, N, N, N)",
        ),
        (lambda p: np.savez(p / "other.npz", phase=np.zeros(3)) or p / "other.npz", "no 'b'"),
        (
            lambda p: np.savez(p / "nan.npz", b=np.full((3, 4, 4, 4), np.nan)) or p / "nan.npz",
            "finite",
        ),
    ],
)
def test_a_bad_file_gives_one_clear_line_and_keeps_the_shown_volume(
    qtbot, tmp_path: Path, make, message
) -> None:
    panel = TomoPanel()
    qtbot.addWidget(panel)
    panel.open_path(write_volume(tmp_path / "good.npz")).join(30)
    qtbot.waitUntil(lambda: panel.volume is not None, timeout=10000)
    shown = panel.volume
    panel.open_path(make(tmp_path)).join(30)
    qtbot.waitUntil(lambda: "cannot show 3D result" in panel.message.text(), timeout=10000)
    assert message in panel.message.text() and "\n" not in panel.message.text()
    assert panel.volume is shown  # what was shown stays


def test_a_volume_without_voxel_size_says_so(qtbot, tmp_path: Path) -> None:
    np.savez(tmp_path / "b.npz", b=np.ones((3, 4, 4, 4), np.float32))
    assert load_volume(tmp_path / "b.npz").note.startswith("no valid pixel_size_nm")


def test_window_feeds_every_result_and_loads_the_announced_volume(qtbot, tmp_path: Path) -> None:
    window = MainWindow(StreamReceiver(None, None))
    qtbot.addWidget(window)
    panel = install(window)
    window.show()
    dock = window.findChild(QtWidgets.QDockWidget, "3D")
    census = window.findChild(QtWidgets.QDockWidget, "Census")
    qtbot.waitUntil(lambda: not census.visibleRegion().isEmpty(), timeout=5000)
    assert dock.visibleRegion().isEmpty()  # a tab behind the census plots
    assert any(
        a.text() == "Open 3D result…"
        for m in window.menuBar().actions()
        for a in m.menu().actions()
    )
    window.map_source.setCurrentText("refined only")  # instant results are not shown...
    path = write_volume(tmp_path / "tomo_sx_sy.npz", b_xyz=(0.0, -0.3, 0.1))
    tomo = {"series": {}, "volumes": [{"path": str(path), "series_x": "sx", "series_y": "sy"}]}
    window.receiver._put_result({}, tilt_header("tilt_y", "sy", 30.0, expected=None, tomo=tomo))
    window.refresh()
    assert panel.bars["tilt_y"].format() == "1 tilts  now +30.0°"  # ...but still counted
    qtbot.waitUntil(lambda: panel.volume is not None, timeout=10000)
    assert panel.volume.path == str(path)
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=5000)  # in front now
    np.testing.assert_allclose(panel.normal.image.image, 0.1)
    # -y is violet (hue 3/4) in the colour wheel of the 2D maps
    np.testing.assert_allclose(panel.in_plane.image.image[0, 0], [127.5, 0, 255], atol=1)
    window.shutdown()


def test_an_announced_volume_elsewhere_is_named(qtbot) -> None:
    panel = TomoPanel()
    qtbot.addWidget(panel)
    tomo = {"series": {}, "volumes": [{"path": "/engine/only/tomo_a_b.npz"}]}
    panel.on_result(view({"method": "sitie", "tomo": tomo}))
    assert "engine wrote /engine/only/tomo_a_b.npz" in panel.message.text()
