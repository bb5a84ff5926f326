"""``gridmesh``: the command line (see ``gridmesh --help``)."""

from __future__ import annotations

import json
import math
import webbrowser
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gridmesh.cli import charging as charging_cli
from gridmesh.cli import coordinate as coordinate_cli
from gridmesh.cli import edge as edge_cli
from gridmesh.cli import fault as fault_cli
from gridmesh.cli import forecast as forecast_cli
from gridmesh.cli import island as island_cli
from gridmesh.cli import keys as keys_cli
from gridmesh.cli import live as live_cli
from gridmesh.cli import ocpp as ocpp_cli
from gridmesh.cli import reliability as reliability_cli
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli import token as token_cli
from gridmesh.cli import vpp as vpp_cli
from gridmesh.cli.console import console, errors
from gridmesh.cli.controllers import ControllerName, build_controller
from gridmesh.control.volt_var import InverterCurves
from gridmesh.errors import GridmeshError
from gridmesh.model.graph import connectivity
from gridmesh.physics.powerflow import Injections, PowerFlow
from gridmesh.sim.compare import comparison, load_runs, write_comparison
from gridmesh.sim.injections import ProfileInjections
from gridmesh.sim.report import write_report
from gridmesh.sim.study import run_study

app = typer.Typer(help="gridmesh — operate and simulate distributed smart grids.", no_args_is_help=True)
app.add_typer(scenario_cli.app, name="scenario")
app.add_typer(forecast_cli.app, name="forecast")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(fault_cli.app, name="fault")
app.add_typer(charging_cli.app, name="charging")
app.add_typer(coordinate_cli.app, name="coordinate")
app.add_typer(ocpp_cli.app, name="ocpp")
app.add_typer(island_cli.app, name="island")
app.add_typer(token_cli.app, name="token")
app.add_typer(vpp_cli.app, name="vpp")
app.command(name="edge")(edge_cli.edge)
keys_cli.app.command(name="edge")(edge_cli.provision)
app.command(name="run")(live_cli.run)
app.command(name="centre")(live_cli.centre)
app.command(name="field")(live_cli.field)
app.command(name="reliability")(reliability_cli.reliability)


@app.command()
def powerflow(
    file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Power flow of one snapshot: the first time step of the scenario."""
    scenario = scenario_cli.load(file)
    engine = PowerFlow(scenario.network)
    if scenario.profiles.names:
        base = ProfileInjections(scenario.network, scenario.profiles).window(
            scenario.profiles.step_of(scenario.time.start), 1
        )
        injections = Injections(
            base.load_p_kw,
            base.load_q_kvar,
            base.gen_p_kw,
            base.gen_q_kvar,
            engine.base_injections().ev_p_kw,
            engine.base_injections().battery_p_kw,
        )
    else:
        injections = engine.base_injections()
    result = engine.run(injections)
    if result.failed:
        errors.print(f"[red]power flow did not converge[/red]: {result.failed[0]} — check loads and ratings")
        raise typer.Exit(1)
    index = result.index
    p_from = {
        **dict(zip(index.lines, result.line_p_from_kw[0], strict=True)),
        **dict(zip(index.transformers, result.trafo_p_from_kw[0], strict=True)),
    }
    loading = {
        **dict(zip(index.lines, result.line_loading[0], strict=True)),
        **dict(zip(index.transformers, result.trafo_loading[0], strict=True)),
    }
    doc: dict[str, Any] = {
        "buses": {
            b: {"v_pu": _num(v), "angle_deg": _num(a)}
            for b, v, a in zip(index.buses, result.v_pu[0], result.angle_deg[0], strict=True)
        },
        "branches": {k: {"loading": _num(loading[k]), "p_from_kw": _num(p_from[k])} for k in loading},
        "losses_kw": float(result.losses_kw[0]),
    }
    if as_json:
        print(json.dumps(doc))
        return
    v = result.v_pu[0]
    table = Table(title=f"{scenario.name} at {scenario.time.start}", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("buses / branches", f"{len(index.buses)} / {len(loading)}")
    table.add_row("voltage min … max", f"{_fmt(min(v))} … {_fmt(max(v))} pu")
    table.add_row("highest loading", f"{max(loading.values()) * 100:.1f} % ({max(loading, key=loading.__getitem__)})")
    table.add_row("grid import", f"{result.grid_p_kw[0].sum():,.1f} kW")
    table.add_row("losses", f"{result.losses_kw[0]:,.1f} kW")
    islands = connectivity(scenario.network).islands()
    table.add_row("islanded parts (no source)", f"{len(islands)} with {sum(map(len, islands))} buses")
    console.print(table)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _fmt(value: float) -> str:
    return f"{value:.4f}"


@app.command()
def simulate(
    file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    out: Annotated[Path, typer.Option("--out", help="folder for results")],
    days: Annotated[float | None, typer.Option(help="study length (default: the scenario's)")] = None,
    start: Annotated[datetime | None, typer.Option(help="first instant, e.g. 2016-06-01")] = None,
    controller: Annotated[
        list[ControllerName] | None,
        typer.Option(help="battery controller; repeat to combine (arbitrated by priority)"),
    ] = None,
    detail: Annotated[bool, typer.Option(help="also write every bus voltage (large)")] = False,
    volt_var: Annotated[
        bool, typer.Option(help="PV and wind inverters follow IEEE 1547-2018 volt-var and volt-watt curves")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the EV session draw")] = 7,
    open_report: Annotated[bool, typer.Option("--open", help="open the report in a browser")] = False,
) -> None:
    """Run a study and write time series (Parquet), kpis.json and report.html."""
    scenario = scenario_cli.load(file).with_time(start=start, days=days)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"simulating {scenario.name}", total=scenario.steps)
            result = run_study(
                scenario,
                out=out,
                controller=[
                    build_controller(name, scenario) for name in controller or [ControllerName.SELF_CONSUMPTION]
                ],
                detail=detail,
                seed=seed,
                volt_var=InverterCurves() if volt_var else None,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    except GridmeshError as exc:
        errors.print(f"[red]study failed[/red]: {exc}")
        raise typer.Exit(1) from exc
    with console.status("writing report …"):
        report = write_report(out)
    k = result.kpis
    console.print(
        f"[green]done[/green]: {result.steps} steps in {result.seconds:.1f} s "
        f"({result.steps / max(result.seconds, 1e-9):,.0f} steps/s); failed steps: {k['failed_steps']}\n"
        f"  peak import {k['peak_import_kw']:,.0f} kW · losses {k['losses_percent']:.2f} % · "
        f"renewable share {k['renewable_share'] * 100:.0f} % · minutes outside band "
        f"{k['voltage']['bus_minutes_outside_band']:,.0f}\n"
        f"  KPIs:   {out / 'kpis.json'}\n  report: {report}",
        soft_wrap=True,
    )
    if open_report:
        webbrowser.open(report.resolve().as_uri())


@app.command()
def compare(
    folders: Annotated[list[Path], typer.Argument(help="study output folders (each with kpis.json)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write")] = Path("comparison.html"),
    as_json: Annotated[bool, typer.Option("--json", help="print metric → run → value as JSON")] = False,
) -> None:
    """Compare studies side by side: peak import, cost, losses, voltage violations, curtailment, cycles."""
    try:
        runs = load_runs(folders)
    except FileNotFoundError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    table = comparison(runs)
    if as_json:
        print(json.dumps(table))
        return
    view = Table(title="comparison", title_justify="left")
    view.add_column("metric")
    for label, _ in runs:
        view.add_column(label, justify="right")
    for metric, values in table.items():
        view.add_row(metric, *(f"{v:,.1f}" for v in values.values()))
    console.print(view)
    console.print(f"report: {write_comparison(runs, output)}", soft_wrap=True)


if __name__ == "__main__":
    app()
