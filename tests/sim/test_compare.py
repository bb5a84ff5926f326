"""Comparing studies: values read from each kpis.json, best per metric marked, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.main import app
from gridmesh.control.controller import NoControl
from gridmesh.control.rules import PeakShaving, TimeOfUseArbitrage
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.sim.compare import comparison, load_runs, write_comparison
from gridmesh.sim.study import run_study


@pytest.fixture(scope="module")
def runs(small_scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    scenario = read_scenario(small_scenario_file)
    folders = []
    for controller in (NoControl(), PeakShaving(), TimeOfUseArbitrage()):
        out = tmp_path_factory.mktemp(controller.name)
        run_study(scenario, out=out, controller=controller)
        folders.append(out)
    return folders


def test_table_reads_each_run(runs: list[Path]) -> None:
    table = comparison(load_runs(runs))
    none = json.loads((runs[0] / "kpis.json").read_text())
    assert table["peak import"]["none"] == pytest.approx(none["peak_import_kw"])
    assert set(table["energy cost"]) == {"none", "peak-shaving", "tou"}
    assert table["battery cycles (sum)"]["none"] == 0.0
    # arbitrage buys cheap and covers the dear evening: it must not cost more than doing nothing
    assert table["energy cost"]["tou"] <= table["energy cost"]["none"]


def test_html_marks_the_best(runs: list[Path], tmp_path: Path) -> None:
    page = write_comparison(load_runs(runs), tmp_path / "cmp.html").read_text()
    assert page.count("<img") == len(comparison(load_runs(runs)))
    assert "class='num best'" in page
    assert "http" not in page


def test_cli_compare_json_and_missing_folder(runs: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compare", *map(str, runs), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["peak import"]) == {"none", "peak-shaving", "tou"}
    missing = runner.invoke(app, ["compare", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "gridmesh simulate" in missing.output
