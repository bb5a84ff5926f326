"""``gridmesh forecast evaluate``: the JSON contract, the table and the errors that say what to do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.main import app

runner = CliRunner()


def test_evaluate_json_contract(lv_yaml: Path) -> None:
    result = runner.invoke(app, ["forecast", "evaluate", str(lv_yaml), "--test-weeks", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"scenario", "horizon", "test_weeks", "location", "normalisation", "skill", "targets", "seconds"}
    horizon = {"name": "day-ahead", "issue_at_h": 12.0, "issue_every_h": 24.0, "lead_h": 12.0, "length_h": 24.0}
    assert doc["horizon"] == horizon
    assert len(doc["test_weeks"]) == 2
    assert doc["location"]["lat_deg"] == pytest.approx(53.6, abs=1.0)  # SimBench's grids lie in northern Germany
    assert {"load/residential", "pv"} <= set(doc["targets"])
    for name, entry in doc["targets"].items():
        assert set(entry) == {"kind", "norm_kw", "best_baseline", "seconds", "methods"}
        assert entry["norm_kw"] > 0
        methods = entry["methods"]
        assert {"persistence", "same-time-yesterday", "gbm"} <= set(methods)
        assert ("same-time-last-week" in methods) == (entry["kind"] == "load"), name
        assert methods[entry["best_baseline"]]["baseline"] is True
        for scores in methods.values():
            assert set(scores) == {"baseline", "nmae", "nrmse", "skill"}
            assert all(math.isfinite(scores[k]) for k in ("nmae", "nrmse", "skill"))
            assert 0 < scores["nmae"] <= scores["nrmse"]
        assert methods["gbm"]["nrmse"] < methods["persistence"]["nrmse"], name
    assert doc["targets"]["load/residential"]["methods"]["gbm"]["skill"] > 0  # beats every baseline


def test_evaluate_intraday_table(lv_yaml: Path) -> None:
    result = runner.invoke(app, ["forecast", "evaluate", str(lv_yaml), "--test-weeks", "1", "--horizon", "intraday"])
    assert result.exit_code == 0, result.output
    for text in ("intraday forecasts", "load/residential", "persistence", "gbm", "nMAE", "skill"):
        assert text in result.stdout


def test_evaluate_errors_say_what_to_do(lv_yaml: Path, tmp_path: Path) -> None:
    too_many = runner.invoke(app, ["forecast", "evaluate", str(lv_yaml), "--test-weeks", "40"])
    assert too_many.exit_code == 2
    assert "lower --test-weeks" in too_many.output
    no_profiles = tmp_path / "static.yaml"
    no_profiles.write_text(
        "elements:\n  buses:\n    - {id: a, vn_kv: 0.4}\n  external_grids:\n    - {id: g, bus: a}\n"
        "  loads:\n    - {id: l, bus: a, p_kw: 3}\n"
    )
    result = runner.invoke(app, ["forecast", "evaluate", str(no_profiles)])
    assert result.exit_code == 2
    assert "has no profiles" in result.output
    missing = runner.invoke(app, ["forecast", "evaluate", str(tmp_path / "nowhere.yaml")])
    assert missing.exit_code == 2
