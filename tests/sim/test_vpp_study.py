"""The VPP study: assets and owners of a level-3 site, delivery measured by the twin's power flow and
re-derived here from the PCC flows, clipped awards in the outputs, and the demo's VPP by hand."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Site, Switch
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario
from gridmesh.optim.vpp_disaggregate import disaggregate
from gridmesh.optim.vpp_envelope import ClipReason, sample_inside, vpp_envelope
from gridmesh.physics.powerflow import Injections
from gridmesh.sim.vpp_study import VppCase, deliver, microgrids_of, run_vpp_study, vpp_case

STEPS = 96


@pytest.fixture(scope="module")
def case(small_scenario_file: Path) -> VppCase:
    return vpp_case(read_scenario(small_scenario_file), day=datetime(2016, 6, 1))


def test_the_vpp_pools_its_members_assets_with_their_owners(case: VppCase) -> None:
    fleet = case.fleet
    assert fleet.battery_ids == ("bess",)
    assert "extra-pv" in fleet.generator_ids and fleet.steps == STEPS
    assert case.asset_site["bess"] == "mg" and case.owner("bess") == "coop"
    # extra-pv is listed by the VPP but sits inside the member microgrid, which owns it.
    assert case.asset_site["extra-pv"] == "mg"
    env = vpp_envelope(fleet)
    np.testing.assert_allclose(env.up_kw, 40.0)  # the battery's rating: no network limit binds up
    # Down: the battery's 40 kW plus every curtailable generator's forecast (PV at noon).
    assert env.down_kw.max() > 40.0 + 0.5 * fleet.gen_available_kw.sum(axis=1).max()


def test_delivery_is_the_change_of_the_pcc_export(case: VppCase) -> None:
    award = np.where((np.arange(STEPS) >= 72) & (np.arange(STEPS) < 80), 25.0, 0.0)  # 25 kW up, 18:00–20:00
    award[44:52] = -60.0  # 60 kW down at noon: battery and curtailment
    delivery = deliver(case, disaggregate(case.fleet, award))
    assert delivery.allocation.fit.inside
    # Independent reading: the PCC branch flow with and without the dispatch, from two power flows here.
    twin = case.twin
    window, base = twin.window(0, STEPS)
    battery = np.zeros((STEPS, len(twin.fleet)))
    battery[:, case.battery_pos] = delivery.battery_kw
    gen = window.gen_p_kw.copy()
    gen[:, case.gen_pos] -= delivery.allocation.curtail_kw
    result = twin.engine.run(
        Injections(window.load_p_kw, base.load_q_kvar, gen, base.gen_q_kvar, window.ev_p_kw, battery)
    )
    net = twin.scenario.network
    pcc = net.switches["LV1.101 Switch 9"]
    assert pcc.bus == net.transformers[pcc.element].lv_bus  # the breaker sits at the trafo's LV terminal
    k = twin.engine.index.transformers.index(pcc.element)
    # Power into the trafo at its LV end is export; everything the VPP owns sits behind this PCC.
    export_change = result.trafo_p_to_kw[:, k] - case.baseline.trafo_p_to_kw[:, k]
    np.testing.assert_allclose(delivery.delivered_kw, export_change, atol=1e-6)
    np.testing.assert_allclose(delivery.delivered_kw, award, atol=0.05 * 60)  # losses only
    assert delivery.summary["delivered_share"] == pytest.approx(1.0, abs=0.05)
    assert delivery.summary["new_voltage_violations"] == 0 and delivery.summary["new_overloads"] == 0
    assert delivery.summary["mae_vs_award_kw"] < 1.0


def test_study_writes_outputs_with_clipped_intervals(case: VppCase, tmp_path: Path) -> None:
    award = np.full(STEPS, 50.0)  # 50 kW up all day: above the 40 kW battery, and its energy runs out
    _, delivery = run_vpp_study(case, award, out=tmp_path)
    frame = pd.read_csv(tmp_path / "delivery.csv")
    assert len(frame) == STEPS
    assert set(frame["reason"].dropna()) <= {ClipReason.UP_CAPABILITY.value, ClipReason.STORAGE_EMPTY.value}
    assert (frame["shortfall_kw"] >= 10.0 - 1e-6).all()  # at least the 10 kW above the rating, every interval
    # The battery's 80 kWh × (0.5 − 0.1) = 32 kWh stored, × η_discharge 0.93 at the grid = 29.76 kWh.
    np.testing.assert_allclose((frame["target_kw"] * 0.25).sum(), 32.0 * 0.93, rtol=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["clipped_intervals"] == STEPS
    assert summary["clipped_kwh"] == pytest.approx(50.0 * 24 - 32.0 * 0.93, rel=1e-6)
    assert summary["delivered_share"] == pytest.approx(delivery.summary["delivered_share"])
    allocation = pd.read_csv(tmp_path / "allocation.csv")
    assert set(allocation["owner"]) == {"coop"}
    envelope = json.loads((tmp_path / "envelope.json").read_text())
    assert len(envelope["intervals"]["up_kw"]) == STEPS and envelope["storage"]["power_kw"] == pytest.approx(40.0)
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 3


def test_tight_voltage_limits_hold_in_the_full_power_flow(case: VppCase) -> None:
    """With a 1.025 pu ceiling (the baseline already exceeds it at times) the envelope shrinks; every sampled
    dispatch inside it, run through the twin's power flow, breaks no limit the baseline kept."""
    net = case.twin.scenario.network
    tight_net = net.with_elements([b.model_copy(update={"v_max_pu": 1.025}) for b in net.buses.values()])
    tight = vpp_case(dataclasses.replace(case.twin.scenario, network=tight_net))
    env = vpp_envelope(tight.fleet)
    assert env.up_kw.min() < 1.0 and env.up_kw.max() > 10.0  # limited in places, not everywhere
    assert any(env.limited_by) and all(n.startswith("v ") for n in ", ".join(env.limited_by).split(", ") if n)
    for award in sample_inside(env, 25, seed=2):
        delivery = deliver(tight, disaggregate(tight.fleet, award, envelope=env))
        assert delivery.allocation.fit.inside
        assert delivery.summary["new_voltage_violations"] == 0, delivery.summary
        assert delivery.summary["new_overloads"] == 0
        assert delivery.summary["mae_vs_target_kw"] < 0.5  # the linear model's error: losses only


def test_a_site_that_is_not_a_vpp_is_refused_by_name(case: VppCase) -> None:
    with pytest.raises(ValueError, match=r"sites\[mg\]: not a level-3 site"):
        vpp_case(case.twin.scenario, site="mg")


def test_microgrids_are_found_through_groups() -> None:
    line = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_a": 200}
    net = Network.from_elements(
        [
            Bus(id="grid", vn_kv=0.4),
            Bus(id="a", vn_kv=0.4),
            Bus(id="b", vn_kv=0.4),
            ExternalGrid(id="eg", bus="grid"),
            Line(id="la", from_bus="grid", to_bus="a", **line),
            Line(id="lb", from_bus="grid", to_bus="b", **line),
            Switch(id="pa", bus="a", element="la", element_type="line"),
            Switch(id="pb", bus="b", element="lb", element_type="line"),
            Site(id="mg-a", pcc="pa"),
            Site(id="mg-b", pcc="pb"),
            Site(id="group", level=2, members=("mg-a", "mg-b")),
            Site(id="vpp", level=3, members=("group", "mg-b")),
        ]
    )
    assert microgrids_of(net, "vpp") == ["mg-a", "mg-b"]  # through the group, mg-b once


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return read_scenario(scenario_path("demo"))


@pytest.mark.slow
def test_the_demo_vpp_envelope_by_hand(demo: Scenario) -> None:
    case = vpp_case(demo)
    assert set(case.fleet.battery_ids) == {"muehlbach-bess", "gewerbepark-bess"}
    assert {"MV1.101 MV SGen 6", "MV1.101 MV SGen 11"} <= set(case.fleet.generator_ids)
    owners = {case.owner(a) for a in (*case.fleet.battery_ids, *case.fleet.generator_ids)}
    assert owners == {"Stadtwerke Mühlbach", "Gewerbepark Süd GmbH", "Bürgerenergie eG"}
    env = vpp_envelope(case.fleet)
    # Two 250 kWh / 125 kW batteries at SOC 0.5 with window 0.1–0.9: 250 kW, 2 × 100 kWh each way.
    np.testing.assert_allclose(env.up_kw, 250.0)
    assert env.energy_below_kwh == pytest.approx(200.0) and env.energy_above_kwh == pytest.approx(200.0)
    np.testing.assert_allclose(env.down_kw, 250.0 + case.fleet.gen_available_kw.sum(axis=1))
