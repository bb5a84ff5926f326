"""``gridmesh island study`` on a three-bus microgrid (hourly flat profiles): files, table, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.island import app

runner = CliRunner()
FLAT = ", ".join(["1"] * 24)
TINY = f"""
name: tiny-island
time: {{start: 2016-06-01, days: 1}}
profiles: {{series: {{start: 2016-06-01, resolution_min: 60, values: {{flat: [{FLAT}]}}}}}}
elements:
  buses:
    - {{id: grid, vn_kv: 0.4}}
    - {{id: a, vn_kv: 0.4}}
    - {{id: b, vn_kv: 0.4}}
  external_grids:
    - {{id: eg, bus: grid}}
  lines:
    - {{id: feeder, from_bus: grid, to_bus: a, length_km: 0.1, r_ohm_per_km: 0.5, x_ohm_per_km: 0.2, max_i_a: 300}}
    - {{id: ab, from_bus: a, to_bus: b, length_km: 0.1, r_ohm_per_km: 0.5, x_ohm_per_km: 0.2, max_i_a: 300}}
  switches:
    - {{id: pcc, bus: a, element: feeder, element_type: line, kind: breaker, remote: true}}
  loads:
    - {{id: home, bus: b, p_kw: 8}}
    - {{id: clinic, bus: b, p_kw: 2, critical: true, load_class: commercial}}
  batteries:
    - {{id: bess, bus: a, e_kwh: 20, p_kw: 10, grid_forming: true}}
  sites:
    - {{id: mg, pcc: pcc}}
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_study_writes_the_report_and_prints_the_table(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["study", str(tiny), "--site", "mg", "--outage-hours", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "islanding.json").read_text())
    (mg,) = doc["sites"]
    # 3 h × 2 kW critical = 6 kWh, within the 20 kWh × 0.4 × 0.95 the battery can give: all of it served;
    # the 8 kW home would eat into that reserve and is shed.
    assert mg["critical_demand_kwh"] == pytest.approx(6.0) and mg["critical_share"] == pytest.approx(1.0)
    assert mg["shed_kwh"]["residential"] == pytest.approx(24.0)
    assert doc["outage"]["start"] == "2016-06-01T17:00:00" and doc["outage"]["cause"] == "upstream"
    assert (out / "islanding.parquet").exists() and (out / "islanding.html").exists()
    assert "mg" in result.output and "100.0%" in result.output


def test_site_and_all_exclude_each_other(tiny: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", str(tiny), "--site", "mg", "--all", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()


def test_an_unknown_site_is_named(tiny: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", str(tiny), "--site", "nope", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "nope" in result.output and not (tmp_path / "x").exists()


def test_an_outage_off_the_profile_grid_is_refused(tiny: Path, tmp_path: Path) -> None:
    args = ["study", str(tiny), "--start", "2016-06-01T17:20", "--outage-hours", "1", "--out", str(tmp_path / "x")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "profile grid" in result.output
