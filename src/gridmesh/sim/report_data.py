"""The study outputs as the report needs them: read once, resampled for plotting, formatted as text.

Number formatting lives here, below both report_plots and report, because plots label bars with the same
numbers as the tables and report.py imports the plots; a module above would make the imports circular.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd

__all__ = [
    "DASH",
    "ENERGY",
    "POWER",
    "Study",
    "band",
    "count",
    "finite",
    "kg",
    "kw",
    "kwh",
    "label",
    "losses_pct",
    "mean",
    "pct",
    "pu",
    "read",
    "unit",
    "wide",
]

DASH: Final = "–"
MAX_POINTS: Final = 1_500  # time plots above this many steps are resampled


@dataclass(frozen=True)
class Study:
    """The study outputs, read once; missing files are empty frames."""

    kpis: dict[str, Any]
    series: pd.DataFrame  # timeseries.parquet at full resolution, indexed by time
    rule: str | None  # resample rule for time plots, None = native resolution
    sites: pd.DataFrame
    batteries: pd.DataFrame
    buses: pd.DataFrame
    branches: pd.DataFrame


def read(out: Path) -> Study:
    """Every output in ``out`` that the report shows, with the resample rule chosen once for all plots."""
    kpis: dict[str, Any] = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    series = _parquet(out, "timeseries")
    if "time" in series:
        series = series.set_index(pd.DatetimeIndex(series.pop("time")))
    return Study(
        kpis,
        series,
        _rule(series),
        _parquet(out, "sites"),
        _parquet(out, "batteries"),
        _parquet(out, "buses"),
        _parquet(out, "branches"),
    )


def _parquet(out: Path, name: str) -> pd.DataFrame:
    path = out / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _rule(series: pd.DataFrame) -> str | None:
    """Resample hourly up to two months and daily beyond, once there are too many steps to draw."""
    if len(series) <= MAX_POINTS or not isinstance(series.index, pd.DatetimeIndex):
        return None
    return "1h" if series.index[-1] - series.index[0] <= timedelta(days=62) else "1D"


def band(values: pd.Series, rule: str | None) -> pd.DataFrame:
    """Columns lo/mid/hi: per-bucket min, mean and max (all equal at native resolution)."""
    if rule is None:
        return pd.DataFrame({"lo": values, "mid": values, "hi": values})
    grouped = values.resample(rule)
    return pd.DataFrame({"lo": grouped.min(), "mid": grouped.mean(), "hi": grouped.max()})


def mean(frame: pd.DataFrame, rule: str | None) -> pd.DataFrame:
    """``frame`` averaged per ``rule`` bucket; unchanged at native resolution."""
    return frame if rule is None else frame.resample(rule).mean()


def wide(long: pd.DataFrame, key: str, value: str, rule: str | None) -> pd.DataFrame:
    """A long frame (time, key, value) pivoted to one column per key and resampled by mean."""
    if long.empty or not {"time", key, value} <= set(long.columns):
        return pd.DataFrame()
    frame = long.pivot_table(index="time", columns=key, values=value, aggfunc="mean", sort=False)
    frame.index = pd.DatetimeIndex(frame.index)
    return mean(frame, rule)


# ------------------------------------------------------------------------------------------- formatting
# Missing or non-finite values print as DASH, so incomplete outputs still render.


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when missing, not a number or not finite (kpis.json holds NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


Units = Sequence[tuple[float, str]]  # (factor, name), largest first
ENERGY: Final[Units] = ((1e6, "GWh"), (1e3, "MWh"), (1.0, "kWh"))
POWER: Final[Units] = ((1e3, "MW"), (1.0, "kW"))


def unit(size: float, units: Units) -> tuple[float, str]:
    """The largest unit that ``size`` reaches ten of, so numbers keep two or more leading digits."""
    return next(((f, u) for f, u in units if abs(size) >= 10 * f), units[-1])


def _scaled(value: Any, units: Units, basis: float | None = None) -> str:
    """``value`` in the unit picked by ``basis`` (default: the value itself; a column's largest value keeps
    a table column in one unit), to about four significant digits."""
    number = finite(value)
    if number is None:
        return DASH
    factor, symbol = unit(number if basis is None else basis, units)
    size = abs(number if basis is None else basis) / factor
    digits = 0 if size >= 1_000 or number == 0 else 1 if size >= 10 else 2
    return f"{number / factor:,.{digits}f} {symbol}"


def kwh(value: Any, basis: float | None = None) -> str:
    """Energy given in kWh, shown in kWh, MWh or GWh."""
    return _scaled(value, ENERGY, basis)


def kw(value: Any, basis: float | None = None) -> str:
    """Power given in kW, shown in kW or MW."""
    return _scaled(value, POWER, basis)


def kg(value: Any) -> str:
    """Mass given in kg, shown in kg or t."""
    return _scaled(value, [(1e3, "t"), (1.0, "kg")])


def pct(fraction: Any, digits: int = 1) -> str:
    """A fraction (0.25) as a percentage (25.0 %)."""
    number = finite(fraction)
    return DASH if number is None else f"{100 * number:,.{digits}f} %"


def pu(value: Any) -> str:
    """A voltage in per unit, to three decimals."""
    number = finite(value)
    return DASH if number is None else f"{number:.3f} pu"


def count(value: Any, unit: str = "") -> str:
    """A whole number with thousands separators and an optional unit."""
    number = finite(value)
    return DASH if number is None else f"{number:,.0f}{' ' + unit if unit else ''}"


def label(kind: str) -> str:
    """The words a reader expects for a generation kind key (``pv`` is PV)."""
    return {
        "pv": "PV",
        "chp": "CHP",
        "micro_hydro": "micro hydro",
        "grid": "grid import",
        "battery": "battery discharge",
    }.get(kind, kind)


def losses_pct(kpis: dict[str, Any]) -> str:
    """Losses as a share of energy fed in: one wording for the card, the plot title and the table."""
    percent = finite(kpis.get("losses_percent"))
    return DASH if percent is None else f"{percent:.2f} %"
