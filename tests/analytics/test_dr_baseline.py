"""Customer baseline ("X of Y", same-day adjustment) and measured DR response, against hand-computed cases."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridmesh.analytics.dr_baseline import (
    Adjustment,
    BaselineMethod,
    baseline_kw,
    measured_response,
)
from gridmesh.errors import ProfileError

EVENT_DAY = dt.date(2026, 1, 21)  # a Wednesday
START = dt.datetime(2026, 1, 21, 14, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 21, 16, tzinfo=dt.UTC)  # two hourly intervals: 14:00 and 15:00


def day_level(day: dt.date) -> float:
    """A level per day that is not monotonic in time, so "highest X" differs from "most recent X"."""
    return 10.0 + (day.toordinal() * 7) % 11


def load(ts: pd.Timestamp) -> float:
    """Weekend days are far off so that including one would show."""
    return 1000.0 if ts.dayofweek >= 5 else day_level(ts.date()) + ts.hour


def history(days: int = 30) -> pd.Series:
    """Hourly load for the ``days`` days before the event day."""
    index = pd.date_range(pd.Timestamp(EVENT_DAY, tz="UTC") - pd.Timedelta(days=days), periods=days * 24, freq="h")
    return pd.Series([load(ts) for ts in index], index=index)


def weekdays_before(n: int) -> list[dt.date]:
    """The ``n`` weekdays before the event day, most recent first (the hand-made reference)."""
    out: list[dt.date] = []
    day = EVENT_DAY
    while len(out) < n:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def expected_10_of_10(days: list[dt.date]) -> list[float]:
    return [sum(day_level(d) + hour for d in days) / len(days) for hour in (14, 15)]


def test_ten_of_ten_averages_the_ten_most_recent_weekdays() -> None:
    result = baseline_kw(history(), START, END)
    days = weekdays_before(10)
    assert sorted(result.days) == sorted(days)
    np.testing.assert_allclose(result.kw.to_numpy(), expected_10_of_10(days))
    assert list(result.kw.index) == [pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(hours=1)]
    assert result.interval == dt.timedelta(hours=1)


def test_excluded_days_and_days_with_gaps_are_skipped() -> None:
    days = weekdays_before(12)
    excluded = {days[0]}  # yesterday was an event day
    gappy = history().drop(pd.Timestamp(days[1], tz="UTC") + pd.Timedelta(hours=15))  # one hour missing
    result = baseline_kw(gappy, START, END, excluded_days=excluded)
    expected_days = [d for d in days if d not in (days[0], days[1])][:10]
    assert sorted(result.days) == sorted(expected_days)
    np.testing.assert_allclose(result.kw.to_numpy(), expected_10_of_10(expected_days))


def test_high_x_of_y_keeps_the_highest_days() -> None:
    candidates = weekdays_before(10)
    top = sorted(candidates, key=lambda d: (-day_level(d), candidates.index(d)))[:4]
    result = baseline_kw(history(), START, END, method=BaselineMethod(x=4, y=10))
    assert sorted(result.days) == sorted(top)
    np.testing.assert_allclose(result.kw.to_numpy(), expected_10_of_10(top))


def _with_morning(scale: float, offset: float) -> pd.Series:
    """The event day from 10:00 to 13:00 at ``scale`` × the unadjusted baseline's same hours + ``offset``."""
    base = history()
    days = weekdays_before(10)
    window = pd.date_range(pd.Timestamp(EVENT_DAY, tz="UTC") + pd.Timedelta(hours=10), periods=3, freq="h")
    unadjusted = [sum(day_level(d) + ts.hour for d in days) / 10 for ts in window]
    morning = pd.Series([scale * u + offset for u in unadjusted], index=window)
    return base.combine_first(morning)


@pytest.mark.parametrize(("scale", "factor"), [(1.1, 1.1), (1.5, 1.2), (0.5, 0.8)])
def test_multiplicative_adjustment_is_the_window_ratio_capped(scale: float, factor: float) -> None:
    method = BaselineMethod(adjustment=Adjustment.MULTIPLICATIVE, cap=0.2)  # window 10:00–13:00
    result = baseline_kw(_with_morning(scale, 0.0), START, END, method=method)
    assert result.adjustment == pytest.approx(factor)
    np.testing.assert_allclose(result.kw.to_numpy(), np.array(expected_10_of_10(weekdays_before(10))) * factor)


def test_additive_adjustment_is_the_window_difference_capped() -> None:
    days = weekdays_before(10)
    window_mean = sum(day_level(d) + h for d in days for h in (10, 11, 12)) / 30
    method = BaselineMethod(adjustment=Adjustment.ADDITIVE, cap=0.2)
    small = baseline_kw(_with_morning(1.0, 2.0), START, END, method=method)
    assert small.adjustment == pytest.approx(2.0)
    np.testing.assert_allclose(small.kw.to_numpy(), np.array(expected_10_of_10(days)) + 2.0)
    large = baseline_kw(_with_morning(1.0, 50.0), START, END, method=method)
    assert large.adjustment == pytest.approx(0.2 * window_mean)


def test_too_little_history_or_no_adjustment_data_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="10-of-10 baseline needs 10"):
        baseline_kw(history(days=7), START, END)
    with pytest.raises(ProfileError, match="adjustment window"):
        baseline_kw(history(), START, END, method=BaselineMethod(adjustment=Adjustment.ADDITIVE))
    with pytest.raises(ValueError, match="x <= y"):
        BaselineMethod(x=11, y=10)


def test_measured_response_per_interval_energy_and_share() -> None:
    result = baseline_kw(history(), START, END)
    base = result.kw.to_numpy()
    actual = pd.Series(base - np.array([3.0, 1.0]), index=result.kw.index)
    response = measured_response(actual, result, requested_kw=4.0)
    np.testing.assert_allclose(response.reduction_kw.to_numpy(), [3.0, 1.0])
    assert response.energy_kwh == pytest.approx(4.0)  # 3 kW × 1 h + 1 kW × 1 h
    assert response.mean_kw == pytest.approx(2.0)
    assert response.percent_of_requested == pytest.approx(50.0)
    assert measured_response(actual, result).percent_of_requested is None
    with pytest.raises(ProfileError, match="no actual load"):
        measured_response(actual.iloc[:1], result)
