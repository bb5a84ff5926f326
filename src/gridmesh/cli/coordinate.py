"""``gridmesh coordinate``: microgrids and the DSO agree a day-ahead plan by ADMM, prices and powers only.

Agents run as threads on the in-process bus, on an MQTT broker (``--mqtt``), or as separate processes
(``--processes`` with ``--mqtt``). After the run the same case is solved centralised to report the gap.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.optim.admm import AdmmSettings, Residuals
from gridmesh.optim.coordination_case import (
    CentralisedError,
    CoordinationCase,
    demo_case,
    plan_cost_eur,
    solve_centralised,
    synthetic_case,
)
from gridmesh.services.coordination import CoordinationResult, coordinate
from gridmesh.sim.twin import StudyTwin

app = typer.Typer(help="Coordinate microgrids with the DSO by ADMM (only boundary powers and prices cross).",
                  no_args_is_help=True)  # fmt: skip

Mqtt = Annotated[str | None, typer.Option("--mqtt", help="broker URL (mqtt://host:port); default: in-process bus")]
Processes = Annotated[int, typer.Option("--processes", min=0, help="agents in this many processes (needs --mqtt)")]
MaxIterations = Annotated[int, typer.Option("--max-iterations", min=1, help="ADMM rounds at most")]
RoundTimeout = Annotated[float, typer.Option("--round-timeout", min=0.01, help="seconds to wait for a round's bids")]
Rho = Annotated[float, typer.Option("--rho", min=1e-9, help="initial ADMM penalty, €/kW² per step")]


@app.command()
def demo(
    mqtt: Mqtt = None,
    processes: Processes = 0,
    day: Annotated[int, typer.Option(min=0, help="day of the demo's week")] = 0,
    max_iterations: MaxIterations = 500,
    round_timeout: RoundTimeout = 10.0,
    rho: Rho = 1e-2,
) -> None:
    """The demo scenario's four microgrids, one day at hourly resolution, with the substation's limits."""
    scenario = scenario_cli.load("demo")
    with console.status("building the demo case (voltage sensitivities by power flow) …"):
        twin = StudyTwin(scenario)
        per_day = round(24 / twin.dt_h)
        if (day + 1) * per_day > twin.steps:
            errors.print(f"[red]--day {day} is beyond the scenario's {twin.steps // per_day} day(s)[/red]")
            raise typer.Exit(2)
        window, _ = twin.window(day * per_day, per_day)
        case = demo_case(window, twin.engine)
    _run(case, mqtt, processes, AdmmSettings(rho=rho, max_iterations=max_iterations), round_timeout)


@app.command()
def synthetic(
    microgrids: Annotated[int, typer.Option("--microgrids", min=1, help="number of microgrids")] = 50,
    seed: Annotated[int, typer.Option(help="random seed of the case")] = 0,
    steps: Annotated[int, typer.Option(min=2, help="steps of the day (24: hourly)")] = 24,
    mqtt: Mqtt = None,
    processes: Processes = 0,
    max_iterations: MaxIterations = 500,
    round_timeout: RoundTimeout = 10.0,
    rho: Rho = 1e-2,
) -> None:
    """A seeded case of N microgrids on radial feeders; the transformer limit binds in the peak."""
    with console.status(f"building {microgrids} seeded microgrids …"):
        try:
            case = synthetic_case(microgrids, seed=seed, steps=steps)
        except CentralisedError as exc:
            errors.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
    _run(case, mqtt, processes, AdmmSettings(rho=rho, max_iterations=max_iterations), round_timeout)


def _run(case: CoordinationCase, mqtt: str | None, processes: int, settings: AdmmSettings, timeout: float) -> None:
    if processes and mqtt is None:
        errors.print("[red]--processes needs a broker[/red]: add --mqtt mqtt://127.0.0.1:1883")
        raise typer.Exit(2)
    where = f"{processes} processes over {mqtt}" if processes else (mqtt or "the in-process bus")
    columns = (TextColumn("[bold]ADMM rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[residuals]}"))  # fmt: skip
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("rounds", total=settings.max_iterations, residuals="")

            def advance(r: Residuals) -> None:
                text = f"r {r.primal:.3g}/{r.eps_primal:.2g} kW  s {r.dual:.3g}/{r.eps_dual:.2g}  ρ {r.rho:.3g}"
                bar.update(task, advance=1, residuals=text)

            console.print(f"{case.name}: {len(case.microgrids)} microgrids, {case.feeder.steps} steps, on {where}")
            result = coordinate(case.microgrids, case.feeder, url=mqtt, processes=processes, settings=settings,
                                round_timeout_s=timeout, on_round=advance)  # fmt: skip
            bar.update(task, total=result.iterations)
        with console.status("solving the same case centralised …"):
            started = time.perf_counter()
            central = solve_centralised(case)
            central_s = time.perf_counter() - started
    except (GridmeshError, ValueError) as exc:
        errors.print(f"[red]coordination failed[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(_table(case, result, central.objective_eur, central_s, central.pcc_kw))
    if not result.converged:
        raise typer.Exit(3)


def _table(
    case: CoordinationCase, result: CoordinationResult, central_eur: float, central_s: float, central_kw: np.ndarray
) -> Table:
    feeder = case.feeder
    cost = plan_cost_eur(case, result.pcc_kw, result.feeder_kw)
    last = result.history[-1]
    transformer = feeder.transformer_kw(result.pcc_kw)
    table = Table(title=f"{case.name}: distributed vs centralised", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("converged", "yes" if result.converged else "NO (max iterations)"),
        ("iterations", str(result.iterations)),
        ("primal residual ‖p − z‖ (kW)", f"{last.primal:.4g} ≤ {last.eps_primal:.3g}"),
        ("dual residual ρ‖Δz‖", f"{last.dual:.4g} ≤ {last.eps_dual:.3g}"),
        ("final ρ", f"{last.rho:.4g}"),
        ("cost distributed (€)", f"{cost:,.2f}"),
        ("cost centralised (€)", f"{central_eur:,.2f}"),
        ("gap to centralised", f"{100 * (cost - central_eur) / abs(central_eur):+.4f} %"),
        ("max |p − p*| (kW)", f"{np.abs(result.pcc_kw - central_kw).max():.3f}"),
        ("wall time, rounds (s)", f"{result.seconds:.2f}"),
        ("wall time, centralised (s)", f"{central_s:.2f}"),
        (
            "transformer peak: bids, DSO plan / limit (kW)",
            f"{transformer.max():,.1f}, {feeder.transformer_kw(result.feeder_kw).max():,.1f} / "
            f"{feeder.transformer_limit_kw:,.1f}",
        ),
    ]
    if feeder.monitored:
        v = feeder.voltages(result.pcc_kw)
        rows.append(("voltage min / max (pu, linearised)", f"{v.min():.4f} / {v.max():.4f}"))
    rows += [
        ("messages excluded", str(len(result.rejections))),
        ("agents stale at the end", ", ".join(result.stale) or "none"),
        ("agents never heard", ", ".join(result.never_heard) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
