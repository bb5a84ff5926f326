"""The report's figures: matplotlib on a pyplot-free Agg canvas, encoded as PNG data URIs.

Each plot is a function of the study that returns a figure, or None when there is nothing to draw, so the
HTML side can show a note instead; :data:`PLOTS` fixes their order and captions.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.sim.report_data import (
    DASH,
    ENERGY,
    POWER,
    Study,
    band,
    finite,
    kwh,
    label,
    losses_pct,
    mean,
    unit,
    wide,
)

__all__ = ["PLOTS", "RC", "Plot", "png"]

WIDE: Final = (12.0, 3.9)  # figure sizes, inches at DPI
HALF: Final = (6.4, 3.9)
DPI: Final = 110
KIND_COLORS: Final[dict[str, str]] = {
    "biomass": "#6a994e",
    "micro_hydro": "#2ec4b6",
    "chp": "#c8553d",
    "wind": "#3b82c4",
    "pv": "#f2b705",
    "battery": "#9d4edd",
    "grid": "#8d99ae",
}
RC: Final[dict[str, Any]] = {
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.edgecolor": "#94a3b8",
    "axes.labelcolor": "#334155",
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "date.converter": "concise",
}
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Plot:
    """A figure of the report: ``build`` returns None when the study has nothing to show (``empty``)."""

    title: str | Callable[[Study], str]
    build: Callable[[Study], Figure | None]
    wide: bool
    empty: str


def png(fig: Figure) -> str:
    """``fig`` as a PNG data URI, so the report needs no files beside it."""
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


def _has(study: Study, *columns: str) -> bool:
    return not study.series.empty and all(c in study.series for c in columns)


def _voltage(study: Study) -> Figure | None:
    if not _has(study, "v_min_pu", "v_mean_pu", "v_max_pu"):
        return None
    s, rule = study.series, study.rule
    lo, mid = band(s["v_min_pu"], rule)["lo"], band(s["v_mean_pu"], rule)["mid"]
    hi = band(s["v_max_pu"], rule)["hi"]
    fig, ax = _time_axes()
    ax.fill_between(lo.index, lo, hi, color="#3b82c4", alpha=0.25, lw=0, label="min–max over buses")
    ax.plot(mid.index, mid, color="#1e40af", lw=1.2, label="mean")
    for limit in (0.9, 1.1):
        ax.axhline(limit, color="#dc2626", ls="--", lw=1, label="default limits" if limit > 1 else None)
    ax.set_ylabel("voltage (pu)")
    ax.set_ylim(
        min(0.88, float(np.nanmin(lo, initial=0.9)) - 0.01), max(1.12, float(np.nanmax(hi, initial=1.1)) + 0.01)
    )
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


def _loading_system(study: Study) -> Figure | None:
    columns = [
        (c, kind)
        for c, kind in (("max_line_loading", "lines"), ("max_trafo_loading", "transformers"))
        if _has(study, c)
    ]
    if not columns:
        return None
    fig, ax = _axes(False)
    for column, kind in columns:
        ax.plot(*_duration(100 * study.series[column]), lw=1.6, label=f"max over {kind}")
    return _finish_duration(ax, fig)


def _loading_branches(study: Study) -> Figure | None:
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


def _energy_mix(study: Study) -> Figure | None:
    s = study.series
    kinds = sorted((c[4:-3] for c in s.columns if c.startswith("gen_") and c.endswith("_kw")), key=_kind_order)
    if s.empty or "load_kw" not in s:
        return None
    zero = pd.Series(0.0, index=s.index)
    grid, battery = s.get("grid_import_kw", zero), s.get("battery_kw", zero)
    supply = pd.DataFrame(
        {**{k: s[f"gen_{k}_kw"] for k in kinds}, "battery": battery.clip(lower=0), "grid": grid.clip(lower=0)}
    )
    sinks = pd.DataFrame({"export": grid.clip(upper=0), "charging": battery.clip(upper=0)})
    supply, sinks = mean(supply, study.rule), mean(sinks, study.rule)
    demand = mean(pd.DataFrame({"d": s["load_kw"] + s.get("ev_kw", zero)}), study.rule)["d"]
    scale, symbol = unit(5 * float(np.nanmax(supply.sum(axis=1), initial=0.0)), POWER)  # MW from a 2 MW peak
    fig, ax = _time_axes()
    supply = supply.loc[:, (supply.abs() > 0).any()]
    labels = [label(c) for c in supply.columns]
    ax.stackplot(
        supply.index,
        (supply.fillna(0) / scale).T.to_numpy(),
        labels=labels,
        colors=[KIND_COLORS.get(c, "#a3a3a3") for c in supply.columns],
        alpha=0.85,
        lw=0,
    )
    below = sinks.loc[:, (sinks.abs() > 0).any()]
    if not below.empty:
        ax.stackplot(
            below.index,
            (below.fillna(0) / scale).T.to_numpy(),
            labels=[f"{c} (−)" for c in below.columns],
            colors=["#cbd5e1", "#d8b4fe"][: below.shape[1]],
            alpha=0.9,
            lw=0,
        )
    ax.plot(demand.index, demand / scale, color="#111827", lw=1.4, label="demand (loads + EV)")
    ax.axhline(0, color="#475569", lw=0.8)
    ax.set_ylabel(f"power ({symbol})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _kind_order(kind: str) -> int:
    order = list(KIND_COLORS)
    return order.index(kind) if kind in order else len(order)


def _generation(study: Study) -> Figure | None:
    energy = {k: v for k, v in study.kpis.get("generation_kwh", {}).items() if (finite(v) or 0) > 0}
    if not energy:
        return None
    kinds = sorted(energy, key=lambda k: energy[k])
    fig, ax = _axes(False)
    scale, symbol = unit(max(energy.values()), ENERGY)
    bars = ax.barh(
        [label(k) for k in kinds],
        [energy[k] / scale for k in kinds],
        height=0.6,
        color=[KIND_COLORS.get(k, "#a3a3a3") for k in kinds],
    )
    _slim(ax, len(kinds))
    total = sum(energy.values())
    ax.bar_label(bars, labels=[f"{kwh(energy[k])} · {energy[k] / total:.0%}" for k in kinds], padding=4, fontsize=9)
    ax.set_xlabel(f"generation ({symbol})")
    ax.set_xlim(0, max(energy.values()) / scale * 1.45)
    ax.grid(axis="y", visible=False)
    return fig


def _slim(ax: Axes, rows: int) -> None:
    """Horizontal bars keep the thickness of four rows when there are fewer, centred in the axes."""
    pad = max(0.0, (4 - rows) / 2)
    ax.set_ylim(-0.5 - pad, rows - 0.5 + pad)


def _losses(study: Study) -> Figure | None:
    if not _has(study, "losses_kw"):
        return None
    losses = band(study.series["losses_kw"], study.rule)
    fig, ax = _time_axes(wide=False)
    if study.rule is not None:
        ax.fill_between(losses.index, losses["lo"], losses["hi"], color="#c8553d", alpha=0.2, lw=0)
    ax.plot(losses.index, losses["mid"], color="#c8553d", lw=1.2)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("losses (kW)")
    return fig


def _losses_title(study: Study) -> str:
    k = study.kpis
    return f"Losses — {kwh(k.get('losses_kwh'))} ({losses_pct(k)} of energy fed in)"


def _site_shares(study: Study) -> Figure | None:
    sites: dict[str, dict[str, Any]] = study.kpis.get("sites", {})
    if not sites:
        return None
    levels = study.kpis.get("levels", {})
    names = list(sites)[::-1]  # first site on top
    y = np.arange(len(names))
    fig, ax = _axes(False, height=max(HALF[1], 0.42 * len(names) + 1.2))
    for offset, key, color in ((0.2, "self_sufficiency", "#2a9d8f"), (-0.2, "self_consumption", "#f4a261")):
        values = [100 * (finite(sites[n].get(key)) or np.nan) for n in names]
        bars = ax.barh(y + offset, values, height=0.4, color=color, label=key.replace("_", "-"))
        ax.bar_label(bars, labels=[DASH if np.isnan(v) else f"{v:.0f} %" for v in values], padding=3, fontsize=8)
    ax.set_yticks(y, [f"{_short(n, 22)} (L{levels.get(n, '?')})" for n in names])
    _slim(ax, len(names))
    ax.set_xlim(0, 115)
    ax.set_xlabel("% of consumption / of generation")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower center", ncols=2, bbox_to_anchor=(0.5, 1.0))
    return fig


def _soc(study: Study) -> Figure | None:
    soc = wide(study.batteries, "battery", "soc", study.rule)
    if soc.empty:
        return None
    fig, ax = _time_axes(wide=False)
    for battery in soc.columns:
        ax.plot(soc.index, 100 * soc[battery], lw=1.1, label=_short(str(battery), 20))
    ax.set_ylim(0, 100)
    ax.set_ylabel("state of charge (%)")
    ax.legend(loc="upper center", ncols=min(3, soc.shape[1]), bbox_to_anchor=(0.5, -0.14), fontsize=8)
    return fig


def _pcc(study: Study) -> Figure | None:
    sites = study.sites
    if sites.empty or "level" not in sites:
        return None
    imports = wide(sites[sites["level"] == 1], "site", "import_kw", study.rule)
    if imports.empty:
        return None
    fig, ax = _time_axes()
    for site in imports.columns:
        ax.plot(imports.index, imports[site], lw=1.1, label=str(site))
    ax.axhline(0, color="#475569", lw=0.8)
    ax.set_ylabel("import at PCC (kW)\n< 0: export")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


PLOTS: Final[tuple[Plot, ...]] = (
    Plot("Voltage band over time — all buses", _voltage, True, "No voltage results."),
    Plot("Loading duration — system maxima", _loading_system, False, "No loading results."),
    Plot("Loading duration — five most loaded branches", _loading_branches, False, "No branch results."),
    Plot("Energy mix — supply against demand", _energy_mix, True, "No power time series."),
    Plot("Generation by kind", _generation, False, "No generation in this scenario."),
    Plot(_losses_title, _losses, False, "No loss results."),
    Plot(
        "Self-sufficiency and self-consumption per site",
        _site_shares,
        False,
        "No microgrids or sites in this scenario.",
    ),
    Plot("Battery state of charge", _soc, False, "No batteries in this scenario."),
    Plot("Net import at the PCC of each microgrid (level 1)", _pcc, True, "No level-1 microgrids in this scenario."),
)
