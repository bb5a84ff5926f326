"""``gridmesh forecast …``: score load, PV and wind forecasts against baselines on held-out weeks."""

from __future__ import annotations

import json
import math
import time
from enum import StrEnum
from typing import Annotated, Any

import pandas as pd
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridmesh.analytics import HORIZONS, TargetScores, evaluate_target, forecast_targets, held_out_weeks, location
from gridmesh.analytics.evaluation import methods_for
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import ProfileError

app = typer.Typer(help="Forecast load, PV and wind; score the forecasts against baselines.", no_args_is_help=True)

NORMALISATION = {"load": "peak of the series over the profile period", "generation": "installed capacity"}


class HorizonName(StrEnum):
    DAY_AHEAD = "day-ahead"
    INTRADAY = "intraday"


@app.command()
def evaluate(
    file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    horizon: Annotated[
        HorizonName,
        typer.Option(help="day-ahead: issued at noon for the next day; intraday: issued hourly for the next 6 h"),
    ] = HorizonName.DAY_AHEAD,
    test_weeks: Annotated[int, typer.Option(min=1, help="held-out weeks, spread over the seasons")] = 4,
    zones: Annotated[int, typer.Option(min=0, help="also forecast the load of the N largest zones")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Train on the profile period minus the test weeks; report nMAE/nRMSE on those weeks per target and method."""
    started = time.perf_counter()
    scenario = scenario_cli.load(file)
    if not scenario.profiles.names:
        errors.print(
            f"[red]{escape(file)} has no profiles[/red] — add `profiles: {{simbench: CODE}}` or inline series",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    targets = forecast_targets(scenario, zones=zones)
    if not targets:
        errors.print("[red]nothing to forecast[/red]: the scenario has no load, PV or wind in service", soft_wrap=True)
        raise typer.Exit(2)
    try:
        weeks = held_out_weeks(pd.DatetimeIndex(targets[0].series.index), test_weeks)
    except ProfileError as exc:
        errors.print(f"[red]cannot hold out {test_weeks} week(s)[/red]: {exc} (lower --test-weeks)", soft_wrap=True)
        raise typer.Exit(2) from exc
    spec, where = HORIZONS[horizon], location(scenario.network)
    plans = [(t, methods_for(t, spec, location=where)) for t in targets]
    results: list[TargetScores] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors if as_json else console, transient=as_json) as bar:
        task = bar.add_task("training", total=sum(len(m) for _, m in plans))
        for target, methods in plans:
            bar.update(task, description=escape(target.name))
            results.append(evaluate_target(target, spec, weeks, methods, progress=lambda _: bar.advance(task)))
    doc = _document(scenario.name, horizon, weeks, where, results) | {"seconds": time.perf_counter() - started}
    if as_json:
        print(json.dumps(doc))
        return
    title = f"{escape(scenario.name)}: {horizon} forecasts on held-out weeks starting {', '.join(doc['test_weeks'])}"
    console.print(_table(title, results), soft_wrap=True)
    console.print(f"{len(results)} targets trained and scored in {doc['seconds']:.1f} s")


def _document(
    scenario: str,
    horizon: str,
    weeks: list[pd.Timestamp],
    where: tuple[float, float] | None,
    results: list[TargetScores],
) -> dict[str, Any]:
    """The JSON document other tools script against (``--json``)."""
    spec = HORIZONS[horizon]
    return {
        "scenario": scenario,
        "horizon": {
            "name": horizon,
            "issue_at_h": spec.issue_at.total_seconds() / 3600,
            "issue_every_h": spec.issue_every.total_seconds() / 3600,
            "lead_h": spec.lead.total_seconds() / 3600,
            "length_h": spec.length.total_seconds() / 3600,
        },
        "test_weeks": [w.date().isoformat() for w in weeks],
        "location": None if where is None else {"lat_deg": where[0], "lon_deg": where[1]},
        "normalisation": NORMALISATION,
        "skill": "1 - nRMSE / nRMSE of the best baseline",
        "targets": {
            r.target: {
                "kind": str(r.kind),
                "norm_kw": r.norm_kw,
                "best_baseline": r.best_baseline,
                "seconds": r.seconds,
                "methods": {
                    s.method: {
                        "baseline": s.baseline,
                        "nmae": _num(s.nmae),
                        "nrmse": _num(s.nrmse),
                        "skill": _num(s.skill),
                    }
                    for s in r.scores
                },
            }
            for r in results
        },
    }


def _num(value: float) -> float | None:
    """JSON has no NaN: a score that could not be computed is null."""
    return value if math.isfinite(value) else None


def _table(title: str, results: list[TargetScores]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        caption="nMAE, nRMSE: errors / installed capacity (PV, wind) or / peak (load); "
        "skill = 1 − nRMSE / nRMSE of the best baseline",
        caption_justify="left",
    )
    table.add_column("target")
    table.add_column("method")
    for column in ("nMAE", "nRMSE", "skill"):
        table.add_column(column, justify="right")
    for result in results:
        best = min(result.scores, key=lambda s: s.nrmse)
        for i, s in enumerate(result.scores):
            table.add_row(
                escape(result.target) if i == 0 else "",
                s.method,
                f"{s.nmae * 100:.2f} %",
                f"{s.nrmse * 100:.2f} %",
                f"{s.skill:+.2f}",
                style="bold green" if s is best else ("dim" if s.baseline else ""),
                end_section=i == len(result.scores) - 1,
            )
    return table
