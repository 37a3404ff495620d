"""The demo runs end to end, writes valid PNGs and reports real accuracies."""

from __future__ import annotations

import pytest

from lorentz_live.demo import run, run_live


def test_demo_writes_pngs_and_scores(tmp_path) -> None:
    scores = run(tmp_path, size=96, noise=0.1, seed=1)
    for name in ("image", "phi_true", "phi_sitie", "b_true", "b_sitie", "colour_wheel_legend"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 200
    assert 0.5 < scores["b"] <= 1.0
    assert 0.3 < scores["phase"] <= 1.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_live_demo_runs_bridge_and_engine(tmp_path) -> None:
    scores = run_live(tmp_path, size=48, frames=6, fps=2.0)
    assert scores["frames"] >= 2
    assert scores["frames"] + scores["dropped"] == 6
    for name in ("live_phi_m", "live_b", "live_b_true", "colour_wheel_legend"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "truth.h5").exists()
    assert -1.0 <= scores["b"] <= 1.0


def test_demo_falls_back_to_the_status_line_without_a_display(monkeypatch, capsys) -> None:
    from lorentz_live import demo

    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    assert demo.display_available() is False
    calls = []
    monkeypatch.setattr(demo, "run_live", lambda out, **kw: calls.append(kw) or _scores())
    assert demo.main(["--out", "unused", "--frames", "2"]) == 0
    assert calls[0]["viewer"] is None
    assert "no display" in capsys.readouterr().out
    monkeypatch.setenv("DISPLAY", ":0")
    assert demo.main(["--out", "unused", "--frames", "2"]) == 0
    assert calls[1]["viewer"] == []


def _scores() -> dict[str, float]:
    return {"frames": 2, "dropped": 0, "fps": 1.0, "seq": 1, "phase": 0.5, "b": 0.5}
