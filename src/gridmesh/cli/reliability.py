"""``gridmesh reliability``: Monte Carlo reliability study of a scenario's feeders, with and without FLISR."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.model.scenario import Scenario
from gridmesh.sim.reliability import VARIANTS, FeederModel, ReliabilityResult, run_reliability
from gridmesh.sim.reliability_report import write_reliability


def reliability(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    years: Annotated[int, typer.Option(min=1, help="simulated years")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed and years give the same result")] = 0,
    out: Annotated[Path, typer.Option("-o", "--out", help="folder for reliability.json and reliability.html")] = Path(
        "reliability"
    ),
    workers: Annotated[int, typer.Option(min=1, help="worker processes (default: one per CPU)")] = os.cpu_count() or 1,
    lv: Annotated[bool, typer.Option("--lv/--mv-only", help="also fail LV lines and switches")] = False,
) -> None:
    """Sample failures of MV lines, MV/LV transformers and MV switches; report IEEE 1366 indices."""
    started = time.perf_counter()
    loaded = scenario_cli.load(scenario)
    try:
        with console.status("building the failure-modes table (tie transfers checked by power flow) …"):
            model = FeederModel.of(loaded.network, lv=lv, average_kw=average_kw(loaded))
        if not model.modes:
            errors.print(
                f"[red]{escape(loaded.name)} has no feeder elements to fail[/red] — "
                "add MV lines below the substation, or pass --lv to study LV faults",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        columns = (TextColumn("[bold]simulating years"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with (
            Progress(*columns, TimeRemainingColumn(), console=console) as bar,
            ProcessPoolExecutor(max_workers=workers) as pool,
        ):
            task = bar.add_task("years", total=years)
            result = run_reliability(model, years, seed=seed, executor=pool, progress=lambda n: bar.advance(task, n))
    except GridmeshError as exc:
        errors.print(f"[red]reliability study failed[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    json_path, html_path = write_reliability(result, out)
    console.print(_table(result), soft_wrap=True)
    console.print(f"wrote {json_path} and {html_path} in {time.perf_counter() - started:.1f} s")


def average_kw(scenario: Scenario) -> dict[str, float]:
    """Each load's average active power over the profile period (its ``p_kw`` when it has no profile)."""
    profiles = scenario.profiles
    means = dict(zip(profiles.names, np.asarray(profiles.values, dtype=np.float64).mean(axis=0), strict=True))
    return {
        load.id: load.p_kw * float(means.get(load.p_profile, 1.0)) if load.p_profile else load.p_kw
        for load in scenario.network.loads.values()
    }


def _table(result: ReliabilityResult) -> Table:
    table = Table(
        title=f"{escape(result.network)}: {result.years:,} simulated years",
        title_justify="left",
        caption="mean ± 95 % confidence half-width; IEEE 1366-2022 (momentary < 5 min)",
        caption_justify="left",
    )
    table.add_column("group")
    for column in ("variant", "SAIFI", "SAIDI min", "CAIDI min", "ASAI", "MAIFI", "ENS kWh"):
        table.add_column(column, justify="right")
    for group in result.groups:
        for k, variant in enumerate(VARIANTS):
            i = group.indices[variant]
            table.add_row(
                escape(group.name) if k == 0 else "",
                variant.replace("_", " "),
                f"{i.saifi.mean:.3f} ± {i.saifi.ci95:.3f}",
                f"{i.saidi_min.mean:.1f} ± {i.saidi_min.ci95:.1f}",
                f"{i.caidi_min.mean:.1f}",
                f"{i.asai.mean:.5f}",
                f"{i.maifi.mean:.3f}",
                f"{i.ens_kwh.mean:,.0f}",
                end_section=k == len(VARIANTS) - 1,
            )
    return table
