"""Write a charging study: ``charging.json`` (the key figures) and one self-contained ``charging.html``.

The page reuses the study report's look (its CSS, matplotlib style and PNG data-URI encoding): headline
cards (uncontrolled → smart), the key figures of the three runs side by side, the highest transformer
loading, the EV power and the substation import over time, and the peak loading of each transformer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.sim.ev_study import ChargingStudy, Variant
from gridmesh.sim.report import CSS
from gridmesh.sim.report_data import count, kw, kwh, pct
from gridmesh.sim.report_plots import DPI, HALF, RC, WIDE, png

__all__ = ["LABELS", "write_charging"]

LABELS = {Variant.NO_EV: "no EVs", Variant.UNCONTROLLED: "uncontrolled", Variant.SMART: "smart"}
COLORS = {Variant.NO_EV: "#94a3b8", Variant.UNCONTROLLED: "#d97706", Variant.SMART: "#1e40af"}


def write_charging(study: ChargingStudy, out: Path) -> tuple[Path, Path]:
    """Write ``out/charging.json`` and ``out/charging.html``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "charging.json"
    json_path.write_text(json.dumps(study.kpis, indent=1, allow_nan=True), encoding="utf-8")
    with style.context(RC):
        figures = "".join(
            _figure(title, fig, wide)
            for title, fig, wide in (
                ("Highest transformer loading", _over_time(study, _max_loading, "loading, % of rating"), True),
                ("EV charging power", _over_time(study, _ev_power, "kW", with_base=False), True),
                ("Substation import", _over_time(study, _import, "kW"), True),
                ("Peak loading of the transformers with EVs behind them", _peaks(study), True),
            )
        )
    body = (
        _header(study.kpis)
        + _cards(study.kpis)
        + _section("Key figures", _kpi_table(study.kpis), _note(study.kpis))
        + _section("Plots", figures)
    )
    html_path = out / "charging.html"
    title = escape(f"gridmesh charging study · {study.kpis['scenario']}")
    html_path.write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>",
        encoding="utf-8",
    )
    return json_path, html_path


def _header(kpis: dict[str, Any]) -> str:
    facts = [
        ("Period", f"{kpis['start'][:10]}, {kpis['days']:g} days"),
        ("Chargers / sessions", f"{kpis['chargers']:,} / {kpis['sessions']:,}"),
        ("Requested", kwh(kpis["requested_kwh"])),
        ("Transformers with EVs", f"{kpis['constraint_groups']} of {kpis['transformers']}"),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return (
        "<header><p class='kicker'>gridmesh charging study</p>"
        f"<h1>{escape(kpis['scenario'])}</h1><dl class='facts'>{items}</dl></header>"
    )


def _cards(kpis: dict[str, Any]) -> str:
    a, b = kpis["variants"][Variant.UNCONTROLLED], kpis["variants"][Variant.SMART]
    cards = [
        ("Peak transformer loading", f"{pct(a['peak_transformer_loading'])} → {pct(b['peak_transformer_loading'])}"),
        ("Overloaded hours", f"{a['overloaded_hours']:,.1f} → {b['overloaded_hours']:,.1f} h"),
        ("Energy delivered", f"{a['delivered_pct']:.1f} → {b['delivered_pct']:.1f} %"),
        ("Substation peak", f"{kw(a['substation_peak_kw'])} → {kw(b['substation_peak_kw'])}"),
        ("EV energy cost", f"{a['ev_energy_cost_eur']:,.0f} → {b['ev_energy_cost_eur']:,.0f} €"),
    ]
    tone = "ok" if b["overloaded_steps"] == 0 and b["delivered_pct"] >= 98.0 else "warn"
    inner = "".join(
        f"<div class='card {tone}'><div class='label'>{escape(n)}</div><div class='value'>{escape(v)}</div>"
        f"<div class='sub'>uncontrolled → smart</div></div>"
        for n, v in cards
    )
    return f"<section class='cards'>{inner}</section>"


def _section(title: str, content: str, note: str = "") -> str:
    note_html = f"<p class='note'>{escape(note)}</p>" if note else ""
    return f"<section><h2>{escape(title)}</h2>{note_html}<div class='grid'>{content}</div></section>"


def _note(kpis: dict[str, Any]) -> str:
    smart = kpis["smart"]
    return (
        f"Smart charging plans each transformer to {100 * kpis['limit']:.0f} % of its rating with a linear, "
        f"conservative headroom; every figure here comes from the full power flow. Re-plans after the power-flow "
        f"check: {smart['rounds'] - 1}. Overloaded: any transformer above 100 %."
    )


def _kpi_table(kpis: dict[str, Any]) -> str:
    rows: list[tuple[str, str, Any]] = [
        ("Peak transformer loading", "peak_transformer_loading", pct),
        ("Transformers overloaded", "transformers_overloaded", count),
        ("Steps with an overload", "overloaded_steps", count),
        ("Transformer-hours overloaded", "transformer_overload_hours", lambda v: f"{v:,.2f} h"),
        ("Overloads caused by EVs (steps)", "ev_caused_overload_steps", count),
        ("EV energy", "ev_energy_kwh", kwh),
        ("Delivered of requested", "delivered_pct", lambda v: f"{v:.2f} %"),
        ("Delivered of possible (plug-in time × power)", "delivered_of_possible_pct", lambda v: f"{v:.2f} %"),
        ("EV peak", "ev_peak_kw", kw),
        ("Substation peak", "substation_peak_kw", kw),
        ("Grid energy cost", "grid_energy_cost_eur", lambda v: f"{v:,.0f} €"),
        ("EV energy cost", "ev_energy_cost_eur", lambda v: f"{v:,.0f} €"),
        ("Failed power-flow steps", "failed_steps", count),
    ]
    variants = kpis["variants"]
    body = [[name, *(fmt(variants[v][key]) for v in Variant)] for name, key, fmt in rows]
    return _table("Three runs of the same period", ["Figure", *(LABELS[v] for v in Variant)], body)


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<figure class='fig wide'><figcaption>{escape(title)}</figcaption>"
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></figure>"
    )


def _axes(wide: bool) -> tuple[Figure, Axes]:
    fig = Figure(figsize=WIDE if wide else HALF, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # pyplot-free
    return fig, fig.add_subplot()


def _max_loading(study: ChargingStudy, v: Variant) -> np.ndarray:
    top: np.ndarray = 100.0 * np.nanmax(study.flows[v].trafo_loading, axis=1, initial=0.0)
    return top


def _ev_power(study: ChargingStudy, v: Variant) -> np.ndarray:
    total: np.ndarray = study.flows[v].ev_kw.sum(axis=1)
    return total


def _import(study: ChargingStudy, v: Variant) -> np.ndarray:
    return study.flows[v].import_kw


def _over_time(study: ChargingStudy, series: Any, ylabel: str, *, with_base: bool = True) -> Figure:
    fig, ax = _axes(True)
    ax.margins(x=0)
    for v in Variant:
        if v is Variant.NO_EV and not with_base:
            continue
        ax.plot(study.times, series(study, v), color=COLORS[v], lw=1.2, label=LABELS[v])
    if series is _max_loading:
        ax.axhline(100.0, color="#dc2626", lw=0.8, ls="--")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", ncols=3)
    return fig


def _peaks(study: ChargingStudy) -> Figure | None:
    if not len(study.groups):
        return None
    peaks = {v: 100.0 * np.nanmax(study.flows[v].group_loading, axis=0, initial=0.0) for v in Variant}
    order = np.argsort(-peaks[Variant.UNCONTROLLED])[:30]
    fig, ax = _axes(True)
    x = np.arange(order.size)
    for k, v in enumerate(Variant):
        ax.bar(x + (k - 1) * 0.28, peaks[v][order], 0.28, color=COLORS[v], label=LABELS[v])
    ax.axhline(100.0, color="#dc2626", lw=0.8, ls="--")
    ax.set_xticks(x, [study.groups.names[i][-22:] for i in order], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("peak loading, % of rating")
    ax.legend(ncols=3)
    return fig


def _figure(title: str, fig: Figure | None, wide: bool) -> str:
    inner = "<p class='empty'>Nothing to draw.</p>" if fig is None else f"<img alt='{escape(title)}' src='{png(fig)}'>"
    return f"<figure class='fig{' wide' * wide}'><figcaption>{escape(title)}</figcaption>{inner}</figure>"
