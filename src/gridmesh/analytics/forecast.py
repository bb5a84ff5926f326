"""Forecasters of one time series (kW): two baselines and a gradient-boosted model, plus the error metrics.

Every forecaster is trained once (``fit``), told about measurements as they arrive (``observe``, no
retraining) and asked at an issue time for the next steps (``predict``; ``predict_batch`` for many issue
times at once). A forecast issued at ``τ`` only ever reads observations *before* ``τ``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's own dependency

from gridmesh.analytics.features import DAY, calendar_features, lag_features, solar_features

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Horizon:
    """When forecasts are issued and which period they cover.

    A forecast issued at ``τ`` (every ``issue_every``, first at ``issue_at`` after midnight) covers
    ``[τ + lead, τ + lead + length)``.
    """

    name: str
    issue_at: timedelta
    issue_every: timedelta
    lead: timedelta
    length: timedelta
    latest: bool
    """Whether the model uses the latest observation at issue (intraday) or only daily lags (day-ahead)."""

    def steps(self, resolution: timedelta) -> tuple[int, int]:
        """``(lead, length)`` in steps of ``resolution``."""
        return self.lead // resolution, self.length // resolution

    def issue_times(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        """Scheduled issue times whose covered period lies within ``[start, end)``."""
        first = start.normalize() - DAY + self.issue_at
        times = pd.date_range(first, end, freq=self.issue_every)
        return times[(times + self.lead >= start) & (times + self.lead + self.length <= end)]

    def training_issues(self, targets: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DatetimeIndex:
        """For each target time, one scheduled issue time whose forecast covers it (drawn where several do)."""
        every, tiny = pd.Timedelta(self.issue_every), pd.Timedelta(1, unit="ns")
        phase = (targets - targets.normalize() - self.issue_at) % every  # time since the last issue
        first = (phase - self.lead) % every + self.lead  # smallest lead ≥ self.lead on the schedule
        count = ((self.lead + self.length - tiny - first) // every).to_numpy() + 1
        drawn = rng.integers(0, np.maximum(count, 1))
        return pd.DatetimeIndex(targets - first - drawn * every)


DAY_AHEAD = Horizon("day-ahead", timedelta(hours=12), timedelta(days=1), timedelta(hours=12), timedelta(days=1), False)
"""Issued at noon (day-ahead market gate closure) for the next day, 00:00–24:00: 12 to 36 hours ahead."""
INTRADAY = Horizon("intraday", timedelta(0), timedelta(hours=1), timedelta(0), timedelta(hours=6), True)
"""Issued every hour for the next six hours."""
HORIZONS = {h.name: h for h in (DAY_AHEAD, INTRADAY)}


class Forecaster(Protocol):
    """A forecaster of one series."""

    def fit(self, history: pd.Series) -> None:
        """Train on ``history`` (time-indexed, may have gaps) and remember it as observed."""

    def observe(self, values: pd.Series) -> None:
        """Record measurements (new values win over old ones); no retraining."""

    def predict(self, issue_time: pd.Timestamp, horizon_steps: int) -> FloatArray:
        """``horizon_steps`` values from the step starting at ``issue_time``."""

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        """``(len(issue_times), horizon_steps)`` forecasts, one row per issue time."""


class _SeriesForecaster(ABC):
    """Keeps the observation record that every forecaster reads its inputs from."""

    def __init__(self) -> None:
        self.observed = pd.Series(dtype=np.float64)
        self.resolution = pd.Timedelta(minutes=15)

    def fit(self, history: pd.Series) -> None:
        index = pd.DatetimeIndex(history.index)
        if len(index) < 2 or not index.is_monotonic_increasing or not index.is_unique:
            raise ValueError("history needs at least two time steps, in order and without duplicates")
        self.resolution = pd.Timedelta(np.diff(index.asi8).min(), unit="ns")
        self.observed = history.astype(np.float64)

    def observe(self, values: pd.Series) -> None:
        self.observed = values.astype(np.float64).combine_first(self.observed)

    def predict(self, issue_time: pd.Timestamp, horizon_steps: int) -> FloatArray:
        return np.asarray(self.predict_batch(pd.DatetimeIndex([issue_time]), horizon_steps)[0], dtype=np.float64)

    @abstractmethod
    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        """Forecasts ``(len(issue_times), horizon_steps)``, each from what was observed before its issue time."""

    def _targets(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
        """Flattened (target, issue) time pairs, issue-major."""
        issues = issue_times.repeat(horizon_steps)
        offsets = np.tile(np.arange(horizon_steps), len(issue_times)) * self.resolution
        return issues + pd.TimedeltaIndex(offsets), issues


class Persistence(_SeriesForecaster):
    """The last value observed before issue, held flat."""

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        known = self.observed.dropna()  # the latest *known* value, however old
        last = known.reindex(issue_times - self.resolution, method="ffill").to_numpy(dtype=np.float64)
        return np.repeat(last[:, None], horizon_steps, axis=1)


class SeasonalNaive(_SeriesForecaster):
    """The value one ``period`` earlier (several periods where one is not yet known at issue)."""

    def __init__(self, period: timedelta = timedelta(days=1)) -> None:
        super().__init__()
        self.period = pd.Timedelta(period)

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        targets, issues = self._targets(issue_times, horizon_steps)
        back = ((targets - issues) // self.period + 1) * self.period  # latest season known at issue
        values = self.observed.reindex(targets - back).to_numpy(dtype=np.float64)
        return values.reshape(len(issue_times), horizon_steps)


DAY_AHEAD_FEATURES = ("lag_day", "lag_week", "mean_day")
INTRADAY_FEATURES = (*DAY_AHEAD_FEATURES, "last", "last_anomaly", "lead")


class GradientBoosting(_SeriesForecaster):
    """scikit-learn's ``HistGradientBoostingRegressor`` on calendar, solar and lag features.

    One model per series and horizon. Each training row is a target step paired with one issue time of
    the horizon's schedule that covers it (drawn at random where several do), so that lag features are
    exactly those available when a forecast is issued. ``train_every`` keeps every n-th row (faster).
    Forecasts are clipped to the range seen in training (no negative PV at night). ``max_iter`` boosting
    rounds, no early stopping: on the demo, scikit-learn's automatic early stopping never stopped before
    200 rounds, and its random 10 % validation rows are neighbours in time of training rows anyway.

    ``threads`` caps scikit-learn's OpenMP threads (None: all cores). One is the default: a model of one
    series is small, and OpenMP threads that spin on a shared CPU (parallel tests, a study running
    beside) made training 20 times slower when measured.
    """

    def __init__(
        self,
        horizon: Horizon,
        *,
        location: tuple[float, float] | None = None,
        utc_offset_h: float = 1.0,
        max_iter: int = 200,
        train_every: int = 1,
        seed: int = 0,
        threads: int | None = 1,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.location = location  # (lat, lon) in degrees; None: no solar features
        self.utc_offset_h = utc_offset_h
        self.train_every = train_every
        self.seed = seed
        self.threads = threads
        self.model = HistGradientBoostingRegressor(
            max_iter=max_iter, learning_rate=0.1, early_stopping=False, random_state=seed
        )
        self.bounds = (-np.inf, np.inf)

    def fit(self, history: pd.Series) -> None:
        super().fit(history)
        known = self.observed.dropna().iloc[:: self.train_every]
        targets = pd.DatetimeIndex(known.index)
        issues = self.horizon.training_issues(targets, np.random.default_rng(self.seed))
        features = self.features(targets, issues)
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            self.model.fit(features, known.to_numpy())
        self.bounds = (float(known.min()), float(known.max()))

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        targets, issues = self._targets(issue_times, horizon_steps)
        features = self.features(targets, issues)
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            values = np.asarray(self.model.predict(features), dtype=np.float64)
        return np.clip(values, *self.bounds).reshape(len(issue_times), horizon_steps)

    def features(self, targets: pd.DatetimeIndex, issues: pd.DatetimeIndex) -> pd.DataFrame:
        """The model's inputs for (target, issue) time pairs: all known at issue time."""
        lags = lag_features(self.observed, targets, issues, resolution=self.resolution)
        chosen = INTRADAY_FEATURES if self.horizon.latest else DAY_AHEAD_FEATURES
        parts = [calendar_features(targets), lags[list(chosen)]]
        if self.location is not None:
            lat, lon = self.location
            parts.append(solar_features(targets, lat, lon, resolution=self.resolution, utc_offset_h=self.utc_offset_h))
        return pd.concat(parts, axis=1).reset_index(drop=True)


def nmae(actual: FloatArray, forecast: FloatArray, norm: float) -> float:
    """Mean absolute error divided by ``norm`` (installed capacity for generation, peak for load)."""
    return float(np.mean(np.abs(_errors(actual, forecast, norm)))) / norm


def nrmse(actual: FloatArray, forecast: FloatArray, norm: float) -> float:
    """Root-mean-square error divided by ``norm`` (installed capacity for generation, peak for load)."""
    return float(np.sqrt(np.mean(_errors(actual, forecast, norm) ** 2))) / norm


def _errors(actual: FloatArray, forecast: FloatArray, norm: float) -> FloatArray:
    actual, forecast = np.asarray(actual, dtype=np.float64), np.asarray(forecast, dtype=np.float64)
    if actual.shape != forecast.shape or actual.size == 0:
        raise ValueError(f"actual {actual.shape} and forecast {forecast.shape} must be non-empty and equal in shape")
    if not norm > 0:
        raise ValueError(f"normalisation must be positive, got {norm}")
    return forecast - actual
