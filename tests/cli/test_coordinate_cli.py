"""``gridmesh coordinate``: the figures it prints, and its refusals."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from gridmesh.cli.coordinate import app
from support.brokers import PrivateBroker

runner = CliRunner()


def figure(output: str, name: str) -> str:
    match = re.search(rf"{re.escape(name)}\s*│\s*(.+?)\s*│", output)
    assert match, f"{name!r} not in:\n{output}"
    return match.group(1)


def gap_percent(output: str) -> float:
    return float(figure(output, "gap to centralised").rstrip(" %"))


def test_synthetic_case_prints_iterations_residuals_gap_and_time() -> None:
    result = runner.invoke(app, ["synthetic", "--microgrids", "3", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert figure(result.output, "converged") == "yes"
    assert int(figure(result.output, "iterations")) > 1
    assert abs(gap_percent(result.output)) < 0.5
    primal, eps = figure(result.output, "primal residual ‖p − z‖ (kW)").split(" ≤ ")
    assert float(primal) <= float(eps)
    assert float(figure(result.output, "wall time, rounds (s)")) > 0
    assert figure(result.output, "agents never heard") == "none"


def test_too_few_rounds_exit_3_and_say_so() -> None:
    result = runner.invoke(app, ["synthetic", "--microgrids", "3", "--max-iterations", "2"])
    assert result.exit_code == 3, result.output
    assert figure(result.output, "converged") == "NO (max iterations)"


def test_processes_without_a_broker_are_refused() -> None:
    result = runner.invoke(app, ["synthetic", "--microgrids", "3", "--processes", "2"])
    assert result.exit_code == 2
    assert "--processes needs a broker" in result.output


@pytest.mark.slow
def test_synthetic_case_with_agents_in_processes_over_mqtt(private_broker: PrivateBroker) -> None:
    args = ["synthetic", "--microgrids", "4", "--mqtt", private_broker.url, "--processes", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 processes over" in result.output
    assert abs(gap_percent(result.output)) < 0.5


@pytest.mark.slow
def test_demo_microgrids_reach_the_centralised_optimum() -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "demo: 4 microgrids, 24 steps" in result.output
    assert abs(gap_percent(result.output)) < 0.5
