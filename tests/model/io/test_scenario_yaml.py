"""Scenario files: parsing, every problem at once, and write → read round trips."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
import yaml

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.io.scenario_yaml import (
    parse_scenario,
    read_scenario,
    read_scenario_issues,
    write_scenario,
)
from gridmesh.model.io.simbench import from_simbench
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.scenario import Scenario

LINE = {"length_km": 0.2, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.1, "max_i_a": 200}
VALID: dict[str, Any] = {
    "name": "tiny",
    "description": "a microgrid behind a PCC on one LV feeder",
    "elements": {
        "buses": [{"id": "mv", "vn_kv": 20}, {"id": "lv", "vn_kv": 0.4}, {"id": "b1", "vn_kv": 0.4}],
        "transformers": [
            {
                "id": "t",
                "hv_bus": "mv",
                "lv_bus": "lv",
                "sn_kva": 250,
                "vn_hv_kv": 20,
                "vn_lv_kv": 0.4,
                "vk_percent": 4,
                "vkr_percent": 1,
            }
        ],
        "lines": [{"id": "l1", "from_bus": "lv", "to_bus": "b1", **LINE}],
        "switches": [{"id": "pcc", "bus": "lv", "element": "l1", "element_type": "line", "kind": "breaker"}],
        "external_grids": [{"id": "grid", "bus": "mv"}],
        "loads": [{"id": "home", "bus": "b1", "p_kw": 4, "p_profile": "house"}],
        "sites": [{"id": "mg", "pcc": "pcc"}],
    },
    "profiles": {
        "series": {
            "start": "2016-01-01",
            "resolution_min": 15,
            "values": {"house": [0.5] * 48 + [1.0] * 48, "flat": [1.0] * 96},
        }
    },
    "time": {"start": "2016-01-01", "days": 1},
}


def _write(folder: Path, doc: Any, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _owners(issues: list[Issue]) -> set[tuple[str, str]]:
    return {(i.element, i.field) for i in issues}


def _variant(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    change(doc)
    return doc


def test_valid_scenario_is_read(tmp_path: Path) -> None:
    scenario = read_scenario(_write(tmp_path, VALID))
    assert scenario.name == "tiny"
    assert scenario.description.startswith("a microgrid")
    assert scenario.network.summary()["buses"] == 3
    assert scenario.network.switches["pcc"].element_type is SwitchedElement.LINE
    assert scenario.profiles.names == ("house", "flat")
    assert scenario.profiles.steps == 96
    assert scenario.steps == 96


# --- bad input: each problem names its element and field ------------------------------------------------------

BAD_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, str], str]] = {
    "dangling bus": (
        lambda d: d["elements"]["buses"].append({"id": "orphan", "vn_kv": 0.4}),
        ("buses[orphan]", "id"),
        "dangling bus",
    ),
    "negative line rating": (
        lambda d: d["elements"]["lines"][0].update(max_i_a=-1),
        ("lines[l1]", "max_i_a"),
        "greater than 0",
    ),
    "negative transformer rating": (
        lambda d: d["elements"]["transformers"][0].update(sn_kva=-5),
        ("transformers[t]", "sn_kva"),
        "greater than 0",
    ),
    "unknown SimBench code": (
        lambda d: d.update(base={"simbench": "1-LV-rural1--0-sx"}),
        ("base", "simbench"),
        "unknown SimBench code '1-LV-rural1--0-sx'",
    ),
    "unknown SimBench profiles": (
        lambda d: d["profiles"].update(simbench="9-XX-nowhere"),
        ("profiles", "simbench"),
        "unknown SimBench code",
    ),
    "profile of the wrong length": (
        lambda d: d["profiles"]["series"]["values"].update(short=[1.0] * 95),
        ("profiles[short]", "values"),
        "has 95 values but the other profiles have 96",
    ),
    "PCC that is not a switch": (
        lambda d: d["elements"]["sites"][0].update(pcc="l1"),
        ("sites[mg]", "pcc"),
        "not a switch",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_element_and_field(tmp_path: Path, case: str) -> None:
    change, owner, words = BAD_CASES[case]
    scenario, issues = read_scenario_issues(_write(tmp_path, _variant(change)))
    assert scenario is None
    assert [(i.element, i.field) for i in issues] == [owner]
    assert words in issues[0].problem
    assert issues[0].fix


BAD_YAML = """\
name: bad
base: {simbench: 1-LV-rural1--0-sx}          # unknown SimBench code
elements:
  buses:
    - {id: b1, vn_kv: 0.4}
    - {id: b2, vn_kv: 0.4}
    - {id: b3, vn_kv: 0.4}                    # dangling
  lines:
    - {id: l1, from_bus: b1, to_bus: b2, length_km: 0.1, r_ohm_per_km: 0.2, x_ohm_per_km: 0.1, max_i_a: -1}
  external_grids: [{id: g, bus: b1}]
  sites: [{id: mg, pcc: l1}]                  # a line, not a switch
profiles:
  series: {start: 2016-01-01, resolution_min: 15, values: {a: [1, 1, 1, 1], b: [1, 1, 1, 1], c: [1, 1, 1]}}
time: {start: 2016-01-01, days: 0.04}
"""
BAD_OWNERS = {
    ("base", "simbench"),
    ("buses[b3]", "id"),
    ("lines[l1]", "max_i_a"),
    ("sites[mg]", "pcc"),
    ("profiles[c]", "values"),
}


def test_every_problem_of_a_scenario_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    scenario, issues = read_scenario_issues(path)
    assert scenario is None
    assert _owners(issues) == BAD_OWNERS
    assert len(issues) == len(BAD_OWNERS)  # reported once each, no follow-on noise
    with pytest.raises(ScenarioError) as exc:
        read_scenario(path)
    assert _owners(list(exc.value.issues)) == BAD_OWNERS
    assert "5 problem(s)" in str(exc.value)


def test_parse_scenario_takes_parsed_yaml_directly() -> None:
    scenario, issues = parse_scenario(yaml.safe_load(BAD_YAML), name="bad")
    assert scenario is None
    assert _owners(issues) == BAD_OWNERS


@pytest.mark.parametrize(
    ("change", "owner"),
    [
        (lambda d: d.update(colour="red"), ("colour", "-")),
        (lambda d: d["elements"].update(nodes=[{"id": "x"}]), ("elements.nodes", "-")),
        (lambda d: d["elements"]["lines"][0].update(max_i_ka=0.2), ("lines[l1]", "max_i_ka")),
        (lambda d: d["elements"]["loads"][0].pop("p_kw"), ("loads[home]", "p_kw")),
        (lambda d: d["elements"]["loads"][0].update(p_profile="H9"), ("loads[home]", "p_profile")),
        (lambda d: d.update(modify={"loads": {"ghost": {"p_kw": 1}}}), ("loads[ghost]", "-")),
        (lambda d: d.update(modify={"loads": {"home": {"p_kw": "lots"}}}), ("loads[home]", "p_kw")),
        (lambda d: d.update(remove={"loads": ["ghost"]}), ("loads[ghost]", "-")),
        (lambda d: d.update(time={"start": "2016-01-01", "days": 0}), ("time", "-")),
        (lambda d: d.update(time={"start": "2016-01-01", "days": 2}), ("time", "days")),
        (lambda d: d.update(base={"osm": "x"}), ("base", "-")),
        (lambda d: d.update(base={"pandapower": "missing.json"}), ("base", "pandapower")),
        (lambda d: d["profiles"].update(file="missing.parquet"), ("profiles", "file")),
    ],
)
def test_other_mistakes(tmp_path: Path, change: Callable[[dict[str, Any]], None], owner: tuple[str, str]) -> None:
    scenario, issues = read_scenario_issues(_write(tmp_path, _variant(change)))
    assert scenario is None
    assert _owners(issues) == {owner}


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _owners(read_scenario_issues(missing)[1]) == {(str(missing), "-")}
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    scenario, issues = read_scenario_issues(broken)
    assert scenario is None
    assert "not valid YAML" in issues[0].problem
    assert _owners(parse_scenario(["a", "list"])[1]) == {("file", "-")}


# --- bases and profile sources ---------------------------------------------------------------------------------


def test_simbench_base_with_changes(tmp_path: Path) -> None:
    doc = {
        "base": {"simbench": "1-LV-rural1--0-sw"},
        "modify": {"loads": {"LV1.101 Load 1": {"p_kw": 99.0, "critical": True}}},
        "remove": {"generators": ["LV1.101 SGen 1"]},
        "elements": {"batteries": [{"id": "bess", "bus": "LV1.101 Bus 4", "e_kwh": 40, "p_kw": 20}]},
        "profiles": {"simbench": "1-LV-rural1--0-sw"},
        "time": {"start": "2016-06-01", "days": 2},
    }
    scenario = read_scenario(_write(tmp_path, doc))
    net = scenario.network
    assert net.name == "1-LV-rural1--0-sw"
    assert (net.loads["LV1.101 Load 1"].p_kw, net.loads["LV1.101 Load 1"].critical) == (99.0, True)
    assert "LV1.101 SGen 1" not in net.generators
    assert len(net.generators) == 3
    assert net.batteries["bess"].bus == "LV1.101 Bus 4"
    assert scenario.profiles.steps == 35_136
    assert scenario.time.start.month == 6


def test_pandapower_base_and_csv_profiles(tmp_path: Path) -> None:
    net = pp.create_empty_network(name="json-grid")
    a, b = pp.create_bus(net, 0.4, name="a"), pp.create_bus(net, 0.4, name="b")
    pp.create_ext_grid(net, a, name="grid")
    pp.create_line_from_parameters(net, a, b, 0.1, 0.2, 0.08, 0.0, 0.2, name="cable")
    pp.create_load(net, b, 0.005, 0.001, name="shop", profile="G0-A")
    pp.to_json(net, str(tmp_path / "grid.json"))
    index = pd.date_range("2016-01-01", periods=96, freq="15min")
    frame = pd.DataFrame({"G0-A_pload": np.linspace(0, 1, 96)}, index=index)
    frame.to_csv(tmp_path / "shop.csv")
    doc = {
        "name": "from-json",
        "base": {"pandapower": "grid.json"},
        "profiles": {"file": "shop.csv"},
        "time": {"start": "2016-01-01", "days": 1},
    }
    scenario, issues = read_scenario_issues(_write(tmp_path, doc))
    assert scenario is None  # the q profile the load refers to is missing
    assert _owners(issues) == {("loads[shop]", "q_profile")}
    frame["G0-A_qload"] = 0.2
    frame.to_csv(tmp_path / "shop.csv")
    scenario = read_scenario(_write(tmp_path, doc))
    assert scenario.network.name == "from-json"
    assert list(scenario.network.buses) == ["a", "b"]
    assert scenario.network.loads["shop"].p_profile == "G0-A_pload"
    assert scenario.profiles.names == ("G0-A_pload", "G0-A_qload")
    assert scenario.profiles.steps == 96


# --- write → read ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simbench_scenario() -> Scenario:
    return from_simbench("1-LV-rural1--0-sw", days=3.0)


def test_simbench_scenario_round_trips(tmp_path: Path, simbench_scenario: Scenario) -> None:
    path = tmp_path / "rural.yaml"
    written = write_scenario(simbench_scenario, path)
    assert written == [path, tmp_path / "rural.profiles.parquet"]
    back = read_scenario(path)
    assert back.network == simbench_scenario.network
    assert back.name == simbench_scenario.name
    assert back.description == simbench_scenario.description
    assert back.time == simbench_scenario.time
    ours, theirs = back.profiles, simbench_scenario.profiles
    assert (ours.start, ours.resolution, ours.names) == (theirs.start, theirs.resolution, theirs.names)
    np.testing.assert_array_equal(ours.values, theirs.values)


def test_written_yaml_has_one_element_per_line(tmp_path: Path, simbench_scenario: Scenario) -> None:
    path = tmp_path / "rural.yaml"
    write_scenario(simbench_scenario, path)
    element_lines = [line for line in path.read_text().splitlines() if line.startswith("  - {")]
    assert len(element_lines) == sum(simbench_scenario.network.summary().values())


def test_hand_written_scenario_round_trips(tmp_path: Path) -> None:
    original = read_scenario(_write(tmp_path, VALID, "in.yaml"))
    write_scenario(original, tmp_path / "out.yaml")
    back = read_scenario(tmp_path / "out.yaml")
    assert back.network == original.network
    assert back.time == original.time
    np.testing.assert_array_equal(back.profiles.values, original.profiles.values)
