"""Held-out weeks and the scoring of every method against the baselines."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from gridmesh.analytics.evaluation import Method, evaluate_target, held_out_weeks, methods_for
from gridmesh.analytics.forecast import DAY_AHEAD, INTRADAY, Horizon, Persistence
from gridmesh.analytics.targets import Target, TargetKind
from gridmesh.errors import ProfileError

YEAR = pd.date_range("2016-01-01", periods=35_136, freq="15min")


def test_held_out_weeks_are_mondays_spread_over_the_seasons() -> None:
    weeks = held_out_weeks(YEAR, 4)
    assert len(weeks) == 4
    assert all(w.dayofweek == 0 and w == w.normalize() for w in weeks)
    assert [w.quarter for w in weeks] == [1, 2, 3, 4]
    assert weeks[0] >= YEAR[0] + timedelta(days=8)  # a week of lags and the day-ahead issue come before
    assert weeks[-1] + timedelta(days=7) <= YEAR[-1] + timedelta(minutes=15)


def test_held_out_weeks_refuse_too_many_or_none() -> None:
    five_weeks = YEAR[: 35 * 96]
    assert len(held_out_weeks(five_weeks, 1)) == 1
    with pytest.raises(ProfileError, match="room for at most 1 test week"):
        held_out_weeks(five_weeks, 2)
    with pytest.raises(ValueError, match="at least one"):
        held_out_weeks(YEAR, 0)


def _target(weeks: int = 20) -> Target:
    index = pd.date_range("2016-01-04", periods=weeks * 7 * 96, freq="15min")
    hour = (index.hour + index.minute / 60).to_numpy()
    noise = np.random.default_rng(3).normal(0, 2, len(index))
    series = pd.Series(50 + 30 * np.sin(2 * np.pi * (hour - 9) / 24) + noise, index=index)
    return Target("load/test", TargetKind.LOAD, series, float(series.max()))


class Spy(Persistence):
    """Persistence that records what it was trained on and asked for."""

    seen: list[pd.DatetimeIndex] = []  # noqa: RUF012 - one shared record per test
    asked: list[pd.DatetimeIndex] = []  # noqa: RUF012

    def fit(self, history: pd.Series) -> None:
        super().fit(history)
        Spy.seen.append(pd.DatetimeIndex(history.index))

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> np.ndarray:
        Spy.asked.append(issue_times)
        return super().predict_batch(issue_times, horizon_steps)


def test_test_weeks_never_reach_training() -> None:
    target = _target()
    weeks = held_out_weeks(pd.DatetimeIndex(target.series.index), 2)
    Spy.seen, Spy.asked = [], []
    evaluate_target(target, INTRADAY, weeks, [Method("spy", True, Spy)])
    (trained,), (asked,) = Spy.seen, Spy.asked
    for week in weeks:
        assert not ((trained >= week) & (trained < week + timedelta(days=7))).any()
    assert len(trained) == len(target.series) - 2 * 7 * 96
    assert len(asked) == 2 * (7 * 24 - 5)
    assert all(any(w <= t < w + timedelta(days=7) for w in weeks) for t in asked)


@pytest.mark.parametrize("horizon", [DAY_AHEAD, INTRADAY])
def test_scores_name_the_best_baseline_and_the_gbm_has_skill(horizon: Horizon) -> None:
    target = _target()
    weeks = held_out_weeks(pd.DatetimeIndex(target.series.index), 2)
    methods = methods_for(target, horizon, max_iter=40, train_every=2)
    done: list[str] = []
    result = evaluate_target(target, horizon, weeks, methods, progress=done.append)
    assert done == ["persistence", "same-time-yesterday", "same-time-last-week", "gbm"]
    scores = {s.method: s for s in result.scores}
    baselines = [s for s in result.scores if s.baseline]
    assert result.best_baseline == min(baselines, key=lambda s: s.nrmse).method
    assert scores[result.best_baseline].skill == 0.0
    assert all(s.skill <= 0.0 for s in baselines)
    assert scores["gbm"].skill > 0.2
    assert all(np.isfinite([s.nmae, s.nrmse, s.skill]).all() for s in result.scores)
    assert all(0 < s.nmae <= s.nrmse for s in result.scores)  # MAE never exceeds RMSE
