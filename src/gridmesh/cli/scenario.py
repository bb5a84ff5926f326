"""``gridmesh scenario …``: validate, import, export and inspect scenario files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandapower as pp
import typer

from gridmesh.cli.console import console, errors, print_issues
from gridmesh.errors import ScenarioError
from gridmesh.model.elements import TABLES
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.pandapower import from_pandapower, to_pandapower
from gridmesh.model.io.scenario_yaml import read_scenario_issues, write_scenario
from gridmesh.model.io.simbench import from_simbench, profiles_of, simbench_codes
from gridmesh.model.scenario import Scenario

app = typer.Typer(help="Validate, import, export and inspect scenario files.", no_args_is_help=True)
Output = Annotated[Path, typer.Option("-o", "--output", help="file to write")]


def load(source: str) -> Scenario:
    """Read a scenario (path or built-in name) or print every problem and exit 2."""
    path = scenario_path(source)
    with console.status(f"reading {source} …"):
        scenario, issues = read_scenario_issues(path)
    if scenario is None:
        print_issues(issues, source=source)
        raise typer.Exit(2)
    return scenario


@app.command()
def validate(file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")]) -> None:
    """Exit 0 if the scenario is valid; otherwise list every problem and exit 2."""
    scenario = load(file)
    counts = ", ".join(f"{n} {t}" for t, n in scenario.network.summary().items() if n)
    console.print(
        f"[green]valid[/green]: {scenario.name} — {counts}; {scenario.steps} steps from {scenario.time.start}"
    )


@app.command("from-simbench")
def from_simbench_cmd(
    code: Annotated[str, typer.Argument(help="SimBench grid code, e.g. 1-MV-rural--0-sw")], output: Output
) -> None:
    """Write a scenario of a SimBench grid with its yearly profiles (Parquet beside the YAML)."""
    try:
        with console.status(f"loading SimBench {code} …"):
            scenario = from_simbench(code)
    except ScenarioError as exc:
        print_issues(exc.issues, source=code)
        raise typer.Exit(2) from exc
    for path in write_scenario(scenario, output):
        console.print(f"wrote {path}")


@app.command("import-pandapower")
def import_pandapower(
    net_json: Annotated[Path, typer.Argument(help="pandapower network (JSON)")], output: Output
) -> None:
    """Convert a pandapower JSON network into a scenario file."""
    if not net_json.exists():
        errors.print(f"[red]{net_json} not found[/red] — give the path of a pandapower JSON file")
        raise typer.Exit(2)
    net = pp.from_json(str(net_json))
    try:
        network = from_pandapower(net, name=net_json.stem)
        profiles = profiles_of(net)  # SimBench-style profiles travel inside the JSON when present
    except ScenarioError as exc:
        print_issues(exc.issues, source=str(net_json))
        raise typer.Exit(2) from exc
    for path in write_scenario(Scenario(name=network.name, network=network, profiles=profiles), output):
        console.print(f"wrote {path}")


@app.command("export-pandapower")
def export_pandapower(file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")], output: Output) -> None:
    """Write the scenario's network as a pandapower JSON file."""
    scenario = load(file)
    pp.to_json(to_pandapower(scenario.network), str(output))
    console.print(f"wrote {output}")


@app.command()
def show(file: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")]) -> None:
    """Summarise a scenario: element counts, sites, time range."""
    scenario = load(file)
    console.print(f"[bold]{scenario.name}[/bold] {scenario.description}")
    for table, count in scenario.network.summary().items():
        console.print(f"  {table:15} {count:>7}")
    for site in scenario.network.sites.values():
        console.print(f"  site {site.id} (level {int(site.level)}, owner {site.owner}, pcc {site.pcc})")
    console.print(
        f"  time: {scenario.time.start} for {scenario.time.days} days, {len(scenario.profiles.names)} profiles"
    )


@app.command()
def schema(table: Annotated[str | None, typer.Argument(help="one table, e.g. buses")] = None) -> None:
    """Print the JSON schema of scenario elements (the documented field list)."""
    tables = {table: TABLES[table]} if table else TABLES
    console.print_json(json.dumps({name: cls.model_json_schema() for name, cls in tables.items()}))


@app.command("simbench-codes")
def codes() -> None:
    """List every SimBench grid code that from-simbench and `base: {simbench: …}` accept."""
    for code in simbench_codes():
        console.print(code)
