"""`gridmesh fault`: a study prints the protection response and the plan; bad input exits 2 with why."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gridmesh.cli.main import app

runner = CliRunner()


def test_a_study_reports_current_trip_and_plan_as_json(small_scenario_file: Path) -> None:
    result = runner.invoke(app, ["fault", "study", str(small_scenario_file), "LV1.101 Line 3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fault"] == {"element": "LV1.101 Line 3", "table": "lines", "type": "three-phase", "permanent": True}
    assert out["fault_ka"] > 0.5  # a bolted LV fault behind a 400 kVA class transformer: kiloamperes
    assert out["tripped"] is not None and out["protection"][0]["action"] in ("fpi", "trip")
    if out["locked_out"]:
        assert out["plan"] is not None and out["plan"]["restored_customers"] >= 0


def test_an_unknown_element_is_refused_with_the_reason(small_scenario_file: Path) -> None:
    result = runner.invoke(app, ["fault", "study", str(small_scenario_file), "no-such-line"])
    assert result.exit_code == 2
    assert "no-such-line" in result.output


def test_inject_without_a_platform_says_what_to_do() -> None:
    result = runner.invoke(app, ["fault", "inject", "L1", "--url", "http://127.0.0.1:9", "--token", "gm_x"])
    assert result.exit_code == 2
    assert "is `gridmesh run` running?" in " ".join(result.output.split())
