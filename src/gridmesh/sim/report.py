"""One self-contained HTML report of a study folder, written for people rather than scripts.

Everything travels in one file (plots as base64 PNG from matplotlib's Agg canvas, inline CSS, no scripts
or network), so a report can be mailed or archived next to the data it describes. Long studies are
resampled (hourly or daily min/mean/max) before plotting so a year still writes in seconds and stays small.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["write_report"]

DASH: Final = "–"
MAX_POINTS: Final = 1_500  # time plots above this many steps are resampled
WIDE: Final = (12.0, 3.9)  # figure sizes, inches at DPI
HALF: Final = (6.4, 3.9)
DPI: Final = 110
KIND_COLORS: Final[dict[str, str]] = {
    "biomass": "#6a994e", "micro_hydro": "#2ec4b6", "chp": "#c8553d", "wind": "#3b82c4",
    "pv": "#f2b705", "battery": "#9d4edd", "grid": "#8d99ae",
}
RC: Final[dict[str, Any]] = {
    "font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "axes.edgecolor": "#94a3b8", "axes.labelcolor": "#334155", "xtick.color": "#475569",
    "ytick.color": "#475569", "legend.frameon": False, "legend.fontsize": 9, "date.converter": "concise",
}
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Study:
    """The study outputs, read once; missing files are empty frames."""

    kpis: dict[str, Any]
    series: pd.DataFrame  # timeseries.parquet at full resolution, indexed by time
    rule: str | None  # resample rule for time plots, None = native resolution
    sites: pd.DataFrame
    batteries: pd.DataFrame
    buses: pd.DataFrame
    branches: pd.DataFrame


def write_report(out: Path) -> Path:
    """Read the outputs of :func:`gridmesh.sim.study.run_study` in ``out``; write ``out/report.html``.

    Returns the path of the report. Missing optional files (sites, batteries, …) give a note instead of a plot.
    """
    study = _read(out)
    with style.context(RC):
        figures = "".join(_figure_card(plot, study) for plot in _PLOTS)
    body = "".join([_header(study.kpis), _cards(study.kpis),
                    _section("Plots", figures, note=_resample_note(study.rule)),
                    _section("Tables", _tables(study))])
    path = out / "report.html"
    title = escape(f"gridmesh study · {study.kpis.get('scenario', '')}")
    path.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                    f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
                    f"<style>{CSS}</style></head><body><main>{body}</main></body></html>", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- reading


def _read(out: Path) -> _Study:
    kpis: dict[str, Any] = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    series = _parquet(out, "timeseries")
    if "time" in series:
        series = series.set_index(pd.DatetimeIndex(series.pop("time")))
    return _Study(kpis, series, _rule(series), _parquet(out, "sites"), _parquet(out, "batteries"),
                  _parquet(out, "buses"), _parquet(out, "branches"))


def _parquet(out: Path, name: str) -> pd.DataFrame:
    path = out / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _rule(series: pd.DataFrame) -> str | None:
    """Resample hourly up to two months and daily beyond, once there are too many steps to draw."""
    if len(series) <= MAX_POINTS or not isinstance(series.index, pd.DatetimeIndex):
        return None
    return "1h" if series.index[-1] - series.index[0] <= timedelta(days=62) else "1D"


def _band(values: pd.Series, rule: str | None) -> pd.DataFrame:
    """Columns lo/mid/hi: per-bucket min, mean and max (all equal at native resolution)."""
    if rule is None:
        return pd.DataFrame({"lo": values, "mid": values, "hi": values})
    grouped = values.resample(rule)
    return pd.DataFrame({"lo": grouped.min(), "mid": grouped.mean(), "hi": grouped.max()})


def _mean(frame: pd.DataFrame, rule: str | None) -> pd.DataFrame:
    return frame if rule is None else frame.resample(rule).mean()


def _wide(long: pd.DataFrame, key: str, value: str, rule: str | None) -> pd.DataFrame:
    """A long frame (time, key, value) pivoted to one column per key and resampled by mean."""
    if long.empty or not {"time", key, value} <= set(long.columns):
        return pd.DataFrame()
    frame = long.pivot_table(index="time", columns=key, values=value, aggfunc="mean", sort=False)
    frame.index = pd.DatetimeIndex(frame.index)
    return _mean(frame, rule)


# ------------------------------------------------------------------------------------------- formatting


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


Units = Sequence[tuple[float, str]]  # (factor, name), largest first
ENERGY: Final[Units] = ((1e6, "GWh"), (1e3, "MWh"), (1.0, "kWh"))
POWER: Final[Units] = ((1e3, "MW"), (1.0, "kW"))


def _unit(size: float, units: Units) -> tuple[float, str]:
    """The largest unit that ``size`` reaches ten of, so numbers keep two or more leading digits."""
    return next(((f, u) for f, u in units if abs(size) >= 10 * f), units[-1])


def _scaled(value: Any, units: Units, basis: float | None = None) -> str:
    """``value`` in the unit picked by ``basis`` (default: the value itself; a column's largest value keeps
    a table column in one unit), to about four significant digits."""
    number = _finite(value)
    if number is None:
        return DASH
    factor, unit = _unit(number if basis is None else basis, units)
    size = abs(number if basis is None else basis) / factor
    digits = 0 if size >= 1_000 or number == 0 else 1 if size >= 10 else 2
    return f"{number / factor:,.{digits}f} {unit}"


def _kwh(value: Any, basis: float | None = None) -> str:
    return _scaled(value, ENERGY, basis)


def _kw(value: Any, basis: float | None = None) -> str:
    return _scaled(value, POWER, basis)


def _kg(value: Any) -> str:
    return _scaled(value, [(1e3, "t"), (1.0, "kg")])


def _pct(fraction: Any, digits: int = 1) -> str:
    number = _finite(fraction)
    return DASH if number is None else f"{100 * number:,.{digits}f} %"


def _pu(value: Any) -> str:
    number = _finite(value)
    return DASH if number is None else f"{number:.3f} pu"


def _count(value: Any, unit: str = "") -> str:
    number = _finite(value)
    return DASH if number is None else f"{number:,.0f}{' ' + unit if unit else ''}"


# ----------------------------------------------------------------------------------------------- header


def _header(kpis: dict[str, Any]) -> str:
    steps, hours = kpis.get("steps", 0), _finite(kpis.get("hours")) or 0.0
    step_min = 60 * hours / steps if steps else float("nan")
    period = DASH
    if kpis.get("start"):
        start = datetime.fromisoformat(str(kpis["start"]))
        end = start + timedelta(hours=hours)
        period = f"{start:%d %b %Y %H:%M} → {end:%d %b %Y %H:%M}"
    facts = [("Controller", kpis.get("controller", DASH)), ("Period", period),
             ("Days", _count(kpis.get("days"))), ("Steps", f"{_count(steps)} × {_count(step_min)} min")]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    failed = int(kpis.get("failed_steps") or 0)
    alert = (f"<p class='alert'>{failed:,} of {steps:,} steps did not converge; their values are missing "
             f"from the plots.</p>" if failed else "")
    return (f"<header><p class='kicker'>gridmesh study report</p>"
            f"<h1>{escape(str(kpis.get('scenario', 'study')))}</h1><dl class='facts'>{items}</dl>{alert}</header>")


def _cards(kpis: dict[str, Any]) -> str:
    volt, load = kpis.get("voltage", {}), kpis.get("loading", {})
    minutes = _finite(volt.get("bus_minutes_outside_band")) or 0.0
    overloaded = _finite(load.get("branch_hours_overloaded")) or 0.0
    not_served = _finite(kpis.get("energy_not_served_kwh")) or 0.0
    cycles = list(kpis.get("battery_equivalent_cycles", {}).values())
    cards = [
        ("Consumption", _kwh(kpis.get("energy_consumed_kwh")), f"not served {_kwh(not_served)}",
         "bad" if not_served > 1e-6 else ""),
        ("Generation", _kwh(sum(kpis.get("generation_kwh", {}).values())),
         f"renewable share {_pct(kpis.get('renewable_share'))}", ""),
        ("Grid import", _kwh(kpis.get("grid_import_kwh")), f"peak {_kw(kpis.get('peak_import_kw'))}", ""),
        ("Grid export", _kwh(kpis.get("grid_export_kwh")), "fed back upstream", ""),
        ("Losses", _kwh(kpis.get("losses_kwh")), f"{_losses_pct(kpis)} of energy fed in", ""),
        ("CO₂", _kg(kpis.get("co2_kg")), "grid import and CHP", ""),
        ("Outside voltage band", _count(minutes, "min"), f"bus-minutes · {_count(volt.get('buses_with_violations'))}"
         f" buses · {_pu(volt.get('v_min_pu'))[:-3]}–{_pu(volt.get('v_max_pu'))}", "warn" if minutes > 0 else "ok"),
        ("Max loading", _pct(load.get("max_loading")), f"{_count(overloaded)} branch-h overloaded",
         "warn" if overloaded > 0 else "ok"),
    ]
    if cycles:
        cards.append(("Batteries", _kwh(kpis.get("battery_discharge_kwh")),
                      f"discharged · {np.mean(cycles):.2f} cycles mean", ""))
    failed = int(kpis.get("failed_steps") or 0)
    cards.append(("Failed steps", _count(failed), f"of {_count(kpis.get('steps'))}", "bad" if failed else "ok"))
    return "<section class='cards'>" + "".join(
        f"<div class='card {tone}'><div class='label'>{escape(label)}</div><div class='value'>{escape(value)}"
        f"</div><div class='sub'>{escape(sub)}</div></div>" for label, value, sub, tone in cards) + "</section>"


def _section(title: str, content: str, note: str = "") -> str:
    note_html = f"<p class='note'>{escape(note)}</p>" if note else ""
    return f"<section><h2>{escape(title)}</h2>{note_html}<div class='grid'>{content}</div></section>"


def _resample_note(rule: str | None) -> str:
    if rule is None:
        return ""
    word = "hourly" if rule == "1h" else "daily"
    return f"Time plots show {word} means (shaded: {word} min–max); duration curves use every step."


# ------------------------------------------------------------------------------------------------ plots


@dataclass(frozen=True)
class _Plot:
    """A figure of the report: ``build`` returns None when the study has nothing to show (``empty``)."""

    title: str | Callable[[_Study], str]
    build: Callable[[_Study], Figure | None]
    wide: bool
    empty: str


def _figure_card(plot: _Plot, study: _Study) -> str:
    fig = plot.build(study)
    title = plot.title if isinstance(plot.title, str) else plot.title(study)
    return _card(title, _empty(plot.empty) if fig is None else f"<img alt='{escape(title)}' src='{_png(fig)}'>",
                 wide=plot.wide)


def _card(title: str, inner: str, *, wide: bool = False, tall: bool = False) -> str:
    """A white panel of the grid; ``wide`` spans both columns, ``tall`` three rows (short cards stack beside)."""
    cls = "fig" + " wide" * wide + " tall" * tall
    return f"<figure class='{cls}'><figcaption>{escape(title)}</figcaption>{inner}</figure>"


def _empty(note: str) -> str:
    return f"<p class='empty'>{escape(note)}</p>"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(wide: bool, height: float | None = None) -> tuple[Figure, Axes]:
    width, default_height = WIDE if wide else HALF
    fig = Figure(figsize=(width, height or default_height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # pyplot-free: no GUI backend, no global figure registry
    return fig, fig.add_subplot()


def _time_axes(wide: bool = True) -> tuple[Figure, Axes]:
    fig, ax = _axes(wide)
    ax.margins(x=0)
    return fig, ax


def _has(study: _Study, *columns: str) -> bool:
    return not study.series.empty and all(c in study.series for c in columns)


def _voltage(study: _Study) -> Figure | None:
    if not _has(study, "v_min_pu", "v_mean_pu", "v_max_pu"):
        return None
    s, rule = study.series, study.rule
    lo, mid = _band(s["v_min_pu"], rule)["lo"], _band(s["v_mean_pu"], rule)["mid"]
    hi = _band(s["v_max_pu"], rule)["hi"]
    fig, ax = _time_axes()
    ax.fill_between(lo.index, lo, hi, color="#3b82c4", alpha=0.25, lw=0, label="min–max over buses")
    ax.plot(mid.index, mid, color="#1e40af", lw=1.2, label="mean")
    for limit in (0.9, 1.1):
        ax.axhline(limit, color="#dc2626", ls="--", lw=1, label="default limits" if limit > 1 else None)
    ax.set_ylabel("voltage (pu)")
    ax.set_ylim(min(0.88, float(np.nanmin(lo, initial=0.9)) - 0.01),
                max(1.12, float(np.nanmax(hi, initial=1.1)) + 0.01))
    ax.legend(loc="upper right", ncols=3)
    return fig


def _duration(values: Any) -> tuple[FloatArray, FloatArray]:
    """(% of time, value) of a duration curve: values sorted descending, thinned to ≤ 2,000 points."""
    data = np.asarray(values, dtype=np.float64)
    data = np.sort(data[np.isfinite(data)])[::-1]
    if data.size == 0:
        return np.zeros(0), np.zeros(0)
    keep = np.unique(np.linspace(0, data.size - 1, min(data.size, 2_000)).astype(np.int64))
    return 100.0 * keep / data.size, data[keep]


def _hist_duration(counts: Any, max_loading: float) -> tuple[FloatArray, FloatArray]:
    """A branch's duration curve from its 1 %-wide loading histogram: at bin k's lower edge (k/100) the
    curve is at the share of steps in bins ≥ k (counted from the top bin down)."""
    hist = np.asarray(counts, dtype=np.float64)
    filled = np.flatnonzero(hist)
    if filled.size == 0:
        return np.zeros(0), np.zeros(0)
    bins = np.arange(filled[-1], filled[0] - 1, -1)
    share = 100.0 * np.cumsum(hist[::-1])[::-1] / hist.sum()
    return np.r_[0.0, share[bins]], np.r_[max_loading, bins / 100.0]


def _loading_system(study: _Study) -> Figure | None:
    columns = [(c, label) for c, label in (("max_line_loading", "lines"), ("max_trafo_loading", "transformers"))
               if _has(study, c)]
    if not columns:
        return None
    fig, ax = _axes(False)
    for column, label in columns:
        ax.plot(*_duration(100 * study.series[column]), lw=1.6, label=f"max over {label}")
    return _finish_duration(ax, fig)


def _loading_branches(study: _Study) -> Figure | None:
    branches = study.branches
    if branches.empty or "loading_hist" not in branches:
        return None
    fig, ax = _axes(False)
    top = branches.nlargest(5, "max_loading")
    for name, hist, peak in zip(top["branch"], top["loading_hist"], top["max_loading"], strict=True):
        x, y = _hist_duration(hist, float(peak))
        ax.plot(x, 100 * y, lw=1.4, label=_short(str(name)))
    return _finish_duration(ax, fig)


def _finish_duration(ax: Axes, fig: Figure) -> Figure:
    ax.axhline(100, color="#dc2626", ls="--", lw=1)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, max(115.0, ax.get_ylim()[1]))
    ax.set_xlabel("share of time (%)")
    ax.set_ylabel("loading (% of rating)")
    ax.legend(loc="upper right", frameon=True, framealpha=0.92, edgecolor="#e2e8f0", fontsize=8.5)
    return fig


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _energy_mix(study: _Study) -> Figure | None:
    s = study.series
    kinds = sorted((c[4:-3] for c in s.columns if c.startswith("gen_") and c.endswith("_kw")), key=_kind_order)
    if s.empty or "load_kw" not in s:
        return None
    zero = pd.Series(0.0, index=s.index)
    grid, battery = s.get("grid_import_kw", zero), s.get("battery_kw", zero)
    supply = pd.DataFrame({**{k: s[f"gen_{k}_kw"] for k in kinds}, "battery": battery.clip(lower=0),
                           "grid": grid.clip(lower=0)})
    sinks = pd.DataFrame({"export": grid.clip(upper=0), "charging": battery.clip(upper=0)})
    supply, sinks = _mean(supply, study.rule), _mean(sinks, study.rule)
    demand = _mean(pd.DataFrame({"d": s["load_kw"] + s.get("ev_kw", zero)}), study.rule)["d"]
    scale, unit = _unit(5 * float(np.nanmax(supply.sum(axis=1), initial=0.0)), POWER)  # MW from a 2 MW peak
    fig, ax = _time_axes()
    supply = supply.loc[:, (supply.abs() > 0).any()]
    labels = [_label(c) for c in supply.columns]
    ax.stackplot(supply.index, (supply.fillna(0) / scale).T.to_numpy(), labels=labels,
                 colors=[KIND_COLORS.get(c, "#a3a3a3") for c in supply.columns], alpha=0.85, lw=0)
    below = sinks.loc[:, (sinks.abs() > 0).any()]
    if not below.empty:
        ax.stackplot(below.index, (below.fillna(0) / scale).T.to_numpy(), labels=[f"{c} (−)" for c in below.columns],
                     colors=["#cbd5e1", "#d8b4fe"][: below.shape[1]], alpha=0.9, lw=0)
    ax.plot(demand.index, demand / scale, color="#111827", lw=1.4, label="demand (loads + EV)")
    ax.axhline(0, color="#475569", lw=0.8)
    ax.set_ylabel(f"power ({unit})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _kind_order(kind: str) -> int:
    order = list(KIND_COLORS)
    return order.index(kind) if kind in order else len(order)


def _label(kind: str) -> str:
    return {"pv": "PV", "chp": "CHP", "micro_hydro": "micro hydro", "grid": "grid import",
            "battery": "battery discharge"}.get(kind, kind)


def _generation(study: _Study) -> Figure | None:
    energy = {k: v for k, v in study.kpis.get("generation_kwh", {}).items() if (_finite(v) or 0) > 0}
    if not energy:
        return None
    kinds = sorted(energy, key=lambda k: energy[k])
    fig, ax = _axes(False)
    scale, unit = _unit(max(energy.values()), ENERGY)
    bars = ax.barh([_label(k) for k in kinds], [energy[k] / scale for k in kinds], height=0.6,
                   color=[KIND_COLORS.get(k, "#a3a3a3") for k in kinds])
    _slim(ax, len(kinds))
    total = sum(energy.values())
    ax.bar_label(bars, labels=[f"{_kwh(energy[k])} · {energy[k] / total:.0%}" for k in kinds], padding=4, fontsize=9)
    ax.set_xlabel(f"generation ({unit})")
    ax.set_xlim(0, max(energy.values()) / scale * 1.45)
    ax.grid(axis="y", visible=False)
    return fig


def _slim(ax: Axes, rows: int) -> None:
    """Horizontal bars keep the thickness of four rows when there are fewer, centred in the axes."""
    pad = max(0.0, (4 - rows) / 2)
    ax.set_ylim(-0.5 - pad, rows - 0.5 + pad)


def _losses(study: _Study) -> Figure | None:
    if not _has(study, "losses_kw"):
        return None
    band = _band(study.series["losses_kw"], study.rule)
    fig, ax = _time_axes(wide=False)
    if study.rule is not None:
        ax.fill_between(band.index, band["lo"], band["hi"], color="#c8553d", alpha=0.2, lw=0)
    ax.plot(band.index, band["mid"], color="#c8553d", lw=1.2)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("losses (kW)")
    return fig


def _losses_title(study: _Study) -> str:
    k = study.kpis
    return f"Losses — {_kwh(k.get('losses_kwh'))} ({_losses_pct(k)} of energy fed in)"


def _losses_pct(kpis: dict[str, Any]) -> str:
    percent = _finite(kpis.get("losses_percent"))
    return DASH if percent is None else f"{percent:.2f} %"


def _site_shares(study: _Study) -> Figure | None:
    sites: dict[str, dict[str, Any]] = study.kpis.get("sites", {})
    if not sites:
        return None
    levels = study.kpis.get("levels", {})
    names = list(sites)[::-1]  # first site on top
    y = np.arange(len(names))
    fig, ax = _axes(False, height=max(HALF[1], 0.42 * len(names) + 1.2))
    for offset, key, color in ((0.2, "self_sufficiency", "#2a9d8f"), (-0.2, "self_consumption", "#f4a261")):
        values = [100 * (_finite(sites[n].get(key)) or np.nan) for n in names]
        bars = ax.barh(y + offset, values, height=0.4, color=color, label=key.replace("_", "-"))
        ax.bar_label(bars, labels=[DASH if np.isnan(v) else f"{v:.0f} %" for v in values], padding=3, fontsize=8)
    ax.set_yticks(y, [f"{_short(n, 22)} (L{levels.get(n, '?')})" for n in names])
    _slim(ax, len(names))
    ax.set_xlim(0, 115)
    ax.set_xlabel("% of consumption / of generation")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower center", ncols=2, bbox_to_anchor=(0.5, 1.0))
    return fig


def _soc(study: _Study) -> Figure | None:
    soc = _wide(study.batteries, "battery", "soc", study.rule)
    if soc.empty:
        return None
    fig, ax = _time_axes(wide=False)
    for battery in soc.columns:
        ax.plot(soc.index, 100 * soc[battery], lw=1.1, label=_short(str(battery), 20))
    ax.set_ylim(0, 100)
    ax.set_ylabel("state of charge (%)")
    ax.legend(loc="upper center", ncols=min(3, soc.shape[1]), bbox_to_anchor=(0.5, -0.14), fontsize=8)
    return fig


def _pcc(study: _Study) -> Figure | None:
    sites = study.sites
    if sites.empty or "level" not in sites:
        return None
    imports = _wide(sites[sites["level"] == 1], "site", "import_kw", study.rule)
    if imports.empty:
        return None
    fig, ax = _time_axes()
    for site in imports.columns:
        ax.plot(imports.index, imports[site], lw=1.1, label=str(site))
    ax.axhline(0, color="#475569", lw=0.8)
    ax.set_ylabel("import at PCC (kW)\n< 0: export")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


_PLOTS: Final[tuple[_Plot, ...]] = (
    _Plot("Voltage band over time — all buses", _voltage, True, "No voltage results."),
    _Plot("Loading duration — system maxima", _loading_system, False, "No loading results."),
    _Plot("Loading duration — five most loaded branches", _loading_branches, False, "No branch results."),
    _Plot("Energy mix — supply against demand", _energy_mix, True, "No power time series."),
    _Plot("Generation by kind", _generation, False, "No generation in this scenario."),
    _Plot(_losses_title, _losses, False, "No loss results."),
    _Plot("Self-sufficiency and self-consumption per site", _site_shares, False,
          "No microgrids or sites in this scenario."),
    _Plot("Battery state of charge", _soc, False, "No batteries in this scenario."),
    _Plot("Net import at the PCC of each microgrid (level 1)", _pcc, True,
          "No level-1 microgrids in this scenario."),
)


# ----------------------------------------------------------------------------------------------- tables


def _tables(study: _Study) -> str:
    return "".join([
        _table("Key performance indicators", ["Indicator", "Value"], _kpi_rows(study.kpis), "", tall=True),
        _table("Most loaded branches", ["Branch", "Kind", "Max loading", "Overloaded"], _branch_rows(study),
               "No branch results."),
        _table("Worst buses — time outside their voltage band", ["Bus", "kV", "V min", "V max", "Below", "Above"],
               _bus_rows(study), "No bus left its voltage band."),
        _table("Batteries", ["Battery", "Cycles", "SOC min", "SOC max"], _battery_rows(study),
               "No batteries in this scenario."),
        _table("Sites", ["Site", "Level", "Consumption", "Generation", "Import", "Export", "Peak import",
                         "Self-sufficiency", "Self-consumption"], _site_rows(study.kpis),
               "No microgrids or sites in this scenario.", wide=True),
    ])


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str, *, wide: bool = False,
           tall: bool = False) -> str:
    if not rows:
        return _card(title, _empty(empty), wide=wide, tall=tall)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return _card(title, f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                 "</div>", wide=wide, tall=tall)


def _kpi_rows(kpis: dict[str, Any]) -> list[list[str]]:
    volt, load = kpis.get("voltage", {}), kpis.get("loading", {})
    generation: dict[str, float] = kpis.get("generation_kwh", {})
    return [
        ["Energy consumed", _kwh(kpis.get("energy_consumed_kwh"))],
        ["Energy served", _kwh(kpis.get("energy_served_kwh"))],
        ["Energy not served", _kwh(kpis.get("energy_not_served_kwh"))],
        *[[f"Generation — {_label(k)}", _kwh(v)] for k, v in sorted(generation.items(), key=lambda kv: -kv[1])],
        ["Renewable share (of gross consumption)", _pct(kpis.get("renewable_share"))],
        ["Grid import", _kwh(kpis.get("grid_import_kwh"))],
        ["Grid export", _kwh(kpis.get("grid_export_kwh"))],
        ["Peak import", _kw(kpis.get("peak_import_kw"))],
        ["Losses", f"{_kwh(kpis.get('losses_kwh'))} ({_losses_pct(kpis)})"],
        ["CO₂", _kg(kpis.get("co2_kg"))],
        ["Battery discharge / charge",
         f"{_kwh(kpis.get('battery_discharge_kwh'))} / {_kwh(kpis.get('battery_charge_kwh'))}"],
        ["Voltage min / max", f"{_pu(volt.get('v_min_pu'))} / {_pu(volt.get('v_max_pu'))}"],
        ["Bus-minutes outside band", _count(volt.get("bus_minutes_outside_band"), "min")],
        ["Buses with violations", _count(volt.get("buses_with_violations"))],
        ["Max branch loading", _pct(load.get("max_loading"))],
        ["Branches overloaded", _count(load.get("branches_overloaded"))],
        ["Branch-hours overloaded", _count(load.get("branch_hours_overloaded"), "h")],
        ["Steps (failed)", f"{_count(kpis.get('steps'))} ({_count(kpis.get('failed_steps'))})"],
        ["Simulated hours", _count(kpis.get("hours"), "h")],
    ]


def _branch_rows(study: _Study) -> list[list[str]]:
    if study.branches.empty:
        return []
    top = study.branches.nlargest(10, "max_loading")
    return [[str(r.branch), str(r.kind), _pct(r.max_loading), _count(r.hours_overloaded, "h")]
            for r in top.itertuples()]


def _bus_rows(study: _Study) -> list[list[str]]:
    buses = study.buses
    if buses.empty:
        return []
    outside = buses["minutes_below"] + buses["minutes_above"]
    top = buses.assign(outside=outside)[outside > 0].nlargest(10, "outside")
    return [[str(r.bus), f"{r.vn_kv:g}", _pu(r.v_min_pu), _pu(r.v_max_pu),
             _count(r.minutes_below, "min"), _count(r.minutes_above, "min")] for r in top.itertuples()]


def _battery_rows(study: _Study) -> list[list[str]]:
    cycles: dict[str, float] = study.kpis.get("battery_equivalent_cycles", {})
    frame = study.batteries
    soc = frame.groupby("battery")["soc"].agg(["min", "max"]) if {"battery", "soc"} <= set(frame) else None

    def soc_pct(battery: str, stat: str) -> str:
        return _pct(soc.at[battery, stat], 0) if soc is not None and battery in soc.index else DASH

    return [[b, DASH if _finite(n) is None else f"{n:.2f}", soc_pct(b, "min"), soc_pct(b, "max")]
            for b, n in cycles.items()]


def _site_rows(kpis: dict[str, Any]) -> list[list[str]]:
    sites: dict[str, dict[str, Any]] = kpis.get("sites", {})
    levels = kpis.get("levels", {})

    def column(key: str, fmt: Callable[[Any, float | None], str]) -> list[str]:
        values = [_finite(t.get(key)) for t in sites.values()]
        basis = max((abs(v) for v in values if v is not None), default=0.0)
        return [fmt(v, basis) for v in values]

    columns = [list(sites), [str(levels.get(s, DASH)) for s in sites],
               *(column(k, _kwh) for k in ("consumption_kwh", "generation_kwh", "import_kwh", "export_kwh")),
               column("peak_import_kw", _kw),
               *([_pct(t.get(k)) for t in sites.values()] for k in ("self_sufficiency", "self_consumption"))]
    return [list(row) for row in zip(*columns, strict=True)]


CSS: Final = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--accent:#1e40af;--ok:#16a34a;--warn:#d97706;
--bad:#dc2626}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;-webkit-font-smoothing:antialiased}
main{max-width:1320px;margin:0 auto;padding:32px 24px 64px}
header{background:#fff;border:1px solid var(--line);border-top:4px solid var(--accent);border-radius:10px;
padding:20px 24px;margin-bottom:20px}
.kicker{margin:0;color:var(--muted);font-size:12px;letter-spacing:.08em;text-transform:uppercase}
h1{margin:2px 0 12px;font-size:28px;line-height:1.2}
h2{font-size:18px;margin:32px 0 8px;padding-bottom:6px;border-bottom:1px solid var(--line)}
.facts{display:flex;flex-wrap:wrap;gap:8px 36px;margin:0}
.facts dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.facts dd{margin:0;font-weight:600}
.alert{margin:14px 0 0;padding:8px 12px;border-radius:6px;background:#fef2f2;color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-left:4px solid #cbd5e1;border-radius:8px;
padding:12px 14px}
.card.ok{border-left-color:var(--ok)}.card.warn{border-left-color:var(--warn)}.card.bad{border-left-color:var(--bad)}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.card .value{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums;margin:2px 0}
.card .sub{color:var(--muted);font-size:13px}
.note{color:var(--muted);font-size:13px;margin:0 0 8px}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
.fig{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
.fig.wide{grid-column:1/-1}.fig.tall{grid-row:span 3}
figcaption{font-weight:600;margin-bottom:6px}
.fig img{display:block;width:100%;height:auto}
.empty{color:var(--muted);font-style:italic;margin:24px 0;text-align:center}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
th{text-align:left;color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
td:not(:first-child),th:not(:first-child){text-align:right}
td:first-child{white-space:normal;overflow-wrap:anywhere}
tbody tr:nth-child(even){background:#f8fafc}
@media (max-width:900px){.grid{grid-template-columns:1fr}main{padding:16px 12px}}
"""
