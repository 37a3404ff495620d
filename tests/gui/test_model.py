"""The viewer's headless model (no Qt): bounded histories, rates, defocus wording."""

from __future__ import annotations

import numpy as np
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


def test_display_arrays_span_the_history_in_at_most_max_points_and_keep_their_points() -> None:
    series = Series(maxlen=1000)
    for i in range(1500):  # t = running index of the point
        series.append(float(i), 2.0 * i)
        t, y = series.display_arrays(max_points=64)
        assert len(t) <= 64 and t[-1] == i and np.array_equal(y, 2.0 * t)
        oldest = max(0, i - 999)
        steps = np.diff(t[:-1])
        stride = steps[0] if len(steps) else 1.0
        # one power-of-two stride counted from the first point ever: a shown point
        # stays shown as long as the stride does
        assert np.all(steps == stride) and np.all(t[:-1] % stride == 0)
        assert t[0] - oldest < stride  # the whole kept history, not just its end
    assert stride == 16.0
    assert np.array_equal(Series(maxlen=10).display_arrays(4)[0], [])


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
