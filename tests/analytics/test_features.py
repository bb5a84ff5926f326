"""Calendar encodings, holidays, solar geometry and lag alignment (no look-ahead)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from gridmesh.analytics.features import (
    calendar_features,
    clear_sky_ghi,
    easter_sunday,
    german_holidays,
    lag_features,
    solar_elevation,
    solar_features,
)

STEP = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("year", "easter"), [(2016, date(2016, 3, 27)), (2019, date(2019, 4, 21)), (2024, date(2024, 3, 31))]
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_german_holidays_2016() -> None:
    expected = {
        date(2016, 1, 1),
        date(2016, 3, 25),  # Good Friday
        date(2016, 3, 28),  # Easter Monday
        date(2016, 5, 1),
        date(2016, 5, 5),  # Ascension Day
        date(2016, 5, 16),  # Whit Monday
        date(2016, 10, 3),
        date(2016, 12, 25),
        date(2016, 12, 26),
    }
    assert german_holidays([2016]) == expected


def test_calendar_encodings() -> None:
    times = pd.DatetimeIndex(["2016-03-24 00:00", "2016-03-24 06:00", "2016-03-25 12:00", "2016-03-26 18:00"])
    cal = calendar_features(times)
    np.testing.assert_allclose(cal["tod_sin"], [0, 1, 0, -1], atol=1e-12)
    np.testing.assert_allclose(cal["tod_cos"], [1, 0, -1, 0], atol=1e-12)
    assert cal["day_of_week"].tolist() == [3, 3, 4, 5]  # Thursday, Thursday, Friday, Saturday
    assert cal["weekend"].tolist() == [0, 0, 0, 1]
    assert cal["holiday"].tolist() == [0, 0, 1, 0]  # Good Friday
    assert cal["day_type"].tolist() == [0, 0, 2, 1]  # workday, workday, holiday like Sunday, Saturday
    # Quarter hours are distinct, and the encoding has no jump at midnight.
    quarter = calendar_features(pd.date_range("2016-01-01", periods=97, freq=STEP))
    assert (
        len({(round(s, 9), round(c, 9)) for s, c in zip(quarter.tod_sin[:96], quarter.tod_cos[:96], strict=True)}) == 96
    )
    assert quarter.tod_sin.iloc[96] == pytest.approx(quarter.tod_sin.iloc[0], abs=1e-12)
    # Season: New Year and mid-year sit on opposite sides of the circle.
    season = calendar_features(pd.DatetimeIndex(["2016-01-01", "2016-07-02"]))
    assert season.doy_cos.iloc[0] == pytest.approx(1.0)
    assert season.doy_cos.iloc[1] == pytest.approx(-1.0, abs=1e-3)


@pytest.mark.parametrize(("lat", "lon", "utc_offset_h"), [(0.0, 0.0, 0.0), (30.0, -75.0, -5.0), (53.6, 11.4, 1.0)])
def test_solar_noon_elevation_on_equinox(lat: float, lon: float, utc_offset_h: float) -> None:
    minutes = pd.date_range("2016-03-20", periods=24 * 60, freq="1min")
    elevation = solar_elevation(minutes, lat, lon, utc_offset_h=utc_offset_h)
    assert elevation.max() == pytest.approx(90.0 - lat, abs=1.0)
    # Solar noon is at 12:00 local mean time, shifted by longitude within the zone (and ~7 min equation of time).
    noon = minutes[elevation.argmax()]
    expected = pd.Timestamp("2016-03-20 12:00") + pd.Timedelta(minutes=60 * utc_offset_h - 4 * lon)
    assert abs(noon - expected) < pd.Timedelta(minutes=12)
    assert elevation[0] < 0  # midnight: below the horizon


def test_clear_sky_is_zero_at_night_and_about_1035_at_zenith() -> None:
    ghi = clear_sky_ghi(np.array([-10.0, 0.0, 30.0, 90.0]))
    assert ghi[0] == 0.0
    assert ghi[1] == 0.0
    assert 0 < ghi[2] < ghi[3]
    assert ghi[3] == pytest.approx(1098 * np.exp(-0.059))


def test_solar_features_use_the_middle_of_the_step() -> None:
    times = pd.date_range("2016-06-21", periods=96, freq=STEP)
    feats = solar_features(times, 53.6, 11.4, resolution=STEP)
    direct = solar_elevation(times + STEP / 2, 53.6, 11.4)
    np.testing.assert_allclose(feats.solar_elevation, direct)
    assert (feats.clear_sky_ghi[feats.solar_elevation <= 0] == 0).all()


def _ramp(days: int = 20) -> pd.Series:
    """Value = step number, so a looked-up value tells which step it came from."""
    index = pd.date_range("2016-01-01", periods=days * 96, freq=STEP)
    return pd.Series(np.arange(len(index), dtype=np.float64), index=index)


def test_lag_alignment_day_ahead() -> None:
    observed = _ramp()
    issue = pd.Timestamp("2016-01-10 12:00")
    targets = pd.DatetimeIndex(["2016-01-11 03:00", "2016-01-11 20:00"])  # 15 h and 32 h ahead
    issues = pd.DatetimeIndex([issue, issue])
    lags = lag_features(observed, targets, issues, resolution=STEP)
    pos = {t: float(observed[t]) for t in observed.index}
    # 03:00 tomorrow: yesterday's 03:00 (before noon) is known; 20:00 tomorrow: today's is not, so the day before.
    assert lags.lag_day.tolist() == [pos[targets[0] - pd.Timedelta(days=1)], pos[targets[1] - pd.Timedelta(days=2)]]
    assert lags.lag_week.tolist() == [pos[t - pd.Timedelta(days=7)] for t in targets]
    last = pos[issue - STEP]
    assert lags["last"].tolist() == [last, last]
    assert lags.last_anomaly.tolist() == [96.0, 96.0]  # a ramp rises 96 per day
    assert lags.mean_day.iloc[0] == pytest.approx(last - 47.5)  # mean of the 96 steps ending at the last one
    assert lags.lead.tolist() == [60.0, 128.0]


def test_lags_never_read_at_or_after_issue() -> None:
    observed = _ramp()
    issues = pd.DatetimeIndex(["2016-01-12 12:00"] * 200)
    targets = issues + pd.TimedeltaIndex(np.arange(200) * STEP)
    before = lag_features(observed, targets, issues, resolution=STEP)
    future = observed.copy()
    future[future.index >= issues[0]] = -1e6
    after = lag_features(future, targets, issues, resolution=STEP)
    pd.testing.assert_frame_equal(before, after)


def test_lags_in_gaps_are_missing_and_negative_lead_is_refused() -> None:
    observed = _ramp()
    gapped = observed[(observed.index < "2016-01-05") | (observed.index >= "2016-01-12")]
    lags = lag_features(
        gapped, pd.DatetimeIndex(["2016-01-13 10:00"]), pd.DatetimeIndex(["2016-01-13 00:00"]), resolution=STEP
    )
    assert np.isnan(lags.lag_week.iloc[0])  # 2016-01-06 10:00 is held out
    assert lags.lag_day.iloc[0] == observed["2016-01-12 10:00"]
    with pytest.raises(ValueError, match="at or after"):
        lag_features(observed, pd.DatetimeIndex(["2016-01-05"]), pd.DatetimeIndex(["2016-01-06"]), resolution=STEP)
