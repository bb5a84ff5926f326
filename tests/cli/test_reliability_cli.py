"""``gridmesh reliability`` on the small LV microgrid scenario: JSON document, HTML report, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from gridmesh.cli.reliability import reliability

app = typer.Typer()
app.command()(reliability)
runner = CliRunner()


def test_lv_study_writes_json_and_html(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rel"
    args = [str(small_scenario_file), "--years", "200", "--seed", "5", "--workers", "2", "--lv", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "reliability.json").read_text())
    assert {"network", "years", "seed", "chunks", "rates", "groups", "restoration", "variants"} <= set(doc)
    assert doc["years"] == 200 and doc["seed"] == 5
    kinds = {g["kind"] for g in doc["groups"]}
    assert kinds == {"system", "feeder", "microgrid"}
    system = doc["groups"][0]
    assert system["name"] == "system" and system["customers"] > 0
    for variant in ("without_flisr", "with_flisr"):
        indices = system[variant]
        assert set(indices) == {"saifi", "saidi_min", "caidi_min", "asai", "maifi", "ens_kwh"}
        assert indices["saifi"]["mean"] > 0 and indices["saidi_min"]["mean"] > 0
        assert 0.99 < indices["asai"]["mean"] < 1.0
        # CAIDI is SAIDI / SAIFI of the same years.
        ratio = indices["saidi_min"]["mean"] / indices["saifi"]["mean"]
        assert abs(indices["caidi_min"]["mean"] - ratio) < 1e-6 * ratio
    microgrid = next(g for g in doc["groups"] if g["kind"] == "microgrid")
    assert microgrid["name"] == "mg" and microgrid["customers"] > 0
    html = (out / "reliability.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert "SAIDI" in html and "with FLISR" in html and "<script" not in html
    assert "SAIFI" in result.output and "system" in result.output


def test_a_grid_without_mv_feeders_needs_the_lv_option(small_scenario_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [str(small_scenario_file), "--years", "10", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert not (tmp_path / "x" / "reliability.json").exists()
