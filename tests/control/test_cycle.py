"""The control cycle: arbitration by priority, the safety layer always wins, failures are isolated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.controller import NoControl, Request, Window
from gridmesh.control.cycle import ControlCycle, SafetyLayer, arbitrate
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.model.elements import Bus, ExternalGrid, Generator, Load
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites

NAN = np.nan


def test_highest_priority_setpoint_wins_and_limits_narrow_the_rest() -> None:
    low = Request(np.array([[5.0, 5.0, NAN]]))
    high = Request(np.array([[NAN, 9.0, NAN]]), upper_kw=np.array([[3.0, NAN, NAN]]))
    assert arbitrate([(1, low), (9, high)], (1, 3)) == pytest.approx(np.array([[3.0, 9.0, NAN]]), nan_ok=True)


def test_lower_priority_limit_cannot_contradict_a_higher_one() -> None:
    high = Request(np.array([[NAN]]), lower_kw=np.array([[4.0]]))
    low = Request(np.array([[NAN]]), upper_kw=np.array([[2.0]]))
    # the contradicting upper limit is dropped; a bare lower limit moves an idle battery to it
    assert arbitrate([(1, low), (5, high)], (1, 1))[0, 0] == pytest.approx(4.0)


def window(net: Network, steps: int, load_kw: float = 10.0) -> tuple[Window, BatteryFleet]:
    fleet = BatteryFleet.of(list(net.batteries.values()))
    w = Window(
        net,
        resolve_sites(net),
        pd.date_range("2016-01-01", periods=steps, freq="15min"),
        0.25,
        np.full((steps, 1), load_kw),
        np.zeros((steps, 0)),
        np.zeros((steps, 0)),
        fleet,
    )
    return w, fleet


class Fixed:
    def __init__(self, name: str, priority: int, kw: float) -> None:
        self.name, self.priority, self.kw = name, priority, kw

    def plan(self, window: Window) -> Request:
        return Request(np.full((window.steps, 1), self.kw))


class Broken:
    name, priority = "broken", 99

    def plan(self, window: Window) -> Request:
        raise RuntimeError("sensor map missing")


def test_safety_layer_clamps_rating_and_soc_and_logs_why(microgrid: Network) -> None:
    w, fleet = window(microgrid, steps=12)
    result = ControlCycle([Fixed("greedy", 5, 8.0)]).run(w, fleet)
    # 8 kW asked, 5 kW rating; 4 kWh above soc_min=0.1 (1 kWh) lasts 3.2 steps of 5 kW at 15 min
    assert result.battery_kw[0, 0] == pytest.approx(5.0)
    assert result.soc.min() >= 0.1 - 1e-12
    assert result.battery_kw.sum() * 0.25 == pytest.approx(4.0)
    reasons = set(result.refusals.reason)
    assert reasons == {"power rating", "SOC window"}
    assert result.refusals.reason.iloc[-1] == "SOC window"
    assert (result.refusals.requested_kw == 8.0).all()


def test_conflicting_controllers_cannot_beat_the_safety_limit(microgrid: Network) -> None:
    w, fleet = window(microgrid, steps=4)
    cycle = ControlCycle([Fixed("charge", 1, -50.0), Fixed("discharge", 7, 50.0)])
    result = cycle.run(w, fleet)
    assert np.all(result.battery_kw <= 5.0 + 1e-9)
    assert np.all(result.battery_kw > 0)  # the higher priority won, clamped


def test_pcc_rating_is_a_feeder_limit(microgrid: Network) -> None:
    w, fleet = window(microgrid, steps=2, load_kw=1.0)
    safety = SafetyLayer(pcc_limit_kw={"mg": 2.0})
    result = ControlCycle([Fixed("dump", 5, 5.0)], safety).run(w, fleet)
    # net load 1 kW; exporting more than 2 kW through the PCC is refused: p ≤ 1 + 2
    assert result.battery_kw[:, 0] == pytest.approx([3.0, 3.0])
    assert set(result.refusals.reason) == {"PCC rating"}


def test_ramp_limit(microgrid: Network) -> None:
    w, fleet = window(microgrid, steps=3)
    result = ControlCycle([Fixed("step", 5, 4.0)], SafetyLayer(ramp_kw_per_step=np.array([1.5]))).run(w, fleet)
    assert result.battery_kw[:, 0] == pytest.approx([1.5, 3.0, 4.0])


def test_the_ramp_continues_across_windows(microgrid: Network) -> None:
    """The next window (a study's next days, the next live step) ramps from the power applied last."""
    safety = SafetyLayer(ramp_kw_per_step=np.array([1.5]))
    cycle = ControlCycle([Fixed("step", 5, 4.0)], safety)
    w, fleet = window(microgrid, steps=2)
    assert cycle.run(w, fleet).battery_kw[:, 0] == pytest.approx([1.5, 3.0])
    down = ControlCycle([Fixed("stop", 5, 0.0)], safety)
    assert down.run(w, fleet).battery_kw[:, 0] == pytest.approx([1.5, 0.0])  # from 3.0, not from zero


def test_failing_controller_is_isolated_and_reported(microgrid: Network) -> None:
    w, fleet = window(microgrid, steps=2)
    cycle = ControlCycle([Broken(), Fixed("steady", 1, 2.0)])
    first = cycle.run(w, fleet)
    assert first.failures and "sensor map missing" in first.failures[0]
    assert first.battery_kw[:, 0] == pytest.approx([2.0, 2.0])
    assert "broken" in cycle.isolated
    second = cycle.run(w, fleet)
    assert second.failures == []
    assert "broken" not in second.seconds
    assert "steady" in second.seconds


class Shifter:
    """Asks to curtail and to defer load; the safety layer decides what is possible."""

    name, priority = "shifter", 3

    def __init__(self, curtail_kw: float, flex_kw: float) -> None:
        self.curtail, self.flex = curtail_kw, flex_kw

    def plan(self, window: Window) -> Request:
        flexible = 0 if window.flexible is None else len(window.flexible)
        return Request(
            window.nothing(),
            curtail_kw=np.full((window.steps, len(window.network.generators)), self.curtail),
            flex_kw=np.full((window.steps, flexible), self.flex),
        )


def shifting_window(steps: int) -> tuple[Window, BatteryFleet, FlexibleLoads]:
    net = Network.from_elements(
        [
            Bus(id="a", vn_kv=0.4),
            ExternalGrid(id="eg", bus="a"),
            Load(id="pump", bus="a", p_kw=40, flexible_share=0.5, max_delay_h=1.0),
            Generator(id="pv", bus="a", kind="pv", p_kw=30),
            Generator(id="hydro", bus="a", kind="micro_hydro", p_kw=10, curtailable=False),
        ]
    )
    fleet = BatteryFleet.of([])
    flexible = FlexibleLoads.of(list(net.loads.values()))
    w = Window(
        net,
        resolve_sites(net),
        pd.date_range("2016-01-01", periods=steps, freq="15min"),
        0.25,
        np.full((steps, 1), 40.0),
        np.tile([20.0, 10.0], (steps, 1)),
        np.zeros((steps, 0)),
        fleet,
        flexible=flexible,
    )
    return w, fleet, flexible


def test_curtailment_is_held_to_available_power_and_to_curtailable_generators() -> None:
    w, fleet, flexible = shifting_window(steps=2)
    result = ControlCycle([Shifter(curtail_kw=25.0, flex_kw=NAN)]).run(w, fleet, flexible)
    np.testing.assert_allclose(result.curtail_kw, [[20.0, 0.0], [20.0, 0.0]])
    why = dict(zip(result.refusals.device, result.refusals.reason, strict=False))
    assert why == {"pv": "available power", "hydro": "not curtailable"}


def test_load_shift_stays_in_the_flexibility_window_and_the_backlog_is_kept() -> None:
    w, fleet, flexible = shifting_window(steps=6)
    # 50 % of 40 kW may be deferred; 20 kWh may be owed (0.5 × 40 kW × 1 h): four quarter-hours of 20 kW.
    result = ControlCycle([Shifter(curtail_kw=NAN, flex_kw=30.0)]).run(w, fleet, flexible)
    np.testing.assert_allclose(result.flex_kw[:, 0], [20, 20, 20, 20, 0, 0])
    assert flexible.backlog_kwh[0] == pytest.approx(20.0)
    assert set(result.refusals.reason) == {"flexibility window"}
    # With nobody asking, the pump catches up at its fastest (20 kW) until nothing is owed.
    later = ControlCycle([NoControl()]).run(w, fleet, flexible)
    np.testing.assert_allclose(later.flex_kw[:, 0], [-20, -20, -20, -20, 0, 0])
    assert flexible.backlog_kwh[0] == pytest.approx(0.0)


def test_a_request_of_the_wrong_shape_isolates_its_controller() -> None:
    w, fleet, flexible = shifting_window(steps=2)

    class Wrong(Shifter):
        def plan(self, window: Window) -> Request:
            return Request(window.nothing(), curtail_kw=np.zeros((window.steps, 5)))

    cycle = ControlCycle([Wrong(0.0, 0.0)])
    result = cycle.run(w, fleet, flexible)
    assert "curtail_kw has shape (2, 5), expected (2, 2)" in result.failures[0]
    assert "shifter" in cycle.isolated
