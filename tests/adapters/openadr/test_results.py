"""Event results from opt answers, telemetry and baselines (hand-computed)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from gridmesh.adapters.openadr.events import DrEvent, DrSignal
from gridmesh.adapters.openadr.results import Opt, event_result, readings_series
from gridmesh.analytics.dr_baseline import BaselineMethod

START = dt.datetime(2026, 3, 4, 17, tzinfo=dt.UTC)  # a Wednesday
HALF_HOUR = dt.timedelta(minutes=30)


def _history(kw: float) -> pd.Series:
    """``kw`` on every 15-min interval of the 20 days before the event day."""
    index = pd.date_range(START.date() - dt.timedelta(days=20), START.date(), freq="15min", tz="UTC",
                          inclusive="left")
    return pd.Series(kw, index=index)


def test_result_per_ven_and_totals() -> None:
    event = DrEvent("e", DrSignal.LOAD_DISPATCH, START, HALF_HOUR, {"a": 5.0, "b": 4.0, "c": 3.0, "d": 1.0})
    actual = pd.Series([15.0, 16.0], index=pd.date_range(START, periods=2, freq="15min"))
    result = event_result(
        event, cancelled=False, opts={"a": Opt.IN, "b": Opt.OUT, "c": Opt.IN},
        actual_kw={"a": actual, "c": actual.iloc[:0]}, history_kw={"a": _history(20.0), "c": _history(20.0)},
        method=BaselineMethod(),
    )
    a, b, c, d = result.vens
    assert a.delivered_kwh == pytest.approx((5.0 + 4.0) * 0.25)  # 20 − 15 and 20 − 16 kW for 15 min each
    assert a.mean_reduction_kw == pytest.approx(4.5)
    assert a.percent_of_requested == pytest.approx(90.0)
    assert (b.opt, b.delivered_kwh) == (Opt.OUT, None)
    assert c.delivered_kwh is None and "no telemetry" in c.note
    assert d.opt is Opt.PENDING
    assert result.opted_in == ("a", "c")
    assert result.requested_kw == pytest.approx(8.0)  # a and c opted in
    assert result.delivered_kwh == pytest.approx(2.25)


def test_price_event_has_no_kw_request_and_cancelled_events_are_not_measured() -> None:
    event = DrEvent("p", DrSignal.ELECTRICITY_PRICE, START, HALF_HOUR, {"a": 0.4})
    result = event_result(event, cancelled=True, opts={"a": Opt.IN}, actual_kw={}, history_kw={},
                          method=BaselineMethod())
    assert result.requested_kw is None and result.delivered_kwh is None
    assert result.vens[0].note == "cancelled"


def test_readings_are_averaged_per_interval() -> None:
    t0 = START
    samples = [(t0, 10.0), (t0 + dt.timedelta(minutes=5), 14.0), (t0 + dt.timedelta(minutes=20), 8.0)]
    series = readings_series(samples, dt.timedelta(minutes=15))
    assert series.to_dict() == {pd.Timestamp(t0): 12.0, pd.Timestamp(t0) + pd.Timedelta(minutes=15): 8.0}
