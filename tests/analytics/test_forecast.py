"""Horizons, the baselines, the gradient-boosted model and the error metrics."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from gridmesh.analytics.forecast import (
    DAY_AHEAD,
    INTRADAY,
    GradientBoosting,
    Horizon,
    Persistence,
    SeasonalNaive,
    nmae,
    nrmse,
)

STEP = timedelta(minutes=15)


def daily_pattern(days: int = 56, *, seed: int = 1) -> pd.Series:
    """A clear daily shape (evening peak), lower at weekends, plus noise: what a load looks like."""
    index = pd.date_range("2016-01-04", periods=days * 96, freq=STEP)
    hour = (index.hour + index.minute / 60).to_numpy()
    shape = 1.0 + 0.8 * np.exp(-(((hour - 19) / 2.5) ** 2)) + 0.4 * np.exp(-(((hour - 8) / 1.5) ** 2))
    weekend = np.where(index.dayofweek.to_numpy() >= 5, 0.8, 1.0)
    noise = np.random.default_rng(seed).normal(0, 0.05, len(index))
    return pd.Series(100 * shape * weekend * (1 + noise), index=index)


@pytest.mark.parametrize("horizon", [DAY_AHEAD, INTRADAY])
def test_training_issues_are_on_schedule_and_cover_their_target(horizon: Horizon) -> None:
    targets = pd.date_range("2016-03-01", periods=4 * 96, freq=STEP)
    issues = horizon.training_issues(targets, np.random.default_rng(0))
    lead = targets - issues
    assert (lead >= horizon.lead).all()
    assert (lead < horizon.lead + horizon.length).all()
    assert (
        (issues - issues.normalize() - horizon.issue_at) % pd.Timedelta(horizon.issue_every) == pd.Timedelta(0)
    ).all()


def test_issue_times_cover_the_week() -> None:
    start, end = pd.Timestamp("2016-03-07"), pd.Timestamp("2016-03-14")
    day_ahead = DAY_AHEAD.issue_times(start, end)
    assert list(day_ahead) == list(pd.date_range("2016-03-06 12:00", periods=7, freq="D"))
    intraday = INTRADAY.issue_times(start, end)
    assert intraday[0] == start
    assert intraday[-1] + INTRADAY.length == end
    assert len(intraday) == 7 * 24 - 5
    assert DAY_AHEAD.steps(STEP) == (48, 96)


def test_persistence_holds_the_last_known_value() -> None:
    series = daily_pattern(days=3)
    model = Persistence()
    model.fit(series)
    issue = pd.Timestamp("2016-01-05 10:00")
    forecast = model.predict(issue, 8)
    assert forecast.shape == (8,)
    assert (forecast == series[issue - STEP]).all()
    model.fit(series[series.index < "2016-01-05 06:00"])  # gap: the latest known value, however old
    assert model.predict(issue, 2).tolist() == [series["2016-01-05 05:45"]] * 2


def test_seasonal_naive_equals_the_value_one_day_earlier() -> None:
    series = daily_pattern(days=10)
    model = SeasonalNaive(timedelta(days=1))
    model.fit(series)
    issue = pd.Timestamp("2016-01-08 00:00")
    forecast = model.predict(issue, 96)
    np.testing.assert_array_equal(forecast, series[issue - pd.Timedelta(days=1) : issue - STEP].to_numpy())
    # 36 h ahead: yesterday's value at that time of day is not known yet, so the day before is used.
    late = model.predict(pd.Timestamp("2016-01-07 12:00"), 144)
    assert late[-1] == series[pd.Timestamp("2016-01-08 23:45") - pd.Timedelta(days=2)]
    weekly = SeasonalNaive(timedelta(days=7))
    weekly.fit(series)
    later = pd.Timestamp("2016-01-12 00:00")
    assert weekly.predict(later, 4).tolist() == series[later - pd.Timedelta(days=7) :].iloc[:4].tolist()


@pytest.mark.parametrize("horizon", [DAY_AHEAD, INTRADAY])
def test_gbm_beats_persistence_on_a_daily_pattern(horizon: Horizon) -> None:
    series = daily_pattern()
    train = series[series.index < "2016-02-22"]
    issues = horizon.issue_times(pd.Timestamp("2016-02-22"), pd.Timestamp("2016-02-29"))
    lead, length = horizon.steps(STEP)
    actual = np.concatenate([series[i + horizon.lead :].iloc[:length].to_numpy() for i in issues])
    errors = {}
    for name, model in {
        "persistence": Persistence(),
        "gbm": GradientBoosting(horizon, location=(52.5, 13.4), max_iter=60),
    }.items():
        model.fit(train)
        model.observe(series)
        forecast = model.predict_batch(issues, lead + length)[:, lead:].ravel()
        errors[name] = nmae(actual, forecast, float(series.max()))
    assert errors["gbm"] < 0.5 * errors["persistence"]
    assert errors["gbm"] < 0.05


def test_gbm_does_not_look_ahead_of_the_issue_time() -> None:
    series = daily_pattern(days=28)
    model = GradientBoosting(INTRADAY, max_iter=20)
    model.fit(series[series.index < "2016-01-25"])
    issue = pd.Timestamp("2016-01-27 09:00")
    model.observe(series)
    before = model.predict(issue, 24)
    tampered = series.copy()
    tampered[tampered.index >= issue] = 1e6
    model.observe(tampered)
    np.testing.assert_array_equal(model.predict(issue, 24), before)
    assert np.all(before >= series.min()) and np.all(before <= series.max())  # clipped to the training range


def test_fit_refuses_a_bad_history() -> None:
    index = pd.DatetimeIndex(["2016-01-01 00:00", "2016-01-01 00:00", "2016-01-01 00:15"])
    with pytest.raises(ValueError, match="duplicates"):
        Persistence().fit(pd.Series([1.0, 2.0, 3.0], index=index))


def test_metrics_on_hand_computed_arrays() -> None:
    actual = np.array([0.0, 1.0, 2.0, 3.0])
    forecast = np.array([1.0, 1.0, 1.0, 1.0])  # errors 1, 0, -1, -2
    assert nmae(actual, forecast, 2.0) == pytest.approx(1.0 / 2.0)
    assert nrmse(actual, forecast, 2.0) == pytest.approx(np.sqrt(6 / 4) / 2.0)
    assert nmae(actual, actual, 1.0) == 0.0
    with pytest.raises(ValueError, match="shape"):
        nmae(actual, forecast[:3], 1.0)
    with pytest.raises(ValueError, match="positive"):
        nrmse(actual, forecast, 0.0)
