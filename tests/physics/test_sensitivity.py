"""Linearised sensitivities against the full power flow on a SimBench LV grid."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from gridmesh.model.elements import Battery
from gridmesh.model.io.simbench import from_simbench
from gridmesh.model.network import Network
from gridmesh.physics.powerflow import Injections, PowerFlow, PowerFlowResult
from gridmesh.physics.sensitivity import Sensitivity, voltage_sensitivity

GRID = "1-LV-rural1--0-sw"
BATTERY_BUS = "LV1.101 Bus 7"
V_TOL_PU = 2e-4  # linearisation error allowed for a 30 kW change (the change itself is 3–5e-3 pu)


@pytest.fixture(scope="module")
def network() -> Network:
    base = from_simbench(GRID).network
    return base.with_elements([Battery(id="bess", bus=BATTERY_BUS, e_kwh=100, p_kw=50)])


@pytest.fixture(scope="module")
def engine(network: Network) -> PowerFlow:
    return PowerFlow(network)


def three_steps(engine: PowerFlow) -> Injections:
    """The grid's own values at low, mid and high load with full, half and no PV."""
    one = engine.base_injections()
    load, gen = np.array([[0.5], [1.0], [1.5]]), np.array([[1.0], [0.5], [0.0]])
    return Injections(
        load_p_kw=one.load_p_kw * load,
        load_q_kvar=one.load_q_kvar * load,
        gen_p_kw=one.gen_p_kw * gen,
        gen_q_kvar=one.gen_q_kvar * gen,
        ev_p_kw=np.repeat(one.ev_p_kw, 3, axis=0),
        battery_p_kw=np.repeat(one.battery_p_kw, 3, axis=0),
    )


def shifted(inj: Injections, step: int, k: int, delta_kw: float, batteries: int) -> Injections:
    """Step ``step`` alone, with injection ``k`` (batteries first, then generators) raised by ``delta_kw``."""
    one = inj.rows(np.array([step]))
    bat, gen = one.battery_p_kw.copy(), one.gen_p_kw.copy()
    if k < batteries:
        bat[0, k] += delta_kw
    else:
        gen[0, k - batteries] += delta_kw
    return Injections(one.load_p_kw, one.load_q_kvar, gen, one.gen_q_kvar, one.ev_p_kw, bat)


def test_base_is_the_power_flow_of_every_step_in_one_batch(network: Network, engine: PowerFlow) -> None:
    inj = three_steps(engine)
    calls: list[int] = []

    class Counting(PowerFlow):
        def run(self, injections: Injections) -> PowerFlowResult:
            calls.append(injections.steps)
            return super().run(injections)

    counting = Counting(network)
    buses = list(range(len(engine.index.buses)))
    sens = voltage_sensitivity(counting, network, inj, buses=buses, lines=[0, 2])
    n_inputs = len(engine.index.batteries) + len(engine.index.generators)
    assert calls == [3 + 1 + n_inputs]  # steps, operating point, one perturbed copy per injection
    expected = engine.run(inj)
    np.testing.assert_allclose(sens.base[:, : len(buses)], expected.v_pu, atol=1e-12)
    np.testing.assert_allclose(sens.base[:, len(buses) :], expected.line_p_from_kw[:, [0, 2]], atol=1e-9)
    assert sens.d_dp.shape == (len(buses) + 2, n_inputs)
    assert sens.names[0] == "v LV1.101 Bus 1" and sens.names[-1] == "p LV1.101 Line 3"


@pytest.mark.parametrize("delta_kw", [30.0, -30.0])
def test_predicted_voltages_match_the_power_flow(network: Network, engine: PowerFlow, delta_kw: float) -> None:
    inj = three_steps(engine)
    buses = list(range(len(engine.index.buses) - 1))  # the LV buses (the last one is the MV slack)
    sens = voltage_sensitivity(engine, network, inj, buses=buses, at_step=1)
    nb = len(engine.index.batteries)
    for k in range(sens.inputs):
        change = np.zeros((3, sens.inputs))
        change[1, k] = delta_kw
        predicted = sens.predict(change)[1]
        actual = engine.run(shifted(inj, 1, k, delta_kw, nb)).v_pu[0, buses]
        before = sens.base[1]
        assert np.abs(actual - before).max() > 2e-3, "the change must be visible for the test to mean anything"
        np.testing.assert_allclose(predicted, actual, atol=V_TOL_PU, err_msg=f"injection {k}")
        assert np.sign(actual - before).tolist() == [np.sign(delta_kw)] * len(buses)


def test_predicted_line_flows_match_the_power_flow(network: Network, engine: PowerFlow) -> None:
    inj = three_steps(engine)
    lines = list(range(len(engine.index.lines)))
    sens = voltage_sensitivity(engine, network, inj, buses=[], lines=lines, at_step=2)
    change = np.zeros((3, sens.inputs))
    change[2, 0] = 30.0  # the battery discharges 30 kW more at step 2, the operating point
    predicted = sens.predict(change)[2]
    actual = engine.run(shifted(inj, 2, 0, 30.0, 1)).line_p_from_kw[0]
    np.testing.assert_allclose(predicted, actual, atol=0.05)  # kW
    assert np.abs(actual - sens.base[2]).max() > 25.0
    rating = np.sqrt(3) * 0.4 * 270.0  # 0.4 kV, 270 A cables
    np.testing.assert_allclose(sens.upper, rating, rtol=1e-9)
    np.testing.assert_allclose(sens.lower, -rating, rtol=1e-9)


def test_loadings_can_be_monitored_instead(network: Network, engine: PowerFlow) -> None:
    inj = three_steps(engine)
    sens = voltage_sensitivity(engine, network, inj, buses=[], lines=[6], line_quantity="loading", max_loading=0.8)
    np.testing.assert_allclose(sens.base[:, 0], engine.run(inj).line_loading[:, 6])
    assert sens.names == ("loading LV1.101 Line 7",)
    assert sens.upper.tolist() == [0.8] and sens.lower.tolist() == [-np.inf]


def test_voltage_limits_come_from_the_buses(network: Network, engine: PowerFlow) -> None:
    bus = network.buses[BATTERY_BUS]
    tighter = network.with_elements([bus.model_copy(update={"v_min_pu": 0.95, "v_max_pu": 1.04})])
    position = engine.index.buses.index(BATTERY_BUS)
    sens = voltage_sensitivity(engine, tighter, three_steps(engine), buses=[0, position])
    assert sens.lower.tolist() == [0.9, 0.95]
    assert sens.upper.tolist() == [1.1, 1.04]


def test_bad_requests_raise_value_errors(network: Network, engine: PowerFlow) -> None:
    inj = three_steps(engine)
    with pytest.raises(ValueError, match=re.escape("buses must be positions in [0, 15)")):
        voltage_sensitivity(engine, network, inj, buses=[15])
    with pytest.raises(ValueError, match="delta_kw must be positive"):
        voltage_sensitivity(engine, network, inj, buses=[0], delta_kw=0.0)
    with pytest.raises(ValueError, match=re.escape("at_step must lie in [0, 3)")):
        voltage_sensitivity(engine, network, inj, buses=[0], at_step=3)


def test_sensitivity_checks_its_shapes() -> None:
    good = Sensitivity(np.ones((4, 2)), np.zeros((2, 3)), np.zeros(2), np.ones(2), ("a", "b"))
    assert (good.steps, good.size, good.inputs) == (4, 2, 3)
    np.testing.assert_allclose(good.predict(np.ones((4, 3))), np.ones((4, 2)))
    with pytest.raises(ValueError, match=re.escape("d_dp must have shape (2, inputs)")):
        replace(good, d_dp=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=re.escape("upper must have shape (2,)")):
        replace(good, upper=np.ones(3))
    with pytest.raises(ValueError, match="lower and upper must not be NaN"):
        replace(good, lower=np.array([np.nan, 0.0]))
