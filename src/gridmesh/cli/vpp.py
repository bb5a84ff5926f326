"""``gridmesh vpp …``: a virtual power plant's flexibility envelope, and an award dispatched through the twin."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.optim.vpp import FloatArray
from gridmesh.optim.vpp_envelope import Envelope, vpp_envelope
from gridmesh.sim.vpp_study import VppCase, envelope_document, run_vpp_study, vpp_case

app = typer.Typer(help="Virtual power plants: flexibility envelope, award dispatch and delivery.", no_args_is_help=True)

Scenario = Annotated[str, typer.Argument(help="scenario YAML, or `demo`")]
Site = Annotated[str | None, typer.Option(help="the VPP (level-3 site) id; default: the first one")]
Day = Annotated[datetime | None, typer.Option(help="the day, e.g. 2016-06-15 (default: the scenario's start)")]


def _case(scenario: str, site: str | None, day: datetime | None) -> VppCase:
    loaded = scenario_cli.load(scenario)
    try:
        with console.status("building the VPP: assets, baseline power flow, network sensitivities …"):
            return vpp_case(loaded, site=site, day=day)
    except ValueError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    except GridmeshError as exc:
        errors.print(f"[red]VPP case failed[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc


@app.command()
def envelope(
    scenario: Scenario,
    site: Site = None,
    day: Day = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Up/down capability per interval, the storage energy window and the cost curve of a VPP for a day."""
    case = _case(scenario, site, day)
    env = vpp_envelope(case.fleet)
    doc = envelope_document(case, env)
    if as_json:
        print(json.dumps(doc))
        return
    console.print(_envelope_table(case, env), soft_wrap=True)
    storage = doc["storage"]
    console.print(
        f"storage: ±{storage['power_kw']:,.0f} kW, may fall {storage['energy_below_kwh']:,.0f} kWh and rise "
        f"{storage['energy_above_kwh']:,.0f} kWh (stored {storage['stored_kwh']:,.0f} kWh); "
        f"{len(doc['assets'])} assets of {len({a['owner'] for a in doc['assets']})} owners; "
        f"network limits that can bind: {len(doc['network']['limits_that_can_bind'])}",
        soft_wrap=True,
    )
    costs = Table(title="cost curve (merit order)", title_justify="left")
    for column in ("direction", "resource", "€/kWh", "max kW"):
        costs.add_column(column, justify="right" if column != "resource" else "left")
    for s in env.costs:
        costs.add_row(s.direction.value, escape(s.resource), f"{s.eur_per_kwh:.3f}", f"{s.kw.max():,.0f}")
    console.print(costs)


def _names(limits: pd.Series) -> str:
    """The network limits named in an hour, at most two and a count."""
    names = sorted({n for text in limits for n in str(text).split(", ") if n})
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def _envelope_table(case: VppCase, env: Envelope) -> Table:
    """Hourly view: the smallest bound within each hour (what can be held for the whole hour)."""
    frame = pd.DataFrame(
        {
            "up": env.up_kw,
            "down": env.down_kw,
            "e_up": env.energy_up_kwh(),
            "e_down": env.energy_down_kwh(),
        },
        index=case.times,
    )
    hours = frame.resample("1h").agg({"up": "min", "down": "min", "e_up": "last", "e_down": "last"})
    limits = pd.Series(list(env.limited_by) or [""] * env.steps, index=case.times).resample("1h").apply(_names)
    table = Table(title=f"{escape(case.site)}: envelope {case.times[0]:%Y-%m-%d}", title_justify="left")
    for column in ("hour", "up kW", "down kW", "cumulative up kWh", "cumulative down kWh", "limited by"):
        table.add_column(column, justify="left" if column == "limited by" else "right")
    for time, row in hours.iterrows():
        table.add_row(
            f"{pd.Timestamp(str(time)):%H:%M}",
            f"{row['up']:,.0f}",
            f"{row['down']:,.0f}",
            f"{row['e_up']:,.0f}",
            f"{row['e_down']:,.0f}",
            escape(str(limits.get(time, ""))),
        )
    return table


@app.command()
def dispatch(
    scenario: Scenario,
    out: Annotated[Path, typer.Option("--out", help="folder for delivery.csv, allocation.csv, report.html")],
    award: Annotated[
        Path | None, typer.Option(help="award per interval, kW (up > 0): CSV with an award_kw column, or JSON list")
    ] = None,
    flat: Annotated[float | None, typer.Option(help="the same award in every interval, kW (up > 0)")] = None,
    site: Site = None,
    day: Day = None,
) -> None:
    """Disaggregate an award over the VPP's assets, run the twin, and report delivery against the award."""
    if (award is None) == (flat is None):
        errors.print("[red]give exactly one of --award FILE and --flat KW[/red]")
        raise typer.Exit(2)
    case = _case(scenario, site, day)
    steps = len(case.times)
    values = np.full(steps, float(flat)) if flat is not None else _read_award(award, steps)  # type: ignore[arg-type]
    with console.status("disaggregating and running the twin …"):
        _, delivery = run_vpp_study(case, values, out=out)
    s = delivery.summary
    table = Table(title=f"{escape(case.site)}: delivery {case.times[0]:%Y-%m-%d}", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("awarded energy", f"{s['awarded_kwh']:,.1f} kWh")
    table.add_row("delivered (awarded direction)", f"{100 * s['delivered_share']:.1f} %")
    table.add_row("mean abs. error vs award", f"{s['mae_vs_award_kw']:,.2f} kW")
    table.add_row("mean abs. error vs target", f"{s['mae_vs_target_kw']:,.2f} kW")
    table.add_row("clipped to the envelope", f"{s['clipped_kwh']:,.1f} kWh in {s['clipped_intervals']} intervals")
    table.add_row("dispatch cost", f"{s['cost_eur']:,.2f} €")
    table.add_row("new voltage violations / overloads", f"{s['new_voltage_violations']} / {s['new_overloads']}")
    console.print(table)
    reasons = sorted({r for r in delivery.allocation.fit.reasons if r})
    if reasons:
        console.print(f"[yellow]award clipped[/yellow]: {escape(', '.join(reasons))} (see delivery.csv)")
    console.print(f"report: {out / 'report.html'}", soft_wrap=True)


def _read_award(path: Path, steps: int) -> FloatArray:
    """An award file as ``steps`` floats; a wrong file exits 2 with what was expected."""
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            raw = doc["award_kw"] if isinstance(doc, dict) else doc
        else:
            frame = pd.read_csv(path)
            raw = frame["award_kw"] if "award_kw" in frame else frame.iloc[:, -1]
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        errors.print(f"[red]{escape(str(path))}: cannot read an award[/red] ({escape(str(exc))})", soft_wrap=True)
        raise typer.Exit(2) from exc
    if values.shape != (steps,) or not np.isfinite(values).all():
        errors.print(
            f"[red]{escape(str(path))}: award_kw must hold {steps} finite values (one per interval), "
            f"got {values.size}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return values
