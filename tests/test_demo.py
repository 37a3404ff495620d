"""The demo runs end to end, writes valid PNGs and reports real accuracies."""

from __future__ import annotations

from lorentz_live.demo import run


def test_demo_writes_pngs_and_scores(tmp_path) -> None:
    scores = run(tmp_path, size=96, noise=0.1, seed=1)
    for name in ("image", "phi_true", "phi_sitie", "b_true", "b_sitie", "colour_wheel_legend"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 200
    assert 0.5 < scores["b"] <= 1.0
    assert 0.3 < scores["phase"] <= 1.0
