"""Held-out evaluation: train on the profile period minus a few test weeks, score forecasts on those weeks.

The test weeks are whole weeks (Monday to Sunday) spread evenly over the period, so that every season
is scored. Models never see a test week in training (lags that would read one are missing, not
leaked); while forecasting inside a test week they read the week's measurements *before* each issue
time, as they would in operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd

from gridmesh.analytics.features import WEEK
from gridmesh.analytics.forecast import Forecaster, GradientBoosting, Horizon, Persistence, SeasonalNaive, nmae, nrmse
from gridmesh.analytics.targets import Target, TargetKind
from gridmesh.errors import ProfileError

HISTORY = timedelta(days=8)
"""History needed before the first test week: a week for the weekly lag and a day for the day-ahead issue."""


@dataclass(frozen=True)
class Score:
    """Errors of one method on one target; ``skill`` = 1 − nRMSE / nRMSE of the best baseline."""

    method: str
    baseline: bool
    nmae: float
    nrmse: float
    skill: float


@dataclass(frozen=True)
class TargetScores:
    """Every method's score on one target."""

    target: str
    kind: TargetKind
    norm_kw: float
    best_baseline: str
    scores: tuple[Score, ...]
    seconds: float


@dataclass(frozen=True)
class Method:
    """A named way to build a fresh forecaster; baselines are what a model has to beat."""

    name: str
    baseline: bool
    make: Callable[[], Forecaster]


def held_out_weeks(index: pd.DatetimeIndex, count: int) -> list[pd.Timestamp]:
    """``count`` Mondays spread evenly over ``index``; each starts a test week.

    At most half the whole weeks may be held out, so that training keeps most of the data.
    """
    if count < 1:
        raise ValueError("hold out at least one test week")
    mondays = pd.date_range((index[0] + HISTORY).ceil("D"), index[-1], freq="W-MON")
    mondays = mondays[mondays + WEEK <= index[-1] + (index[1] - index[0])]
    room = len(mondays) // 2
    if count > room:
        days = (index[-1] - index[0]).days + 1
        raise ProfileError(
            f"the profiles cover {days} days: room for at most {room} test week(s), {count} asked; "
            "ask for fewer test weeks or give a scenario with longer profiles"
        )
    return [mondays[int((i + 0.5) * len(mondays) / count)] for i in range(count)]


def methods_for(
    target: Target,
    horizon: Horizon,
    *,
    location: tuple[float, float] | None = None,
    max_iter: int = 200,
    train_every: int = 1,
) -> list[Method]:
    """Persistence, seasonal naive (a day; also a week for load) and the gradient-boosted model."""
    names = {timedelta(days=1): "same-time-yesterday", timedelta(days=7): "same-time-last-week"}
    methods = [Method("persistence", True, Persistence)]
    methods += [Method(names[p], True, partial(SeasonalNaive, p)) for p in target.seasons]
    gbm = partial(GradientBoosting, horizon, location=location, max_iter=max_iter, train_every=train_every)
    return [*methods, Method("gbm", False, gbm)]


def evaluate_target(
    target: Target,
    horizon: Horizon,
    weeks: Sequence[pd.Timestamp],
    methods: Sequence[Method],
    *,
    progress: Callable[[str], None] | None = None,
) -> TargetScores:
    """Fit every method on the series without the test weeks and score it on them."""
    started = time.perf_counter()
    series = target.series
    index = pd.DatetimeIndex(series.index)
    resolution = index[1] - index[0]
    held = np.zeros(len(index), dtype=bool)
    for week in weeks:
        held |= (index >= week) & (index < week + WEEK)
    issues = pd.DatetimeIndex(np.concatenate([horizon.issue_times(w, w + WEEK).to_numpy() for w in weeks]))
    lead, length = horizon.steps(resolution)
    offsets = pd.TimedeltaIndex(np.tile(np.arange(lead, lead + length), len(issues)) * resolution)
    actual = series.reindex(issues.repeat(length) + offsets).to_numpy(dtype=np.float64)
    errors: list[tuple[Method, float, float]] = []
    for method in methods:
        forecaster = method.make()
        forecaster.fit(series[~held])
        forecaster.observe(series)
        forecast = forecaster.predict_batch(issues, lead + length)[:, lead:].ravel()
        errors.append((method, nmae(actual, forecast, target.norm_kw), nrmse(actual, forecast, target.norm_kw)))
        if progress is not None:
            progress(method.name)
    best, reference = min(((m, rmse) for m, _, rmse in errors if m.baseline), key=lambda e: e[1])
    skill = [1 - rmse / reference if reference > 0 else 0.0 for _, _, rmse in errors]
    scores = tuple(Score(m.name, m.baseline, mae, rmse, s) for (m, mae, rmse), s in zip(errors, skill, strict=True))
    return TargetScores(target.name, target.kind, target.norm_kw, best.name, scores, time.perf_counter() - started)
