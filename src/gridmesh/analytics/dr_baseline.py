"""Customer baseline load (CBL) and the measured response to a demand-response event.

A DR event's effect cannot be metered directly: it is the difference between what the site would
have drawn (the baseline) and what it drew. The baseline here is the common "X of Y" family:

* take the ``y`` most recent *eligible* days before the event day (weekdays by default, never a day in
  ``excluded_days`` — past event days and holidays — and never a day with a gap in the needed intervals);
* of those, keep the ``x`` days with the highest mean load over the event intervals (all of them when
  ``x == y``: the "10 of 10" baseline of NYISO/PJM style programmes);
* the baseline of each event interval is the mean of the same interval on the kept days;
* optionally adjust it to the event day's own level, measured over a window before the event
  (``adjustment_window``: e.g. from 4 h to 1 h before the start): multiplicative (actual/baseline ratio)
  or additive (actual − baseline, kW), capped to ``± cap`` (a fraction: 0.2 = ±20 %).

Loads are average kW per interval (load convention) on a regular, time-zone aware grid whose labels
are interval starts; days are calendar days in that time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.errors import ProfileError

HOUR = dt.timedelta(hours=1)


class Adjustment(StrEnum):
    """Same-day adjustment of the baseline."""

    NONE = "none"
    ADDITIVE = "additive"
    MULTIPLICATIVE = "multiplicative"


@dataclass(frozen=True)
class BaselineMethod:
    """An "X of Y" baseline (defaults: 10 of 10, weekdays, no adjustment, ±20 % cap when adjusted)."""

    x: int = 10
    y: int = 10
    adjustment: Adjustment = Adjustment.NONE
    cap: float = 0.2
    adjustment_window: tuple[dt.timedelta, dt.timedelta] = (4 * HOUR, 1 * HOUR)
    weekdays_only: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.x <= self.y:
            raise ValueError(f"baseline: need 1 <= x <= y, got x={self.x}, y={self.y}")
        if self.cap < 0:
            raise ValueError(f"baseline: cap must be >= 0, got {self.cap}")
        far, near = self.adjustment_window
        if not far > near >= dt.timedelta(0):
            raise ValueError(f"baseline: adjustment window must be (far, near) before the start, far > near >= 0, "
                             f"got {self.adjustment_window}")


@dataclass(frozen=True)
class Baseline:
    """The baseline (kW per event interval), the days averaged, and the adjustment applied."""

    kw: pd.Series
    interval: dt.timedelta
    days: tuple[dt.date, ...]
    adjustment: float  # the factor (multiplicative), the kW offset (additive), 0 or 1 when none


@dataclass(frozen=True)
class MeasuredResponse:
    """Baseline − actual over an event: kW per interval, kWh in total, and the share of the request."""

    reduction_kw: pd.Series
    energy_kwh: float
    mean_kw: float
    percent_of_requested: float | None


def event_grid(start: dt.datetime, end: dt.datetime, interval: dt.timedelta) -> pd.DatetimeIndex:
    """Interval starts covering ``[start, end)`` (aware timestamps)."""
    return pd.date_range(start, end, freq=pd.Timedelta(interval), inclusive="left")


def _interval_of(index: pd.DatetimeIndex) -> pd.Timedelta:
    steps = np.diff(index.asi8)
    if steps.size == 0 or (steps <= 0).any():
        raise ProfileError("baseline: need at least two increasing interval starts to know the interval")
    return pd.Timedelta(int(steps.min()), unit="ns")


def _values_at(
    history: pd.Series, days: pd.DatetimeIndex, offsets_ns: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """history at ``day + offset`` for every (day, offset): a days × offsets array, NaN where missing."""
    times = days.asi8[:, None] + offsets_ns[None, :]
    stamps = pd.DatetimeIndex(times.ravel(), tz=days.tz)
    return history.reindex(stamps).to_numpy(dtype=float).reshape(times.shape)


def baseline_kw(
    history_kw: pd.Series,
    start: dt.datetime,
    end: dt.datetime,
    *,
    method: BaselineMethod = BaselineMethod(),
    excluded_days: Collection[dt.date] = (),
) -> Baseline:
    """The baseline for the event ``[start, end)`` from ``history_kw`` (kW per interval).

    ``history_kw`` holds the past days and, for an adjusted baseline, the event day up to the start.
    Raises ``ProfileError`` when fewer than ``method.x`` eligible days (or no adjustment-window data).
    """
    index = history_kw.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ProfileError("baseline: history must be indexed by time-zone aware timestamps")
    history = history_kw[~index.duplicated(keep="last")].sort_index()
    index = pd.DatetimeIndex(history.index)
    interval = _interval_of(index)
    tz = index.tz
    start_ts, end_ts = pd.Timestamp(start).tz_convert(tz), pd.Timestamp(end).tz_convert(tz)
    event_day = start_ts.normalize()
    targets = event_grid(start_ts, end_ts, interval.to_pytimedelta())
    far, near = method.adjustment_window
    window = event_grid(start_ts - far, start_ts - near, interval.to_pytimedelta())
    adjusting = method.adjustment is not Adjustment.NONE
    needed = pd.DatetimeIndex(targets.append(window) if adjusting else targets)
    offsets_ns = needed.asi8 - event_day.value

    days = pd.DatetimeIndex(index.normalize().unique())
    days = days[days < event_day]
    if method.weekdays_only:
        days = days[days.dayofweek < 5]
    if excluded_days:
        days = days[~np.isin(days.date, np.array(list(excluded_days), dtype=object))]
    values = _values_at(history, days, offsets_ns)
    complete = np.flatnonzero(~np.isnan(values).any(axis=1))[-method.y:]
    days, values = days[complete], values[complete]
    if len(days) < method.x:
        raise ProfileError(f"baseline: {len(days)} eligible day(s) with complete data before {event_day.date()}, "
                           f"the {method.x}-of-{method.y} baseline needs {method.x}")
    n_event = len(targets)
    if method.x < method.y:  # "high X of Y": the x days with the highest load over the event intervals
        order = np.argsort(-values[:, :n_event].mean(axis=1), kind="stable")[: method.x]
        keep = np.sort(order)
        days, values = days[keep], values[keep]
    profile = values.mean(axis=0)
    base = profile[:n_event]
    factor = 0.0 if method.adjustment is Adjustment.ADDITIVE else 1.0
    if adjusting:
        actual = history.reindex(window).to_numpy(dtype=float)
        if actual.size == 0 or np.isnan(actual).any():
            raise ProfileError(f"baseline: no complete data on {event_day.date()} in the adjustment window "
                               f"{window[0] if len(window) else start_ts} – {start_ts - near}")
        base_window = profile[n_event:]
        if method.adjustment is Adjustment.MULTIPLICATIVE:
            ratio = actual.mean() / base_window.mean() if base_window.mean() > 0 else 1.0
            factor = float(np.clip(ratio, 1.0 - method.cap, 1.0 + method.cap))
            base = base * factor
        else:
            bound = method.cap * abs(base_window.mean())
            factor = float(np.clip((actual - base_window).mean(), -bound, bound))
            base = base + factor
    return Baseline(pd.Series(base, index=targets, name="baseline_kw"), interval.to_pytimedelta(), tuple(days.date),
                    factor)


def measured_response(
    actual_kw: pd.Series,
    baseline: Baseline,
    *,
    requested_kw: float | None = None,
) -> MeasuredResponse:
    """Reduction = baseline − actual on the baseline's intervals (kW), its energy (kWh) and, when a kW
    reduction was requested, the mean reduction as a percentage of it. Missing actuals raise."""
    actual = actual_kw.reindex(baseline.kw.index).to_numpy(dtype=float)
    if np.isnan(actual).any():
        missing = baseline.kw.index[np.isnan(actual)]
        raise ProfileError(f"measured response: no actual load for {len(missing)} event interval(s), "
                           f"first {missing[0]}")
    reduction = baseline.kw.to_numpy(dtype=float) - actual
    hours = baseline.interval / HOUR
    mean_kw = float(reduction.mean())
    percent = None if not requested_kw else 100.0 * mean_kw / requested_kw
    return MeasuredResponse(
        pd.Series(reduction, index=baseline.kw.index, name="reduction_kw"),
        float(reduction.sum() * hours),
        mean_kw,
        percent,
    )
