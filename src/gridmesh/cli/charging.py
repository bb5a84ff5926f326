"""``gridmesh charging …``: smart EV charging under the grid's headroom, against uncontrolled charging."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.sim.ev_study import Variant, run_charging_study, with_home_chargers
from gridmesh.sim.ev_study_report import LABELS, write_charging

app = typer.Typer(
    help="Smart EV charging: share transformer headroom between vehicles; compare with uncontrolled charging.",
    no_args_is_help=True,
)

PHASES = {
    Variant.NO_EV: "power flow without EVs",
    Variant.UNCONTROLLED: "uncontrolled charging",
    Variant.SMART: "smart charging",
}


@app.callback()
def charging() -> None:
    """Smart EV charging: share transformer headroom between vehicles; compare with uncontrolled charging."""


@app.command()
def study(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    days: Annotated[float | None, typer.Option(min=0.01, help="days to simulate (default: the scenario's)")] = None,
    start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="first day (default: the scenario's)")
    ] = None,
    penetration: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="add an 11 kW home charger at this share of residential load buses"),
    ] = 0.0,
    limit: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="loading smart charging plans to, as a fraction of the rating")
    ] = 0.97,
    seed: Annotated[int, typer.Option(help="seed of the EV sessions and of the added chargers")] = 7,
    out: Annotated[Path, typer.Option("-o", "--out", help="folder for charging.json and charging.html")] = Path(
        "charging"
    ),
) -> None:
    """Run the period without EVs, with uncontrolled and with smart charging; report loadings, energy and cost."""
    started = time.perf_counter()
    loaded = scenario_cli.load(scenario)
    try:
        loaded = with_home_chargers(loaded.with_time(start=start, days=days), share=penetration, seed=seed)
        if not loaded.network.ev_chargers:
            errors.print(
                f"[red]{escape(loaded.name)} has no EV chargers[/red] — add `ev_chargers` or pass --penetration",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        columns = (TextColumn("[bold]{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks or (done <= bar.tasks[tasks[phase]].completed):
                    tasks[phase] = bar.add_task(PHASES.get(Variant(phase), phase), total=total)
                bar.update(tasks[phase], completed=done)

            result = run_charging_study(loaded, limit=limit, seed=seed, progress=progress)
    except (GridmeshError, ValueError) as exc:
        errors.print(f"[red]charging study failed[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    json_path, html_path = write_charging(result, out)
    console.print(_table(result.kpis), soft_wrap=True)
    console.print(f"wrote {json_path} and {html_path} in {time.perf_counter() - started:.1f} s")


def _table(kpis: dict[str, Any]) -> Table:
    table = Table(
        title=f"{escape(kpis['scenario'])}: {kpis['chargers']} chargers, {kpis['sessions']} sessions, "
        f"{kpis['days']:g} days from {kpis['start'][:10]}",
        title_justify="left",
        caption="from the full power flow; overloaded: a transformer above 100 % of its rating",
        caption_justify="left",
    )
    table.add_column("run")
    for column in ("peak loading", "overloaded h", "delivered", "of possible", "substation peak", "EV cost"):
        table.add_column(column, justify="right")
    for variant in Variant:
        v = kpis["variants"][variant]
        table.add_row(
            LABELS[variant],
            f"{100 * v['peak_transformer_loading']:.1f} %",
            f"{v['overloaded_hours']:.2f}",
            f"{v['delivered_pct']:.1f} %" if variant is not Variant.NO_EV else "—",
            f"{v['delivered_of_possible_pct']:.1f} %" if variant is not Variant.NO_EV else "—",
            f"{v['substation_peak_kw']:,.0f} kW",
            f"{v['ev_energy_cost_eur']:,.0f} €",
        )
    return table
