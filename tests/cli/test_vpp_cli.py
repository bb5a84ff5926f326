"""``gridmesh vpp envelope`` and ``gridmesh vpp dispatch`` on the small microgrid scenario (its VPP: one
40 kW / 80 kWh battery and the PV behind the PCC): JSON, tables, output files, award files and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.vpp import app
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario

runner = CliRunner()
DAY = ["--day", "2016-06-01"]


@pytest.fixture(scope="module")
def small(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


@pytest.fixture()
def loaded_once(small: Scenario, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The scenario read once per module (SimBench takes seconds): `scenario_cli.load` has its own tests."""
    monkeypatch.setattr(scenario_cli, "load", lambda source: small)
    yield


@pytest.mark.usefixtures("loaded_once")
def test_envelope_json() -> None:
    result = runner.invoke(app, ["envelope", "small", *DAY, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["site"] == "vpp" and doc["dt_h"] == 0.25
    intervals = doc["intervals"]
    assert len(intervals["time"]) == 96 and intervals["time"][0].startswith("2016-06-01T00:00")
    np.testing.assert_allclose(intervals["up_kw"], 40.0)
    # Down: the battery's 40 kW plus curtailment, which is zero at night and grows with the PV at noon.
    assert intervals["down_kw"][0] == pytest.approx(40.0) and max(intervals["down_kw"]) > 80.0
    assert doc["storage"]["energy_below_kwh"] == pytest.approx(80 * 0.4)
    assert {a["owner"] for a in doc["assets"]} == {"coop"}
    directions = [s["direction"] for s in doc["cost_curve"]]
    assert directions == sorted(directions, key=["up", "down"].index)


@pytest.mark.usefixtures("loaded_once")
def test_envelope_table() -> None:
    result = runner.invoke(app, ["envelope", "small", *DAY])
    assert result.exit_code == 0, result.output
    assert "envelope 2016-06-01" in result.output and "cost curve" in result.output
    assert "curtailment" in result.output and "battery bess" in result.output


@pytest.mark.usefixtures("loaded_once")
def test_dispatch_flat_award_writes_the_report(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dispatch", "small", *DAY, "--flat", "-2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("delivery.csv", "allocation.csv", "envelope.json", "summary.json", "report.html"):
        assert (tmp_path / name).exists(), name
    frame = pd.read_csv(tmp_path / "delivery.csv")
    np.testing.assert_allclose(frame["award_kw"], -2.0)
    # 2 kW down all day fits: 28 kWh charged in the 14 dark hours, below the 32 kWh / 0.95 of room.
    assert frame["reason"].isna().all()
    assert "delivered" in result.output and "award clipped" not in result.output


@pytest.mark.usefixtures("loaded_once")
def test_dispatch_award_file_outside_the_envelope_is_clipped(tmp_path: Path) -> None:
    award = tmp_path / "award.csv"
    pd.DataFrame({"award_kw": np.r_[np.full(8, 100.0), np.zeros(88)]}).to_csv(award, index=False)
    result = runner.invoke(app, ["dispatch", "small", *DAY, "--award", str(award), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "award clipped" in result.output and "above the up capability" in result.output
    frame = pd.read_csv(tmp_path / "o" / "delivery.csv")
    np.testing.assert_allclose(frame["shortfall_kw"][:2], 60.0, atol=1e-6)  # 100 kW awarded, 40 kW rated
    # Then the stored 80 × (0.5 − 0.1) = 32 kWh run out: 32 × η_discharge 0.93 = 29.76 kWh at the grid.
    assert (frame["target_kw"] * 0.25).sum() == pytest.approx(29.76, rel=1e-6)


@pytest.mark.usefixtures("loaded_once")
def test_bad_awards_and_sites_exit_2(tmp_path: Path) -> None:
    short = tmp_path / "award.json"
    short.write_text(json.dumps([1.0, 2.0]))
    cases = [
        (["--award", str(short)], "must hold 96 finite values"),
        ([], "give exactly one of --award FILE and --flat KW"),
        (["--flat", "1", "--award", str(short)], "give exactly one"),
        (["--flat", "1", "--site", "mg"], "not a level-3 site"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["dispatch", "small", *DAY, "--out", str(tmp_path / "x"), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in " ".join(result.output.split()), (extra, result.output)
    assert not (tmp_path / "x" / "delivery.csv").exists()
