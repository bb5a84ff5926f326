"""One self-contained HTML report of a study folder, written for people rather than scripts.

Everything travels in one file (plots as base64 PNG from matplotlib's Agg canvas, inline CSS, no scripts
or network), so a report can be mailed or archived next to the data it describes. Long studies are
resampled (hourly or daily min/mean/max) before plotting so a year still writes in seconds and stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib import style

from gridmesh.sim.report_data import DASH, Study, count, finite, kg, kw, kwh, label, losses_pct, pct, pu, read
from gridmesh.sim.report_plots import PLOTS, RC, Plot, png

__all__ = ["CSS", "write_report"]


def write_report(out: Path) -> Path:
    """Read the outputs of :func:`gridmesh.sim.study.run_study` in ``out``; write ``out/report.html``.

    Returns the path of the report. Missing optional files (sites, batteries, …) give a note instead of a plot.
    """
    study = read(out)
    with style.context(RC):
        figures = "".join(_figure_card(plot, study) for plot in PLOTS)
    body = "".join(
        [
            _header(study.kpis),
            _cards(study.kpis),
            _section("Plots", figures, note=_resample_note(study.rule)),
            _section("Tables", _tables(study)),
        ]
    )
    path = out / "report.html"
    title = escape(f"gridmesh study · {study.kpis.get('scenario', '')}")
    path.write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>",
        encoding="utf-8",
    )
    return path


# ----------------------------------------------------------------------------------------------- header


def _header(kpis: dict[str, Any]) -> str:
    steps, hours = kpis.get("steps", 0), finite(kpis.get("hours")) or 0.0
    step_min = 60 * hours / steps if steps else float("nan")
    period = DASH
    if kpis.get("start"):
        start = datetime.fromisoformat(str(kpis["start"]))
        end = start + timedelta(hours=hours)
        period = f"{start:%d %b %Y %H:%M} → {end:%d %b %Y %H:%M}"
    facts = [
        ("Controller", kpis.get("controller", DASH)),
        ("Period", period),
        ("Days", count(kpis.get("days"))),
        ("Steps", f"{count(steps)} × {count(step_min)} min"),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    failed = int(kpis.get("failed_steps") or 0)
    alert = (
        f"<p class='alert'>{failed:,} of {steps:,} steps did not converge; their values are missing from the plots.</p>"
        if failed
        else ""
    )
    return (
        f"<header><p class='kicker'>gridmesh study report</p>"
        f"<h1>{escape(str(kpis.get('scenario', 'study')))}</h1><dl class='facts'>{items}</dl>{alert}</header>"
    )


def _cards(kpis: dict[str, Any]) -> str:
    volt, load = kpis.get("voltage", {}), kpis.get("loading", {})
    minutes = finite(volt.get("bus_minutes_outside_band")) or 0.0
    overloaded = finite(load.get("branch_hours_overloaded")) or 0.0
    not_served = finite(kpis.get("energy_not_served_kwh")) or 0.0
    cycles = list(kpis.get("battery_equivalent_cycles", {}).values())
    cards = [
        (
            "Consumption",
            kwh(kpis.get("energy_consumed_kwh")),
            f"not served {kwh(not_served)}",
            "bad" if not_served > 1e-6 else "",
        ),
        (
            "Generation",
            kwh(sum(kpis.get("generation_kwh", {}).values())),
            f"renewable share {pct(kpis.get('renewable_share'))}",
            "",
        ),
        ("Grid import", kwh(kpis.get("grid_import_kwh")), f"peak {kw(kpis.get('peak_import_kw'))}", ""),
        ("Grid export", kwh(kpis.get("grid_export_kwh")), "fed back upstream", ""),
        ("Losses", kwh(kpis.get("losses_kwh")), f"{losses_pct(kpis)} of energy fed in", ""),
        ("CO₂", kg(kpis.get("co2_kg")), "grid import and CHP", ""),
        (
            "Outside voltage band",
            count(minutes, "min"),
            f"bus-minutes · {count(volt.get('buses_with_violations'))}"
            f" buses · {pu(volt.get('v_min_pu'))[:-3]}–{pu(volt.get('v_max_pu'))}",
            "warn" if minutes > 0 else "ok",
        ),
        (
            "Max loading",
            pct(load.get("max_loading")),
            f"{count(overloaded)} branch-h overloaded",
            "warn" if overloaded > 0 else "ok",
        ),
    ]
    if cycles:
        cards.append(
            ("Batteries", kwh(kpis.get("battery_discharge_kwh")), f"discharged · {np.mean(cycles):.2f} cycles mean", "")
        )
    failed = int(kpis.get("failed_steps") or 0)
    cards.append(("Failed steps", count(failed), f"of {count(kpis.get('steps'))}", "bad" if failed else "ok"))
    return (
        "<section class='cards'>"
        + "".join(
            f"<div class='card {tone}'><div class='label'>{escape(name)}</div><div class='value'>{escape(value)}"
            f"</div><div class='sub'>{escape(sub)}</div></div>"
            for name, value, sub, tone in cards
        )
        + "</section>"
    )


def _section(title: str, content: str, note: str = "") -> str:
    note_html = f"<p class='note'>{escape(note)}</p>" if note else ""
    return f"<section><h2>{escape(title)}</h2>{note_html}<div class='grid'>{content}</div></section>"


def _resample_note(rule: str | None) -> str:
    if rule is None:
        return ""
    word = "hourly" if rule == "1h" else "daily"
    return f"Time plots show {word} means (shaded: {word} min–max); duration curves use every step."


def _figure_card(plot: Plot, study: Study) -> str:
    fig = plot.build(study)
    title = plot.title if isinstance(plot.title, str) else plot.title(study)
    return _card(
        title, _empty(plot.empty) if fig is None else f"<img alt='{escape(title)}' src='{png(fig)}'>", wide=plot.wide
    )


def _card(title: str, inner: str, *, wide: bool = False, tall: bool = False) -> str:
    """A white panel of the grid; ``wide`` spans both columns, ``tall`` three rows (short cards stack beside)."""
    cls = "fig" + " wide" * wide + " tall" * tall
    return f"<figure class='{cls}'><figcaption>{escape(title)}</figcaption>{inner}</figure>"


def _empty(note: str) -> str:
    return f"<p class='empty'>{escape(note)}</p>"


# ----------------------------------------------------------------------------------------------- tables


def _tables(study: Study) -> str:
    return "".join(
        [
            _table("Key performance indicators", ["Indicator", "Value"], _kpi_rows(study.kpis), "", tall=True),
            _table(
                "Most loaded branches",
                ["Branch", "Kind", "Max loading", "Overloaded"],
                _branch_rows(study),
                "No branch results.",
            ),
            _table(
                "Worst buses — time outside their voltage band",
                ["Bus", "kV", "V min", "V max", "Below", "Above"],
                _bus_rows(study),
                "No bus left its voltage band.",
            ),
            _table(
                "Batteries",
                ["Battery", "Cycles", "SOC min", "SOC max"],
                _battery_rows(study),
                "No batteries in this scenario.",
            ),
            _table(
                "Sites",
                [
                    "Site",
                    "Level",
                    "Consumption",
                    "Generation",
                    "Import",
                    "Export",
                    "Peak import",
                    "Self-sufficiency",
                    "Self-consumption",
                ],
                _site_rows(study.kpis),
                "No microgrids or sites in this scenario.",
                wide=True,
            ),
        ]
    )


def _table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    empty: str,
    *,
    wide: bool = False,
    tall: bool = False,
) -> str:
    if not rows:
        return _card(title, _empty(empty), wide=wide, tall=tall)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return _card(
        title,
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>",
        wide=wide,
        tall=tall,
    )


def _kpi_rows(kpis: dict[str, Any]) -> list[list[str]]:
    volt, load = kpis.get("voltage", {}), kpis.get("loading", {})
    generation: dict[str, float] = kpis.get("generation_kwh", {})
    return [
        ["Energy consumed", kwh(kpis.get("energy_consumed_kwh"))],
        ["Energy served", kwh(kpis.get("energy_served_kwh"))],
        ["Energy not served", kwh(kpis.get("energy_not_served_kwh"))],
        *[[f"Generation — {label(k)}", kwh(v)] for k, v in sorted(generation.items(), key=lambda kv: -kv[1])],
        ["Renewable share (of gross consumption)", pct(kpis.get("renewable_share"))],
        ["Grid import", kwh(kpis.get("grid_import_kwh"))],
        ["Grid export", kwh(kpis.get("grid_export_kwh"))],
        ["Peak import", kw(kpis.get("peak_import_kw"))],
        ["Losses", f"{kwh(kpis.get('losses_kwh'))} ({losses_pct(kpis)})"],
        ["CO₂", kg(kpis.get("co2_kg"))],
        [
            "Battery discharge / charge",
            f"{kwh(kpis.get('battery_discharge_kwh'))} / {kwh(kpis.get('battery_charge_kwh'))}",
        ],
        ["Voltage min / max", f"{pu(volt.get('v_min_pu'))} / {pu(volt.get('v_max_pu'))}"],
        ["Bus-minutes outside band", count(volt.get("bus_minutes_outside_band"), "min")],
        ["Buses with violations", count(volt.get("buses_with_violations"))],
        ["Max branch loading", pct(load.get("max_loading"))],
        ["Branches overloaded", count(load.get("branches_overloaded"))],
        ["Branch-hours overloaded", count(load.get("branch_hours_overloaded"), "h")],
        ["Steps (failed)", f"{count(kpis.get('steps'))} ({count(kpis.get('failed_steps'))})"],
        ["Simulated hours", count(kpis.get("hours"), "h")],
    ]


def _branch_rows(study: Study) -> list[list[str]]:
    if study.branches.empty:
        return []
    top = study.branches.nlargest(10, "max_loading")
    return [[str(r.branch), str(r.kind), pct(r.max_loading), count(r.hours_overloaded, "h")] for r in top.itertuples()]


def _bus_rows(study: Study) -> list[list[str]]:
    buses = study.buses
    if buses.empty:
        return []
    outside = buses["minutes_below"] + buses["minutes_above"]
    top = buses.assign(outside=outside)[outside > 0].nlargest(10, "outside")
    return [
        [
            str(r.bus),
            f"{r.vn_kv:g}",
            pu(r.v_min_pu),
            pu(r.v_max_pu),
            count(r.minutes_below, "min"),
            count(r.minutes_above, "min"),
        ]
        for r in top.itertuples()
    ]


def _battery_rows(study: Study) -> list[list[str]]:
    cycles: dict[str, float] = study.kpis.get("battery_equivalent_cycles", {})
    frame = study.batteries
    soc = frame.groupby("battery")["soc"].agg(["min", "max"]) if {"battery", "soc"} <= set(frame) else None

    def soc_pct(battery: str, stat: str) -> str:
        return pct(soc.at[battery, stat], 0) if soc is not None and battery in soc.index else DASH

    return [
        [b, DASH if finite(n) is None else f"{n:.2f}", soc_pct(b, "min"), soc_pct(b, "max")] for b, n in cycles.items()
    ]


def _site_rows(kpis: dict[str, Any]) -> list[list[str]]:
    sites: dict[str, dict[str, Any]] = kpis.get("sites", {})
    levels = kpis.get("levels", {})

    def column(key: str, fmt: Callable[[Any, float | None], str]) -> list[str]:
        values = [finite(t.get(key)) for t in sites.values()]
        basis = max((abs(v) for v in values if v is not None), default=0.0)
        return [fmt(v, basis) for v in values]

    columns = [
        list(sites),
        [str(levels.get(s, DASH)) for s in sites],
        *(column(k, kwh) for k in ("consumption_kwh", "generation_kwh", "import_kwh", "export_kwh")),
        column("peak_import_kw", kw),
        *([pct(t.get(k)) for t in sites.values()] for k in ("self_sufficiency", "self_consumption")),
    ]
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
