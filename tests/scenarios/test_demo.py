"""The built-in demo is what the foundation issue promises: a real rural MV grid with many LV grids,
turned into a distributed smart grid, offline."""

from __future__ import annotations

import pytest

from gridmesh.model.graph import connectivity
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.kinds import GeneratorKind, LoadClass, SiteLevel, SwitchKind
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return read_scenario(scenario_path("demo"))


def test_real_rural_mv_grid_with_many_lv_grids(demo: Scenario) -> None:
    zones = {bus.zone for bus in demo.network.buses.values() if bus.zone and bus.zone.startswith("LV")}
    assert len(zones) >= 90
    assert any(b.vn_kv == 20.0 for b in demo.network.buses.values())
    assert demo.profiles.steps == 35_136


def test_four_microgrids_with_battery_behind_a_pcc_switch(demo: Scenario) -> None:
    net = demo.network
    members = resolve_sites(net)
    microgrids = [s for s in net.sites.values() if s.level is SiteLevel.MICROGRID]
    assert len(microgrids) >= 4
    for site in microgrids:
        assert site.pcc in net.switches
        assert net.switches[site.pcc].remote
        assert members[site.id].elements["batteries"], site.id
        assert len(members[site.id].buses) > 5
    assert {SiteLevel.GROUP, SiteLevel.VPP} <= {s.level for s in net.sites.values()}


def test_sources_loads_and_chargers(demo: Scenario) -> None:
    net = demo.network
    kinds = {g.kind for g in net.generators.values()}
    assert {GeneratorKind.PV, GeneratorKind.WIND, GeneratorKind.BIOMASS, GeneratorKind.MICRO_HYDRO} <= kinds
    assert {load.load_class for load in net.loads.values()} == set(LoadClass)
    assert any(load.critical for load in net.loads.values())
    assert len(net.ev_chargers) >= 4
    assert all(load.p_profile for load in net.loads.values())


def test_switching_devices(demo: Scenario) -> None:
    switches = demo.network.switches.values()
    ties = [s for s in switches if s.kind is SwitchKind.TIE]
    assert ties
    assert all(not s.normally_closed for s in ties)
    assert sum(s.remote for s in switches) >= 10
    assert any(s.kind is SwitchKind.RECLOSER for s in switches)
    assert connectivity(demo.network).islands() == []
