"""The CLI contract: commands, exit codes, files and the JSON shape other tools script against."""

from __future__ import annotations

import json
from pathlib import Path

import pandapower as pp
import pytest
import simbench as sb
from typer.testing import CliRunner

from gridmesh.cli.main import app
from gridmesh.model.io.scenario_yaml import read_scenario

runner = CliRunner()
LV = "1-LV-rural1--0-sw"


def test_from_simbench_writes_yaml_and_profiles(lv_yaml: Path) -> None:
    assert lv_yaml.with_suffix(".profiles.parquet").exists()
    scenario = read_scenario(lv_yaml)
    assert scenario.profiles.steps == 35_136
    assert "LV1.101 Bus 4" in scenario.network.buses


def test_from_simbench_unknown_code_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scenario", "from-simbench", "1-LV-rural9--0-sw", "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2
    assert "unknown SimBench code" in result.output


def test_validate_valid_and_invalid(lv_yaml: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["scenario", "validate", str(lv_yaml)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "elements:\n  buses:\n    - {id: a, vn_kv: 0.4}\n    - {id: lonely, vn_kv: 0.4}\n"
        "  external_grids:\n    - {id: g, bus: a}\n  lines:\n"
        "    - {id: l, from_bus: a, to_bus: nowhere, length_km: 1, r_ohm_per_km: 0.1, x_ohm_per_km: 0.1,"
        " max_i_a: -3}\n"
    )
    result = runner.invoke(app, ["scenario", "validate", str(bad)])
    assert result.exit_code == 2
    for text in ("lines[l]", "max_i_a", "buses[lonely]", "dangling"):
        assert text in result.output


def test_validate_demo() -> None:
    result = runner.invoke(app, ["scenario", "validate", "demo"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_powerflow_json_contract(lv_yaml: Path) -> None:
    result = runner.invoke(app, ["powerflow", str(lv_yaml), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"buses", "branches", "losses_kw"}
    bus = doc["buses"]["LV1.101 Bus 1"]
    assert set(bus) == {"v_pu", "angle_deg"}
    assert set(doc["branches"]["LV1.101 Line 1"]) == {"loading", "p_from_kw"}
    assert doc["losses_kw"] > 0
    # First time step, checked against pandapower with the same absolute values.
    net = sb.get_simbench_net(LV)
    profiles = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    net.load["p_mw"] = profiles[("load", "p_mw")].iloc[0]
    net.load["q_mvar"] = profiles[("load", "q_mvar")].iloc[0]
    net.sgen["p_mw"] = profiles[("sgen", "p_mw")].iloc[0]
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi")
    for index, name in net.bus.name.items():
        assert doc["buses"][name]["v_pu"] == pytest.approx(net.res_bus.vm_pu[index], abs=1e-5)
        assert doc["buses"][name]["angle_deg"] == pytest.approx(net.res_bus.va_degree[index], abs=0.01)


def test_pandapower_import_export_roundtrip(tmp_path: Path) -> None:
    net = sb.get_simbench_net(LV)
    source = tmp_path / "net.json"
    pp.to_json(net, str(source))
    imported = tmp_path / "imported.yaml"
    assert runner.invoke(app, ["scenario", "import-pandapower", str(source), "-o", str(imported)]).exit_code == 0
    assert set(read_scenario(imported).network.buses) == set(net.bus.name)
    exported = tmp_path / "exported.json"
    result = runner.invoke(app, ["scenario", "export-pandapower", str(imported), "-o", str(exported)])
    assert result.exit_code == 0, result.output
    back = pp.from_json(str(exported))
    pp.runpp(back, calculate_voltage_angles=True, trafo_model="pi")
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi")
    assert back.res_bus.vm_pu.to_numpy() == pytest.approx(net.res_bus.vm_pu.to_numpy(), abs=1e-9)


def test_import_pandapower_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scenario", "import-pandapower", str(tmp_path / "nope.json"), "-o", "x.yaml"])
    assert result.exit_code == 2


def test_simulate_writes_kpis_and_report(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["simulate", str(small_scenario_file), "--days", "1", "--controller", "self-consumption", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["steps"] == 96
    assert kpis["controller"] == "self-consumption"
    assert (out / "report.html").stat().st_size > 10_000
    assert "report.html" in result.output
