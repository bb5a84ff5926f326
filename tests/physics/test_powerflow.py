"""Power flow: a case solved by hand, batch = many snapshots, failed steps, islands, injections."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pandapower as pp
import pytest
from scipy.optimize import brentq

from gridmesh.errors import NotConverged
from gridmesh.model.elements import Battery, Bus, EvCharger, ExternalGrid, Line, Load
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.io.simbench import from_simbench
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario
from gridmesh.physics.powerflow import Injections, PowerFlow, PowerFlowResult, snapshot

# --- a 3-bus case solved by hand -------------------------------------------------------------------------------
#
# Slack bus 1 at V1 = 10 kV; lines 1→2 (R12) and 2→3 (R23) are purely resistive (x = 0, c = 0); loads are
# constant power at unity power factor. Then every voltage is in phase with the slack, so phasors are real
# numbers. A three-phase load P at line-to-line voltage V draws the line current I = P / (√3·V), and a line
# of per-phase resistance R drops √3·I·R = P·R / V line-to-line. Hence, sweeping backward from bus 3:
#
#     V2 = V3 + R23·P3 / V3
#     V1 = V2 + R12·(P3 / V3 + P2 / V2)
#
# With only P3 (P2 = 0, R = R12 + R23): V1 = V3 + P3·R / V3, i.e. V3² − V1·V3 + P3·R = 0, whose operating
# (high-voltage) root is V3 = (V1 + √(V1² − 4·P3·R)) / 2. With both loads, the second equation is a scalar
# equation in V3, solved by brentq on [V1/2, V1]. Losses are 3·I²·R per line.

V1_KV = 10.0
R_PER_KM = 0.5
LEN_12_KM, LEN_23_KM = 4.0, 6.0
R12, R23 = R_PER_KM * LEN_12_KM, R_PER_KM * LEN_23_KM  # ohm per phase
EXACT_PU = 1e-8


def _three_bus(p2_kw: float, p3_kw: float) -> Network:
    def line(id_: str, a: str, b: str, km: float) -> Line:
        return Line(
            id=id_,
            from_bus=a,
            to_bus=b,
            length_km=km,
            r_ohm_per_km=R_PER_KM,
            x_ohm_per_km=0.0,
            c_nf_per_km=0.0,
            max_i_a=100.0,
        )

    return Network.from_elements(
        [
            *(Bus(id=b, vn_kv=V1_KV) for b in ("1", "2", "3")),
            line("12", "1", "2", LEN_12_KM),
            line("23", "2", "3", LEN_23_KM),
            ExternalGrid(id="slack", bus="1", vm_pu=1.0),
            Load(id="L2", bus="2", p_kw=p2_kw),
            Load(id="L3", bus="3", p_kw=p3_kw),
        ]
    )


def _by_hand(p2_kw: float, p3_kw: float) -> tuple[float, float, float, float]:
    """V2, V3 (V), line currents I12, I23 (A) from the sweep equations above."""
    v1, p2, p3 = V1_KV * 1e3, p2_kw * 1e3, p3_kw * 1e3

    def v2_of(v3: float) -> float:
        return v3 + R23 * p3 / v3

    def mismatch(v3: float) -> float:
        v2 = v2_of(v3)
        return v2 + R12 * (p3 / v3 + p2 / v2) - v1

    v3 = brentq(mismatch, v1 / 2, v1, xtol=1e-12, rtol=1e-15)
    v2 = v2_of(v3)
    i23 = p3 / (math.sqrt(3) * v3)
    i12 = i23 + p2 / (math.sqrt(3) * v2)
    return v2, v3, i12, i23


def test_single_load_matches_the_closed_form() -> None:
    p3_kw = 1000.0
    v1, p, r = V1_KV * 1e3, p3_kw * 1e3, R12 + R23
    v3 = (v1 + math.sqrt(v1**2 - 4 * p * r)) / 2
    assert _by_hand(0.0, p3_kw)[1] == pytest.approx(v3, rel=1e-13)  # the sweep agrees with the closed form
    result = snapshot(_three_bus(0.0, p3_kw))
    assert not result.failed
    assert result.v_pu[0, 2] == pytest.approx(v3 / v1, abs=EXACT_PU)
    i = p / (math.sqrt(3) * v3)
    assert result.losses_kw[0] == pytest.approx(3 * i**2 * r / 1e3, rel=1e-7)
    np.testing.assert_allclose(result.line_i_a[0], [i, i], rtol=1e-7)


@pytest.mark.parametrize(("p2_kw", "p3_kw"), [(400.0, 600.0), (1500.0, 200.0), (0.0, 2000.0)])
def test_two_loads_match_the_backward_sweep(p2_kw: float, p3_kw: float) -> None:
    v2, v3, i12, i23 = _by_hand(p2_kw, p3_kw)
    result = snapshot(_three_bus(p2_kw, p3_kw))
    assert not result.failed
    v1 = V1_KV * 1e3
    np.testing.assert_allclose(result.v_pu[0], [1.0, v2 / v1, v3 / v1], rtol=0, atol=EXACT_PU)
    np.testing.assert_allclose(result.angle_deg[0], 0.0, atol=1e-6)  # resistive: all in phase
    losses_kw = 3 * (i12**2 * R12 + i23**2 * R23) / 1e3
    assert result.losses_kw[0] == pytest.approx(losses_kw, rel=1e-7)
    np.testing.assert_allclose(
        result.line_p_from_kw[0] + result.line_p_to_kw[0], [3 * i12**2 * R12 / 1e3, 3 * i23**2 * R23 / 1e3], rtol=1e-6
    )
    assert result.grid_p_kw[0, 0] == pytest.approx(p2_kw + p3_kw + losses_kw, rel=1e-9)
    np.testing.assert_allclose(result.line_loading[0], [i12 / 100.0, i23 / 100.0], rtol=1e-7)


# --- batch = many snapshots ------------------------------------------------------------------------------------

MIDSUMMER = 172 * 96  # 21 June 2016, as a step of SimBench's year
STEPS = MIDSUMMER + np.array([0, 30, 44, 48, 52, 60, 72, 90])  # night, morning, PV noon, evening


@pytest.fixture(scope="module")
def rural() -> Scenario:
    return from_simbench("1-LV-rural1--0-sw", days=366.0)


@pytest.fixture(scope="module")
def engine(rural: Scenario) -> PowerFlow:
    return PowerFlow(rural.network)


def _injections(rural: Scenario, engine: PowerFlow, steps: np.ndarray) -> Injections:
    net, prof, idx = rural.network, rural.profiles, engine.index
    loads = [net.loads[i] for i in idx.loads]
    gens = [net.generators[i] for i in idx.generators]
    rows = steps - steps.min()
    window = int(steps.max() - steps.min() + 1)

    def scaled(names: list[str | None], values: list[float]) -> np.ndarray:
        return prof.scaled(names, np.array(values), int(steps.min()), window)[rows]

    n = len(steps)
    return Injections(
        load_p_kw=scaled([x.p_profile for x in loads], [x.p_kw for x in loads]),
        load_q_kvar=scaled([x.q_profile for x in loads], [x.q_kvar for x in loads]),
        gen_p_kw=scaled([g.profile for g in gens], [g.p_kw for g in gens]),
        gen_q_kvar=np.zeros((n, len(gens))),
        ev_p_kw=np.zeros((n, 0)),
        battery_p_kw=np.zeros((n, 0)),
    )


def _float_fields(result: PowerFlowResult) -> dict[str, np.ndarray]:
    return {
        f.name: getattr(result, f.name)
        for f in fields(result)
        if isinstance(getattr(result, f.name), np.ndarray) and getattr(result, f.name).dtype.kind == "f"
    }


@pytest.fixture(scope="module")
def batch(rural: Scenario, engine: PowerFlow) -> tuple[Injections, PowerFlowResult]:
    injections = _injections(rural, engine, STEPS)
    return injections, engine.run(injections)


def test_batch_equals_one_snapshot_per_step(
    rural: Scenario, engine: PowerFlow, batch: tuple[Injections, PowerFlowResult]
) -> None:
    injections, result = batch
    assert result.steps == len(STEPS)
    assert result.failed == {}
    net, idx = rural.network, engine.index
    for k in range(len(STEPS)):
        loads = [
            net.loads[i].model_copy(update={"p_kw": injections.load_p_kw[k, j], "q_kvar": injections.load_q_kvar[k, j]})
            for j, i in enumerate(idx.loads)
        ]
        gens = [
            net.generators[i].model_copy(update={"p_kw": injections.gen_p_kw[k, j], "q_kvar": 0.0})
            for j, i in enumerate(idx.generators)
        ]
        step = net.with_elements([*loads, *gens])
        single = snapshot(step)
        for name, values in _float_fields(single).items():
            np.testing.assert_allclose(
                _float_fields(result)[name][k], values[0], rtol=1e-9, atol=1e-9, err_msg=f"{name} at step {k}"
            )
        assert result.losses_kw[k] == pytest.approx(single.losses_kw[0], rel=1e-9)


def test_the_batch_differs_between_steps(batch: tuple[Injections, PowerFlowResult]) -> None:
    _, result = batch  # guards the test above against comparing a constant
    assert np.ptp(result.v_pu.min(axis=1)) > 1e-3
    assert result.grid_p_kw[:, 0].min() < 0 < result.grid_p_kw[:, 0].max()  # PV noon exports


def test_a_step_that_cannot_converge_is_reported_and_the_others_succeed(
    rural: Scenario, engine: PowerFlow, batch: tuple[Injections, PowerFlowResult]
) -> None:
    injections, good = batch
    load_p = injections.load_p_kw.copy()
    load_p[3, 0] = 1e6  # 1 GW on an LV bus
    result = engine.run(
        Injections(
            load_p,
            injections.load_q_kvar,
            injections.gen_p_kw,
            injections.gen_q_kvar,
            injections.ev_p_kw,
            injections.battery_p_kw,
        )
    )
    assert list(result.failed) == [3]
    assert "converge" in result.failed[3]
    others = np.arange(len(STEPS)) != 3
    for name, values in _float_fields(result).items():
        assert np.isnan(values[3]).all(), name
        np.testing.assert_array_equal(values[others], _float_fields(good)[name][others], err_msg=name)
    assert np.isnan(result.losses_kw[3])
    np.testing.assert_array_equal(result.losses_kw[others], good.losses_kw[others])
    with pytest.raises(NotConverged) as exc:
        result.raise_on_failure()
    assert exc.value.steps == (3,)
    assert good.raise_on_failure() is good


def test_iterative_current_agrees_and_falls_back_to_newton_raphson(
    rural: Scenario, batch: tuple[Injections, PowerFlowResult]
) -> None:
    injections, good = batch
    fast = PowerFlow(rural.network, method="iterative_current")
    np.testing.assert_allclose(fast.run(injections).v_pu, good.v_pu, atol=1e-7)
    load_p = injections.load_p_kw.copy()
    load_p[5, 0] = 1e6
    result = fast.run(
        Injections(
            load_p,
            injections.load_q_kvar,
            injections.gen_p_kw,
            injections.gen_q_kvar,
            injections.ev_p_kw,
            injections.battery_p_kw,
        )
    )
    assert list(result.failed) == [5]
    assert np.isnan(result.v_pu[5]).all()


def test_injections_rows_select_steps(batch: tuple[Injections, PowerFlowResult]) -> None:
    injections, _ = batch
    sub = injections.rows(np.array([1, 4]))
    assert sub.steps == 2
    np.testing.assert_array_equal(sub.gen_p_kw, injections.gen_p_kw[[1, 4]])


def test_base_injections_are_the_network_values(rural: Scenario, engine: PowerFlow) -> None:
    base = engine.base_injections()
    assert base.steps == 1
    np.testing.assert_array_equal(base.load_p_kw[0], [rural.network.loads[i].p_kw for i in engine.index.loads])
    np.testing.assert_array_equal(base.gen_p_kw[0], [rural.network.generators[i].p_kw for i in engine.index.generators])


# --- EV chargers and batteries: load and generator conventions --------------------------------------------------


def test_ev_charging_is_load_and_battery_discharge_is_generation() -> None:
    net = _three_bus(400.0, 600.0).with_elements(
        [
            EvCharger(id="ev", bus="3", p_kw=50.0),
            Battery(id="bess", bus="3", e_kwh=200.0, p_kw=100.0),
        ]
    )
    engine = PowerFlow(net)
    base = engine.base_injections()

    def run(ev_kw: float, battery_kw: float) -> PowerFlowResult:
        return engine.run(
            Injections(
                base.load_p_kw,
                base.load_q_kvar,
                base.gen_p_kw,
                base.gen_q_kvar,
                np.array([[ev_kw]]),
                np.array([[battery_kw]]),
            )
        )

    idle, charging, both = run(0.0, 0.0), run(50.0, 0.0), run(50.0, 50.0)
    v3_by_hand = _by_hand(400.0, 650.0)[1] / (V1_KV * 1e3)
    assert charging.v_pu[0, 2] == pytest.approx(v3_by_hand, abs=EXACT_PU)
    assert charging.grid_p_kw[0, 0] > idle.grid_p_kw[0, 0] + 50.0
    np.testing.assert_allclose(both.v_pu, idle.v_pu, atol=1e-12)  # discharging 50 kW cancels the EV


# --- islands ---------------------------------------------------------------------------------------------------

MVLV = "1-MVLV-rural-1.108-0-sw"
PCC = "LV1.108 Switch 9"


def test_an_islanded_part_is_reported_not_energized(simbench_net: Callable[[str], pp.pandapowerNet]) -> None:
    net = simbench_net(MVLV)
    network = from_pandapower(net, name=MVLV)
    opened = network.with_elements([network.switches[PCC].model_copy(update={"closed": False})])
    result = snapshot(opened)
    assert result.failed == {}
    lv = np.array([network.buses[b].zone == "LV1.108" for b in result.index.buses])
    assert lv.sum() == 14
    assert not result.energized[0, lv].any()
    assert result.energized[0, ~lv].all()
    assert np.isnan(result.v_pu[0, lv]).all()
    assert np.isnan(result.angle_deg[0, lv]).all()
    assert np.isfinite(result.v_pu[0, ~lv]).all()
    # The rest of the grid solves as pandapower does with the same switch open.
    net.switch.loc[net.switch.name == PCC, "closed"] = False
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi")
    vm = net.res_bus.vm_pu.set_axis(net.bus.name).loc[list(result.index.buses)].to_numpy()
    assert np.isnan(vm[lv]).all()
    np.testing.assert_allclose(result.v_pu[0, ~lv], vm[~lv], atol=1e-5)
    closed = snapshot(network)
    assert closed.energized.all()
    assert closed.losses_kw[0] > result.losses_kw[0]  # the LV grid's own losses are gone
