"""Features for load and generation forecasts: calendar, solar geometry and lags, all vectorised.

No weather data ships offline, so weather-like information comes from two places: the sun's position
(computed from date, time, latitude and longitude: the clear-sky envelope of PV) and the series' own
recent past (lagged values and the mean of the last day before the forecast is issued).

Times are naive and read as local *standard* time (``utc_offset_h`` east of UTC; CET is +1), which is how
gridmesh treats SimBench's regular 15-minute grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def german_holidays(years: Iterable[int]) -> frozenset[date]:
    """Germany's nationwide public holidays.

    Computed rather than listed so that any profile year works; the movable feasts follow Easter. Only the
    nine nationwide days are included: state holidays differ by region (SimBench's load profiles show
    exactly these nine as Sunday-like days in 2016, and no regional ones).
    """
    days: set[date] = set()
    for year in years:
        easter = easter_sunday(year)
        days |= {date(year, 1, 1), date(year, 5, 1), date(year, 10, 3), date(year, 12, 25), date(year, 12, 26)}
        # Good Friday, Easter Monday, Ascension Day, Whit Monday
        days |= {easter + timedelta(days=n) for n in (-2, 1, 39, 50)}
    return frozenset(days)


def calendar_features(times: pd.DatetimeIndex) -> pd.DataFrame:
    """Time of day and season as sin/cos (no jump at midnight or New Year), day of week, weekend, holiday.

    ``day_type`` follows the German standard load profiles: 0 workday, 1 Saturday, 2 Sunday or holiday.
    """
    day_fraction = ((times - times.normalize()) / DAY).to_numpy(dtype=np.float64)
    year_fraction = (times.dayofyear.to_numpy() - 1 + day_fraction) / 365.25
    holidays = german_holidays(range(times.min().year, times.max().year + 1)) if len(times) else frozenset()
    holiday = times.normalize().isin(pd.DatetimeIndex(sorted(holidays)))
    dow = times.dayofweek.to_numpy()
    day_type = np.where(holiday | (dow == 6), 2, np.where(dow == 5, 1, 0))
    return pd.DataFrame(
        {
            "tod_sin": np.sin(2 * np.pi * day_fraction),
            "tod_cos": np.cos(2 * np.pi * day_fraction),
            "doy_sin": np.sin(2 * np.pi * year_fraction),
            "doy_cos": np.cos(2 * np.pi * year_fraction),
            "day_of_week": dow,
            "weekend": (dow >= 5).astype(np.int64),
            "holiday": holiday.astype(np.int64),
            "day_type": day_type,
        },
        index=times,
    )


def solar_elevation(
    times: pd.DatetimeIndex, lat_deg: float, lon_deg: float, *, utc_offset_h: float = 1.0
) -> FloatArray:
    """Solar elevation angle in degrees (negative below the horizon), NOAA's general solar position formulas.

    With the fractional year γ = 2π/365 · (day_of_year − 1 + (hour − 12)/24), Spencer's series give the
    equation of time (minutes) and the declination δ; the true solar time is the clock time shifted by
    the equation of time, 4 minutes per degree of longitude and the UTC offset; the hour angle is
    ``ha = true_solar_minutes/4 − 180°`` and ``sin(elevation) = sin φ sin δ + cos φ cos δ cos ha``.
    Accurate to a fraction of a degree, plenty for a clear-sky feature.
    """
    minutes = ((times - times.normalize()) / pd.Timedelta(minutes=1)).to_numpy(dtype=np.float64)
    gamma = 2 * np.pi / 365 * (times.dayofyear.to_numpy() - 1 + (minutes / 60 - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )
    true_solar = minutes + eqtime + 4 * lon_deg - 60 * utc_offset_h
    hour_angle = np.radians(true_solar / 4 - 180)
    lat = np.radians(lat_deg)
    sin_elev = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return np.asarray(np.degrees(np.arcsin(np.clip(sin_elev, -1.0, 1.0))), dtype=np.float64)


def clear_sky_ghi(elevation_deg: FloatArray) -> FloatArray:
    """Clear-sky global horizontal irradiance in W/m² (Haurwitz: 1098 · cos z · exp(−0.059 / cos z))."""
    cos_z = np.sin(np.radians(elevation_deg))
    safe = np.where(cos_z > 0, cos_z, 1.0)
    return np.where(cos_z > 0, 1098.0 * safe * np.exp(-0.059 / safe), 0.0)


def solar_features(
    times: pd.DatetimeIndex, lat_deg: float, lon_deg: float, *, resolution: timedelta, utc_offset_h: float = 1.0
) -> pd.DataFrame:
    """Elevation and clear-sky irradiance at the middle of each step (a step's value is its mean)."""
    elevation = solar_elevation(times + resolution / 2, lat_deg, lon_deg, utc_offset_h=utc_offset_h)
    return pd.DataFrame({"solar_elevation": elevation, "clear_sky_ghi": clear_sky_ghi(elevation)}, index=times)


def lag_features(
    observed: pd.Series, targets: pd.DatetimeIndex, issues: pd.DatetimeIndex, *, resolution: timedelta
) -> pd.DataFrame:
    """Lagged values of ``observed`` for each (target time, issue time) pair, using only values before the issue.

    - ``lag_day``: the same time of day on the latest day known at issue (yesterday when the target is
      less than a day ahead, the day before otherwise);
    - ``lag_week``: the same time on the latest week known at issue;
    - ``last``: the latest value at issue (the step just before the issue time);
    - ``last_anomaly``: ``last`` minus the value one day before it (today's departure from yesterday);
    - ``mean_day``: the mean of the 24 hours before issue (a proxy for the weather of the last day);
    - ``lead``: steps from issue to target (0: the step starting at the issue time).

    ``observed`` is indexed by time and may have gaps (held-out weeks): a lag that falls in a gap is NaN.
    """
    step = pd.Timedelta(resolution)
    lead = ((targets - issues) // step).to_numpy()
    if np.any(lead < 0):
        raise ValueError("every target time must be at or after its issue time")
    steps_per_day, steps_per_week = DAY // step, WEEK // step
    lag_day_at = targets - (lead // steps_per_day + 1) * DAY
    lag_week_at = targets - (lead // steps_per_week + 1) * WEEK
    last_at = issues - step
    mean_day = observed.rolling(DAY, min_periods=max(1, steps_per_day // 2)).mean()
    last = _at(observed, last_at)
    return pd.DataFrame(
        {
            "lag_day": _at(observed, lag_day_at),
            "lag_week": _at(observed, lag_week_at),
            "last": last,
            "last_anomaly": last - _at(observed, last_at - DAY),
            "mean_day": _at(mean_day, last_at),
            "lead": lead.astype(np.float64),
        },
        index=targets,
    )


def _at(series: pd.Series, times: pd.DatetimeIndex) -> FloatArray:
    """Values at ``times`` (NaN where the series has none): one vectorised index lookup."""
    return series.reindex(times).to_numpy(dtype=np.float64)
