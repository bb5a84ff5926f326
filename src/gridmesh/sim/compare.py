"""Put studies side by side: one table and one small chart per metric, from each run's ``kpis.json``."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.sim.report import CSS
from gridmesh.sim.report_plots import RC, png


@dataclass(frozen=True)
class Metric:
    """A KPI to compare: how to read it from kpis.json, its unit, and whether lower is better."""

    name: str
    unit: str
    read: Callable[[dict[str, Any]], float]
    lower_is_better: bool = True


def _mean_site(key: str) -> Callable[[dict[str, Any]], float]:
    def read(kpis: dict[str, Any]) -> float:
        values = [s[key] for s in kpis["sites"].values() if not math.isnan(s.get(key, math.nan))]
        return float(sum(values) / len(values)) if values else float("nan")

    return read


METRICS: tuple[Metric, ...] = (
    Metric("peak import", "kW", lambda k: k["peak_import_kw"]),
    Metric("energy cost", "€", lambda k: k.get("energy_cost_eur", float("nan"))),
    Metric("demand charge", "€", lambda k: k.get("demand_charge_eur", float("nan"))),
    Metric("losses", "kWh", lambda k: k["losses_kwh"]),
    Metric("bus-minutes outside band", "min", lambda k: k["voltage"]["bus_minutes_outside_band"]),
    Metric("branch-hours overloaded", "h", lambda k: k["loading"]["branch_hours_overloaded"]),
    Metric("curtailment", "kWh", lambda k: k.get("curtailment_kwh", 0.0)),
    Metric("battery cycles (sum)", "cycles", lambda k: float(sum(k["battery_equivalent_cycles"].values()))),
    Metric("microgrid self-sufficiency (mean)", "%", lambda k: 100 * _mean_site("self_sufficiency")(k), False),
)


def load_runs(folders: Sequence[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(label, kpis) per study folder; the label is the controller, or the folder name when controllers repeat."""
    runs = []
    for folder in folders:
        path = folder / "kpis.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `gridmesh simulate … --out {folder}` first")
        runs.append(json.loads(path.read_text()))
    labels = [str(k.get("controller", "?")) for k in runs]
    if len(set(labels)) < len(labels):
        labels = [f.name for f in folders]
    return list(zip(labels, runs, strict=True))


def comparison(runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """metric → {run label → value}."""
    return {m.name: {label: float(m.read(k)) for label, k in runs} for m in METRICS}


def write_comparison(runs: Sequence[tuple[str, dict[str, Any]]], out: Path) -> Path:
    """A self-contained HTML page comparing the runs; the best value of each metric is marked."""
    table = comparison(runs)
    labels = [label for label, _ in runs]
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    rows = []
    for metric in METRICS:
        values = table[metric.name]
        finite = {k: v for k, v in values.items() if not math.isnan(v)}
        pick = min if metric.lower_is_better else max
        best = pick(finite, key=finite.__getitem__) if finite else None
        if best is not None and list(finite.values()).count(finite[best]) > 1:
            best = None  # a tie has no winner
        cells = "".join(
            f"<td class='num{' best' if label == best else ''}'>{_fmt(values[label])}</td>" for label in labels
        )
        rows.append(f"<tr><td>{html.escape(metric.name)} ({metric.unit})</td>{cells}</tr>")
    charts = "".join(f"<div class='card'><img src='{_chart(metric, table[metric.name])}'></div>" for metric in METRICS)
    first = runs[0][1] if runs else {}
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>gridmesh comparison</title>
<style>{CSS} td.best{{font-weight:700;color:#15803d}} .charts{{display:grid;
grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}} .charts img{{width:100%}}</style></head>
<body><main><header><h1>Controller comparison — {html.escape(str(first.get("scenario", "")))}</h1>
<p>{html.escape(str(first.get("start", "")))}, {first.get("days", "")} days · best value per row in green</p></header>
<section><table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>
<section class="charts">{charts}</section></main></body></html>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    return out


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _chart(metric: Metric, values: dict[str, float]) -> str:
    """Bars of the change against the first run (the baseline), in %, so small differences show."""
    first = next(iter(values.values()), math.nan)
    relative = not math.isnan(first) and abs(first) > 1e-9
    shown = [0.0 if math.isnan(v) else (100 * (v - first) / abs(first) if relative else v) for v in values.values()]
    better = [(s < 0) == metric.lower_is_better and s != 0 for s in shown]
    with style.context(RC):
        fig = Figure(figsize=(4.8, 2.6), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.barh(list(values), shown, color=["#16a34a" if b else "#94a3b8" for b in better])
        ax.axvline(0, color="#334155", linewidth=0.8)
        unit = f"% vs {next(iter(values))}" if relative else metric.unit
        ax.set_title(f"{metric.name} ({unit})", loc="left", fontsize=10)
        ax.invert_yaxis()
        return png(fig)
