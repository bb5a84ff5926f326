"""``gridmesh charging study`` on one day of a small LV grid: JSON, HTML report, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.charging import app

runner = CliRunner()

DEPOT = """
name: depot
base: {simbench: 1-LV-rural1--0-sw}
profiles: {simbench: 1-LV-rural1--0-sw}
time: {start: 2016-06-01, days: 3}
elements:
  ev_chargers:
    - {id: depot, bus: LV1.101 Bus 11, p_kw: 50, connectors: 4, usage: work, energy_kwh: 250}
"""


@pytest.fixture(scope="module")
def depot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("charging") / "depot.yaml"
    path.write_text(DEPOT)
    return path


def test_study_writes_json_and_html(depot_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["study", str(depot_file), "--days", "1", "--start", "2016-01-04", "--penetration", "0.5", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "charging.json").read_text())
    assert doc["start"].startswith("2016-01-04") and doc["days"] == 1 and doc["steps"] == 96
    assert doc["chargers"] > 1  # the depot and the added home chargers
    assert set(doc["variants"]) == {"no_ev", "uncontrolled", "smart"}
    dumb, smart = doc["variants"]["uncontrolled"], doc["variants"]["smart"]
    assert dumb["overloaded_steps"] > 0 and smart["overloaded_steps"] == 0
    assert smart["peak_transformer_loading"] <= 1.0 < dumb["peak_transformer_loading"]
    assert smart["delivered_pct"] >= 98.0
    html = (out / "charging.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 4
    assert "uncontrolled → smart" in html and "<script" not in html
    assert "smart charging" in result.output and "wrote" in result.output


def test_a_scenario_without_chargers_is_refused(small_scenario_file: Path, tmp_path: Path) -> None:
    text = (
        small_scenario_file.read_text().split("  ev_chargers:")[0]
        + "  sites:"
        + small_scenario_file.read_text().split("  sites:")[1]
    )
    path = tmp_path / "no-ev.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["study", str(path), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "no EV chargers" in result.output
    assert not (tmp_path / "x").exists()


def test_a_start_outside_the_profiles_fails_cleanly(depot_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", str(depot_file), "--start", "2030-01-01", "-o", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "charging study failed" in result.output
