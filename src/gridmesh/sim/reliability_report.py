"""Write a reliability study: ``reliability.json`` for scripts and one self-contained HTML page for people.

The page reuses the study report's look (its CSS, matplotlib style and PNG data-URI encoding): headline
cards, the IEEE 1366 indices with and without FLISR beside the FMEA expectation, per-feeder and
per-microgrid bars, the distribution of annual SAIDI, and the rates the study assumed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.sim.reliability import VARIANTS, GroupResult, ReliabilityResult
from gridmesh.sim.reliability_indices import Estimate, Indices
from gridmesh.sim.report import CSS
from gridmesh.sim.report_data import DASH, finite, kwh
from gridmesh.sim.report_plots import DPI, HALF, RC, WIDE, png

__all__ = ["write_reliability"]

LABELS = {"without_flisr": "without FLISR", "with_flisr": "with FLISR"}
COLORS = {"without_flisr": "#94a3b8", "with_flisr": "#1e40af"}


def write_reliability(result: ReliabilityResult, out: Path) -> tuple[Path, Path]:
    """Write ``out/reliability.json`` and ``out/reliability.html``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "reliability.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    with style.context(RC):
        figures = "".join(
            _figure(title, fig, wide)
            for title, fig, wide in (
                ("SAIDI per feeder", _bars(result, "feeder"), False),
                ("SAIDI per microgrid", _bars(result, "microgrid"), False),
                ("Distribution of annual SAIDI (system)", _histogram(result), True),
            )
        )
    system = result.groups[0]
    body = (
        _header(result)
        + _cards(system)
        + _section("Indices (IEEE 1366-2022)", _indices_table(system), _note(result))
        + _section("Plots", figures)
        + _section("Feeders and microgrids", _groups_table(result.groups[1:]))
        + _section("Assumed rates and times", _rates_table(result))
    )
    html_path = out / "reliability.html"
    title = escape(f"gridmesh reliability · {result.network}")
    html_path.write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>",
        encoding="utf-8",
    )
    return json_path, html_path


def _fmt(e: Estimate, digits: int, unit: str = "") -> str:
    mean, half = finite(e.mean), finite(e.ci95)
    if mean is None:
        return DASH
    tail = f" ± {half:,.{digits}f}" if half is not None else ""
    return f"{mean:,.{digits}f}{tail}{' ' + unit if unit else ''}"


def _header(result: ReliabilityResult) -> str:
    facts = [
        ("Years simulated", f"{result.years:,}"),
        ("Seed / chunks", f"{result.seed} / {result.chunks}"),
        ("Customers", f"{result.groups[0].customers:,.0f}"),
        ("Tie transfers checked", f"{result.capacity_checks:,} power flows"),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return (
        "<header><p class='kicker'>gridmesh reliability study</p>"
        f"<h1>{escape(result.network)}</h1><dl class='facts'>{items}</dl></header>"
    )


def _cards(system: GroupResult) -> str:
    a, b = (system.indices[v] for v in VARIANTS)
    cards = [
        ("SAIFI", f"{a.saifi.mean:.3f} → {b.saifi.mean:.3f}", "sustained interruptions / customer·year"),
        ("SAIDI", f"{a.saidi_min.mean:.1f} → {b.saidi_min.mean:.1f} min", "minutes / customer·year"),
        ("CAIDI", f"{_fmt(a.caidi_min, 0)} → {_fmt(b.caidi_min, 0)} min", "minutes / interruption"),
        ("ASAI", f"{a.asai.mean:.5f} → {b.asai.mean:.5f}", "share of hours with supply"),
        ("MAIFI", f"{a.maifi.mean:.3f} → {b.maifi.mean:.3f}", "momentary events / customer·year"),
        ("ENS", f"{kwh(a.ens_kwh.mean)} → {kwh(b.ens_kwh.mean)}", "energy not supplied per year"),
    ]
    inner = "".join(
        f"<div class='card ok'><div class='label'>{escape(n)}</div><div class='value'>{escape(v)}</div>"
        f"<div class='sub'>{escape(s)} · without → with FLISR</div></div>"
        for n, v, s in cards
    )
    return f"<section class='cards'>{inner}</section>"


def _section(title: str, content: str, note: str = "") -> str:
    note_html = f"<p class='note'>{escape(note)}</p>" if note else ""
    return f"<section><h2>{escape(title)}</h2>{note_html}<div class='grid'>{content}</div></section>"


def _note(result: ReliabilityResult) -> str:
    return (
        "Mean over the simulated years ± half-width of the 95 % confidence interval; 'FMEA' is the analytical "
        f"expectation of the same model. Without FLISR a dispatcher operates remote switches after "
        f"{result.rates.remote_switching_min:g} min; with FLISR they operate after {result.rates.flisr_min:g} min. "
        f"Crews switch after {result.rates.manual_switching_min:g} min."
    )


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *, wide: bool = True) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    inner = (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        if rows
        else "<p class='empty'>Nothing to show.</p>"
    )
    return f"<figure class='fig{' wide' * wide}'><figcaption>{escape(title)}</figcaption>{inner}</figure>"


def _indices_table(system: GroupResult) -> str:
    rows = []
    keys = (
        ("SAIFI (1/yr)", "saifi", 3),
        ("SAIDI (min/yr)", "saidi_min", 1),
        ("CAIDI (min)", "caidi_min", 1),
        ("ASAI", "asai", 6),
        ("MAIFI (1/yr)", "maifi", 3),
        ("ENS (kWh/yr)", "ens_kwh", 0),
    )
    for label, key, digits in keys:
        row = [label]
        for v in VARIANTS:
            estimate: Estimate = getattr(system.indices[v], key)
            expected = finite(system.expected[v].get(key))
            row += [_fmt(estimate, digits), DASH if expected is None else f"{expected:,.{digits}f}"]
        rows.append(row)
    headers = ["Index", "Without FLISR", "FMEA", "With FLISR", "FMEA"]
    return _table("System", headers, rows)


def _groups_table(groups: Sequence[GroupResult]) -> str:
    rows = []
    for g in groups:
        a, b = (g.indices[v] for v in VARIANTS)
        rows.append(
            [
                g.name,
                g.kind,
                f"{g.customers:,.0f}",
                *(_pair(a, b, k, d) for k, d in (("saifi", 3), ("saidi_min", 1), ("maifi", 3))),
                f"{kwh(a.ens_kwh.mean)} → {kwh(b.ens_kwh.mean)}",
            ]
        )
    headers = ["Group", "Kind", "Customers", "SAIFI", "SAIDI (min)", "MAIFI", "ENS / yr"]
    return _table("Without → with FLISR", headers, rows)


def _pair(a: Indices, b: Indices, key: str, digits: int) -> str:
    x, y = finite(getattr(a, key).mean), finite(getattr(b, key).mean)
    return DASH if x is None or y is None else f"{x:,.{digits}f} → {y:,.{digits}f}"


def _rates_table(result: ReliabilityResult) -> str:
    fields = type(result.rates).model_fields
    rows = [[name, f"{value:g}", fields[name].description or ""] for name, value in result.rates.model_dump().items()]
    return _table("Rates", ["Parameter", "Value", "Meaning and source"], rows)


def _axes(wide: bool) -> tuple[Figure, Axes]:
    fig = Figure(figsize=WIDE if wide else HALF, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _bars(result: ReliabilityResult, kind: str) -> Figure | None:
    groups = [g for g in result.groups if g.kind == kind and g.customers > 0]
    if not groups:
        return None
    fig, ax = _axes(False)
    y = np.arange(len(groups))
    for k, v in enumerate(VARIANTS):
        means = [g.indices[v].saidi_min.mean for g in groups]
        errors = [g.indices[v].saidi_min.ci95 for g in groups]
        ax.barh(y + (k - 0.5) * 0.4, means, 0.4, xerr=errors, color=COLORS[v], label=LABELS[v])
    ax.set_yticks(y, [g.name[-28:] for g in groups])
    ax.invert_yaxis()
    ax.set_xlabel("SAIDI, min per customer and year")
    ax.legend()
    return fig


def _histogram(result: ReliabilityResult) -> Figure | None:
    series = {v: result.annual_saidi_min[v][:, 0] for v in VARIANTS}
    if not all(np.all(np.isfinite(s)) for s in series.values()):
        return None
    fig, ax = _axes(True)
    top = max(float(s.max()) for s in series.values()) or 1.0
    bins = np.linspace(0.0, top, 41).tolist()
    for v, values in series.items():
        ax.hist(values, bins=bins, color=COLORS[v], alpha=0.55, label=f"{LABELS[v]} (mean {values.mean():.1f})")
    ax.set_xlabel("SAIDI of a simulated year, min per customer")
    ax.set_ylabel("years")
    ax.legend()
    return fig


def _figure(title: str, fig: Figure | None, wide: bool) -> str:
    inner = "<p class='empty'>Nothing to draw.</p>" if fig is None else f"<img alt='{escape(title)}' src='{png(fig)}'>"
    return f"<figure class='fig{' wide' * wide}'><figcaption>{escape(title)}</figcaption>{inner}</figure>"
