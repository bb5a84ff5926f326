"""``gridmesh island …``: islanding studies — microgrids riding through an outage on grid-forming batteries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.sim.islanding import Cause, IslandingResult, Outage, run_islanding, write_islanding

app = typer.Typer(help="Islanding: microgrids on their grid-forming batteries through an outage.", no_args_is_help=True)

EVENING_PEAK_HOUR = 17


@app.callback()
def island() -> None:
    """Islanding: microgrids on their grid-forming batteries through an outage."""


@app.command()
def study(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    out: Annotated[Path, typer.Option("--out", help="folder for islanding.json, .parquet and .html")],
    site: Annotated[
        list[str] | None, typer.Option("--site", help="microgrid id that islands; repeat for several")
    ] = None,
    all_sites: Annotated[bool, typer.Option("--all", help="every microgrid with a grid-forming battery")] = False,
    start: Annotated[
        datetime | None,
        typer.Option("--start", help="outage start (default: 17:00 of the scenario's first day, the evening peak)"),
    ] = None,
    outage_hours: Annotated[float, typer.Option("--outage-hours", min=0.25, help="outage length, hours")] = 4.0,
    cause: Annotated[Cause, typer.Option("--cause", help="upstream supply lost, or PCCs opened on command")] = (
        Cause.UPSTREAM
    ),
    soc: Annotated[
        float | None, typer.Option("--soc", min=0.0, max=1.0, help="batteries' SOC at the outage (default: soc_init)")
    ] = None,
) -> None:
    """Island one or all microgrids for an outage; report hours islanded, load and critical load served."""
    if site and all_sites:
        errors.print("[red]give --site or --all, not both[/red]")
        raise typer.Exit(2)
    loaded = scenario_cli.load(scenario)
    first = loaded.time.start.replace(hour=EVENING_PEAK_HOUR, minute=0, second=0, microsecond=0)
    outage = Outage(start=start or first, hours=outage_hours, cause=cause, sites=tuple(site or ()), soc_start=soc)
    try:
        with console.status("islanding …"):
            result = run_islanding(loaded, outage)
    except (GridmeshError, ValueError) as exc:
        errors.print(f"[red]cannot run this islanding study[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    paths = write_islanding(result, out)
    console.print(_table(result))
    console.print("wrote " + ", ".join(str(p) for p in paths), soft_wrap=True)


def _table(result: IslandingResult) -> Table:
    o = result.outage
    table = Table(title=f"{escape(result.scenario)}: {o.cause} outage {o.start:%Y-%m-%d %H:%M} for {o.hours:g} h")
    for column in ("microgrid", "hours islanded", "served", "critical served", "SOC", "f min–max Hz", "resync s"):
        table.add_column(column, justify="left" if column == "microgrid" else "right")
    for s in result.sites:
        table.add_row(
            escape(s.site),
            f"{s.hours_islanded:.2f}",
            f"{s.served_share:.1%}",
            f"{s.critical_share:.1%}" if s.critical_demand_kwh > 0 else "no critical load",
            f"{s.soc_start:.2f} → {s.soc_end:.2f}",
            f"{s.f_min_hz:.2f}–{s.f_max_hz:.2f}",
            f"{s.resync_seconds:.1f}",
        )
    return table
