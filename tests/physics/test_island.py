"""Islands: detection from switch states, the grid-forming battery as the island's source, droop.

The island power flow is checked against a 2-bus case solved by hand and against pandapower with the
grid-forming battery as the island's ext_grid.
"""

from __future__ import annotations

import math

import numpy as np
import pandapower as pp
import pytest

from gridmesh.errors import ScenarioError
from gridmesh.model.elements import Battery, Bus, ExternalGrid, Generator, Line, Load, Switch
from gridmesh.model.network import Network
from gridmesh.physics.island import Droop, IslandFlow, find_islands, outage_network, with_island_sources
from gridmesh.physics.powerflow import Injections

R_OHM, X_OHM = 0.05, 0.02  # per phase, the line a→b (0.1 km)
P_KW, Q_KVAR = 30.0, 10.0  # the load at b
LINE = {"length_km": 0.1, "r_ohm_per_km": R_OHM / 0.1, "x_ohm_per_km": X_OHM / 0.1, "max_i_a": 300}


def microgrid(*, grid_forming: bool = True, pv_kw: float = 0.0) -> Network:
    """grid ─ trafo-less line ─ [pcc] a (grid-forming battery) ─ line ─ b (load, PV)."""
    return Network.from_elements(
        [
            Bus(id="grid", vn_kv=0.4),
            Bus(id="a", vn_kv=0.4),
            Bus(id="b", vn_kv=0.4),
            ExternalGrid(id="eg", bus="grid"),
            Line(id="feeder", from_bus="grid", to_bus="a", **LINE),
            Switch(id="pcc", bus="a", element="feeder", element_type="line", kind="breaker", remote=True),
            Line(id="ab", from_bus="a", to_bus="b", **LINE),
            Load(id="house", bus="b", p_kw=P_KW, q_kvar=Q_KVAR),
            Generator(id="pv", bus="b", kind="pv", p_kw=pv_kw),
            Battery(id="bess", bus="a", e_kwh=100, p_kw=60, grid_forming=grid_forming),
        ]
    )


def test_opening_the_pcc_forms_one_island_around_the_grid_forming_battery() -> None:
    net = microgrid()
    assert find_islands(net) == ()  # connected: nothing islanded
    islands = find_islands(outage_network(net, open_switches=["pcc"]))
    assert len(islands) == 1
    assert islands[0].former == "bess" and set(islands[0].buses) == {"a", "b"}


def test_loss_of_upstream_supply_with_the_pcc_closed_islands_everything_the_battery_reaches() -> None:
    islands = find_islands(outage_network(microgrid(), upstream_lost=True))
    assert len(islands) == 1 and set(islands[0].buses) == {"grid", "a", "b"}
    # A battery that is not allowed to form (it trips on loss of mains) forms nothing.
    assert find_islands(outage_network(microgrid(), upstream_lost=True), formers=[]) == ()


def test_a_grid_following_battery_forms_no_island() -> None:
    assert find_islands(outage_network(microgrid(grid_forming=False), open_switches=["pcc"])) == ()


def test_an_unknown_switch_is_named() -> None:
    with pytest.raises(ScenarioError, match="switches\\[nope\\]"):
        outage_network(microgrid(), open_switches=["nope"])


def test_droop_by_hand() -> None:
    droop = Droop(f0_hz=50.0, p_droop=0.01, v0_pu=1.0, q_droop=0.05)
    # f = 50 − (30/60)·0.01·50 = 49.75 Hz; charging at 60 kW: 50.5 Hz; V = 1 − (12/60)·0.05 = 0.99 pu.
    assert droop.frequency_hz(30.0, 60.0) == pytest.approx(49.75, abs=1e-12)
    assert droop.frequency_hz(-60.0, 60.0) == pytest.approx(50.5, abs=1e-12)
    assert droop.voltage_pu(12.0, 60.0) == pytest.approx(0.99, abs=1e-12)


def _one_step(net: Network, *, pv_kw: float = 0.0) -> Injections:
    return Injections(
        load_p_kw=np.array([[P_KW]]),
        load_q_kvar=np.array([[Q_KVAR]]),
        gen_p_kw=np.array([[pv_kw]]),
        gen_q_kvar=np.zeros((1, 1)),
        ev_p_kw=np.zeros((1, 0)),
        battery_p_kw=np.array([[25.0]]),  # ignored: the source carries the grid-forming battery's power
    )


def test_island_power_flow_matches_the_two_bus_case_by_hand() -> None:
    net = outage_network(microgrid(), open_switches=["pcc"])
    flow = IslandFlow(net, find_islands(net))
    solved = flow.run(_one_step(net), passes=6)
    # The source holds V_a = v_set; a constant-power load through Z = R + jX (per phase, line-to-line
    # voltages, three-phase powers) has V_b² = [A + √(A² − 4·|Z|²·S²)] / 2 with A = V_a² − 2(RP + XQ).
    v_a = solved.v_set_pu[0, 0] * 400.0
    p, q = P_KW * 1e3, Q_KVAR * 1e3
    a = v_a**2 - 2 * (R_OHM * p + X_OHM * q)
    v_b = math.sqrt((a + math.sqrt(a**2 - 4 * (R_OHM**2 + X_OHM**2) * (p**2 + q**2))) / 2)
    s2 = p**2 + q**2
    loss_p, loss_q = R_OHM * s2 / v_b**2, X_OHM * s2 / v_b**2
    bus = flow.engine.index.buses
    assert solved.result.v_pu[0, bus.index("b")] == pytest.approx(v_b / 400.0, abs=1e-9)
    assert solved.p_kw[0, 0] == pytest.approx((p + loss_p) / 1e3, abs=1e-6)
    assert solved.q_kvar[0, 0] == pytest.approx((q + loss_q) / 1e3, abs=1e-6)
    assert solved.losses_kw[0, 0] == pytest.approx(loss_p / 1e3, abs=1e-6)
    # Droop: f from the battery's output; V_set at the Q-droop's fixed point.
    assert solved.frequency_hz[0, 0] == pytest.approx(50.0 - (p + loss_p) / 1e3 / 60.0 * 0.01 * 50.0, abs=1e-9)
    assert solved.droop_residual_pu[0, 0] < 1e-6
    assert solved.v_set_pu[0, 0] == pytest.approx(1.0 - solved.q_kvar[0, 0] / 60.0 * 0.05, abs=1e-6)
    # The upstream part stays supplied by its own grid; the island is energised by the battery.
    assert solved.result.energized[0].all()


def test_island_power_flow_matches_pandapower_with_the_battery_as_ext_grid() -> None:
    net = outage_network(microgrid(pv_kw=50.0), open_switches=["pcc"])
    flow = IslandFlow(net, find_islands(net), droop=Droop(q_droop=0.0))  # fixed set-point: 1 pu
    solved = flow.run(_one_step(net, pv_kw=50.0))
    ref = pp.create_empty_network()
    a, b = pp.create_bus(ref, vn_kv=0.4), pp.create_bus(ref, vn_kv=0.4)
    pp.create_ext_grid(ref, a, vm_pu=1.0)
    pp.create_line_from_parameters(
        ref, a, b, length_km=0.1, r_ohm_per_km=R_OHM / 0.1, x_ohm_per_km=X_OHM / 0.1, c_nf_per_km=0.0, max_i_ka=0.3
    )
    pp.create_load(ref, b, p_mw=P_KW / 1e3, q_mvar=Q_KVAR / 1e3)
    pp.create_sgen(ref, b, p_mw=50.0 / 1e3)
    pp.runpp(ref, tolerance_mva=1e-12)
    bus = flow.engine.index.buses
    assert solved.result.v_pu[0, bus.index("b")] == pytest.approx(ref.res_bus.vm_pu[b], abs=1e-8)
    # The PV exports more than the load takes: the battery charges (negative output), the frequency rises.
    assert solved.p_kw[0, 0] == pytest.approx(ref.res_ext_grid.p_mw[0] * 1e3, abs=1e-5)
    assert solved.p_kw[0, 0] < 0 and solved.frequency_hz[0, 0] > 50.0
    assert solved.losses_kw[0, 0] == pytest.approx(ref.res_line.pl_mw[0] * 1e3, abs=1e-6)


def test_the_source_stands_at_the_battery_bus() -> None:
    net = outage_network(microgrid(), open_switches=["pcc"])
    with_sources = with_island_sources(net, find_islands(net), v_set_pu=1.02)
    source = with_sources.external_grids["island:bess"]
    assert source.bus == "a" and source.vm_pu == 1.02
