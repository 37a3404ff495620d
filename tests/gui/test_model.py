"""The viewer's headless model (no Qt): bounded histories, rates, defocus wording."""

from __future__ import annotations

import pytest

from gui.model import (
    SIGN_CONVENTIONS,
    Rate,
    Series,
    census_summary,
    defocus_from_display,
    defocus_to_display,
    focus_words,
    nice_length_nm,
)


def test_series_keeps_the_newest_points_in_order() -> None:
    series = Series(maxlen=4)
    for i in range(6):
        series.append(float(i), 10.0 * i)
    t, y = series.arrays()
    assert list(t) == [2.0, 3.0, 4.0, 5.0] and list(y) == [20.0, 30.0, 40.0, 50.0]
    assert len(series) == 4 and series.last == 50.0


def test_rate_counts_events_per_second_and_decays_when_they_stop() -> None:
    rate = Rate(window_s=5.0)
    for i in range(11):
        rate.tick(i * 0.1)
    assert rate.per_second(1.0) == pytest.approx(10.0)
    assert rate.per_second(60.0) < 0.5


@pytest.mark.parametrize("convention", SIGN_CONVENTIONS)
def test_defocus_display_round_trip(convention: str) -> None:
    shown = defocus_to_display(-8.0e5, convention)
    assert shown == (-8.0e5 if convention == SIGN_CONVENTIONS[0] else 8.0e5)
    assert defocus_from_display(shown, convention) == -8.0e5


def test_words_and_scale_bars() -> None:
    assert focus_words(-1.0e6) == "underfocus 1.00 mm"
    assert focus_words(2.5e5) == "overfocus 250 µm"
    assert focus_words(0.0) == "in focus"
    assert [nice_length_nm(f) for f in (512.0, 1000.0, 8192.0)] == [100.0, 200.0, 1000.0]
    assert census_summary({"phase": "bubbles", "count": 3, "diameter_mean_nm": None}) == (
        "bubbles: 3 bubbles"
    )
