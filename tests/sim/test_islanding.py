"""Islanding study on a SimBench LV microgrid with a grid-forming battery and a critical customer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridmesh.errors import ScenarioError
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.sim.islanding import Cause, IslandingResult, Outage, run_islanding, write_islanding

ISLAND = """
name: island-lv
base: {simbench: 1-LV-rural1--0-sw}
profiles: {simbench: 1-LV-rural1--0-sw}
time: {start: 2016-06-01, days: 2}
modify:
  loads:
    LV1.101 Load 3: {critical: true}
elements:
  generators:
    - {id: extra-pv, bus: LV1.101 Bus 7, kind: pv, p_kw: 60, profile: PV5}
  batteries:
    - {id: bess, bus: LV1.101 Bus 4, e_kwh: 80, p_kw: 40, eta_charge: 0.95, eta_discharge: 0.93, grid_forming: true}
  ev_chargers:
    - {id: ev, bus: LV1.101 Bus 11, p_kw: 11, connectors: 2}
  sites:
    - {id: mg, pcc: LV1.101 Switch 9, owner: coop}
"""
EVENING = datetime(2016, 6, 1, 17)
pytestmark = pytest.mark.slow  # reading the SimBench grid and its profiles takes ~20 s


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("island") / "island.yaml"
    path.write_text(ISLAND)
    return read_scenario(path)


@pytest.fixture(scope="module")
def evening(scenario: Scenario) -> IslandingResult:
    return run_islanding(scenario, Outage(start=EVENING, hours=3.0))


def test_an_upstream_fault_islands_the_microgrid_and_keeps_its_critical_load(evening: IslandingResult) -> None:
    (mg,) = evening.sites
    assert mg.site == "mg" and mg.former == "bess"
    assert mg.critical_demand_kwh > 0 and mg.critical_share == pytest.approx(1.0)
    # 3 h in the island plus the seconds the synchronisation took.
    assert mg.hours_islanded == pytest.approx(3.0 + mg.resync_seconds / 3600.0)
    assert 0 < mg.resync_seconds < 60 and mg.resync["allowed"]
    assert mg.served_kwh + sum(mg.shed_kwh.values()) == pytest.approx(mg.demand_kwh)
    assert 0.1 - 1e-9 <= mg.soc_end < mg.soc_start  # an evening: the battery discharges
    assert 49.5 <= mg.f_min_hz <= mg.f_max_hz <= 50.5  # 1 % droop over the whole power range
    assert 0.9 < mg.v_min_pu <= mg.v_max_pu < 1.1


def test_energy_balance_closes_every_islanded_step(evening: IslandingResult) -> None:
    (mg,) = evening.sites
    # Generation + discharge − curtailment = served + charge + losses of the power flow, step by step.
    assert mg.balance_error_kw < 0.05
    trace = evening.traces[evening.traces["islanded"]]
    assert len(trace) == 12  # 3 h of 15 min
    gen_kwh = (mg.served_kwh + mg.losses_kwh) - float(trace["battery_kw"].sum()) * evening.dt_h
    assert gen_kwh >= -1e-6  # what the generators must have supplied (after curtailment) is not negative


def test_the_trace_is_grid_connected_outside_the_outage(evening: IslandingResult) -> None:
    t = evening.traces
    outside = t[~t["islanded"]]
    assert len(outside) == 16  # 2 h before and after
    assert (outside["frequency_hz"] == 50.0).all() and (outside["battery_kw"] == 0.0).all()
    assert np.allclose(outside["served_kw"], outside["demand_kw"])
    inside = t[t["islanded"]]
    assert np.allclose(inside["critical_served_kw"], inside["critical_kw"])
    assert inside["time"].min() == pd.Timestamp(EVENING)
    soc = t["soc"].to_numpy()
    assert np.all(np.diff(soc[t["time"] >= pd.Timestamp(2016, 6, 1, 20)]) == 0.0)  # idle after the resync


def test_a_planned_opening_at_noon_charges_from_the_pv(scenario: Scenario) -> None:
    result = run_islanding(scenario, Outage(start=datetime(2016, 6, 1, 11), hours=2.0, cause=Cause.PLANNED))
    (mg,) = result.sites
    assert mg.soc_end > mg.soc_start and mg.f_max_hz > 50.0  # surplus: charging raises the frequency
    assert mg.critical_share == pytest.approx(1.0)


def test_a_low_battery_still_carries_the_critical_load(scenario: Scenario) -> None:
    result = run_islanding(scenario, Outage(start=EVENING, hours=3.0, soc_start=0.2))
    (mg,) = result.sites
    assert mg.critical_share == pytest.approx(1.0)
    assert mg.served_share < 0.5 and sum(mg.shed_kwh.values()) > 0


def test_bad_input_is_named(scenario: Scenario) -> None:
    with pytest.raises(ScenarioError, match="sites\\[nope\\]"):
        run_islanding(scenario, Outage(start=EVENING, hours=1.0, sites=("nope",)))
    with pytest.raises(ScenarioError, match="batteries\\[bess\\]"):
        run_islanding(scenario, Outage(start=EVENING, hours=1.0, soc_start=0.95))
    with pytest.raises(ValueError, match="positive"):
        run_islanding(scenario, Outage(start=EVENING, hours=0.0))


def test_write_islanding(evening: IslandingResult, tmp_path: Path) -> None:
    json_path, parquet_path, html_path = write_islanding(evening, tmp_path / "out")
    assert '"critical_share": 1.0' in json_path.read_text()
    assert len(pd.read_parquet(parquet_path)) == 28
    html = html_path.read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html and "<script" not in html
    assert "mg" in html and "Hours islanded" in html
