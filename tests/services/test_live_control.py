"""The control cycle live: a stepped field and a centre on one simulated clock, controllers planning on the
centre's live image and the batteries obeying the signed commands they lead to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridmesh.control.controller import Controller, Request, Window
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.security.keys import CentreKeyring, FieldKeyring, provision_keyrings
from gridmesh.services.bus import InProcessBus
from gridmesh.services.centre import ControlCentre
from gridmesh.services.field import FieldSimulator
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.live_control import USER, LiveControl, LiveDecision
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of
from support.live import FieldClock

NOON = datetime(2016, 6, 1, 12)
EVERY_MINUTE = dict.fromkeys(DeviceKind, 60.0)
RATING_KW = 40.0  # bess in the small scenario


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


@pytest.fixture(scope="module")
def keyrings(scenario: Scenario) -> tuple[FieldKeyring, CentreKeyring]:
    return provision_keyrings(catalogue_of(scenario.network).devices)


class Fixed:
    """Asks for one setpoint on every battery (changeable between steps)."""

    def __init__(self, kw: float, name: str = "fixed", priority: int = 50) -> None:
        self.kw, self.name, self.priority = kw, name, priority

    def plan(self, window: Window) -> Request:
        return Request(np.full((window.steps, len(window.batteries)), self.kw))


class Broken:
    name = "broken"
    priority = 90

    def plan(self, window: Window) -> Request:
        raise RuntimeError("no forecast today")


class Rig:
    def __init__(self, scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], folder: Path) -> None:
        self.bus = InProcessBus()
        self.historian = EmbeddedHistorian(folder / "historian.duckdb")
        self.field = FieldSimulator(
            scenario, self.bus, keyrings[0], noise=0.0, periods=EVERY_MINUTE, data_dir=folder, start=NOON
        )
        self.clock = FieldClock(self.field)
        self.centre = ControlCentre(scenario, self.historian, self.bus, keyrings[1], clock=self.clock)
        self.scenario = scenario

    def live(self, *controllers: Controller, horizon_steps: int = 96) -> LiveControl:
        c = self.centre
        return LiveControl(
            self.scenario.network,
            c.sites,
            c.catalogue,
            c.image,
            c.measurements.profiles,
            c.commands,
            self.clock,
            controllers,
            horizon_steps=horizon_steps,
        )

    def step(self, seconds: float = 60.0) -> None:
        """Advance the field; its telemetry and acks reach the centre's image and command records."""
        self.field.step(seconds)
        assert self.bus.drain()

    def tick(self, live: LiveControl) -> LiveDecision | None:
        decision = live.tick(self.clock.now())
        assert self.bus.drain()  # commands reach the field's queue
        return decision

    def to_next_step(self) -> None:
        """Minute by minute to the next quarter hour (a command lives one minute, so it is executed)."""
        now = self.field.now
        target = now - timedelta(minutes=now.minute % 15, seconds=now.second) + timedelta(minutes=15, seconds=30)
        while self.field.now < target:
            self.step(min(60.0, (target - self.field.now).total_seconds()))

    def battery(self, quantity: str) -> float:
        return float(self.centre.image.series(DeviceKind.BATTERY, quantity).value[0])

    def close(self) -> None:
        self.bus.close()
        self.historian.close()


@pytest.fixture
def rig(scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(scenario, keyrings, tmp_path)
    yield rig
    rig.close()


def _site_net_load_kw(rig: Rig, site: str) -> float:
    """Consumption − generation of a microgrid summed straight from its devices' readings (kW)."""
    image, total = rig.centre.image, 0.0
    for kind, sign in ((DeviceKind.METER, 1.0), (DeviceKind.EVSE, 1.0), (DeviceKind.INVERTER, -1.0)):
        series = image.series(kind, "TotW")
        members = {d.id for d in rig.centre.catalogue.of_site(site)}
        total += sign * sum(v for d, v in zip(series.devices, series.value, strict=True) if d in members)
    return total / 1e3


def test_midday_surplus_charges_the_battery_and_the_field_follows(rig: Rig) -> None:
    live = rig.live(SelfConsumption())
    rig.step()
    net_kw = _site_net_load_kw(rig, "mg")
    assert net_kw < -RATING_KW  # a surplus beyond the battery's rating at noon in June
    decision = rig.tick(live)
    assert decision is not None and decision.time == NOON and decision.fallbacks == 0
    assert decision.setpoints_kw == {"bess": pytest.approx(-RATING_KW)}
    (refusal,) = decision.refusals
    assert (refusal.source, refusal.reason) == ("safety", "power rating")
    assert refusal.requested_kw == pytest.approx(net_kw, abs=1e-6)
    (command,) = decision.commands
    assert (command.device, command.value, command.user) == ("battery-bess", -RATING_KW * 1e3, USER)
    rig.step(30)  # executed within its lifetime, acknowledged
    rig.step()  # the battery's next report
    assert rig.centre.commands.record(command.device, command.seq).status == "done"  # type: ignore[union-attr]
    assert rig.battery("TotW") == pytest.approx(-RATING_KW * 1e3)
    assert rig.battery("WSpt") == pytest.approx(-RATING_KW * 1e3)


def test_soc_comes_from_telemetry_and_no_command_repeats_an_unchanged_setpoint(rig: Rig) -> None:
    fixed = Fixed(-20.0)
    live = rig.live(fixed)
    rig.step()
    first = rig.tick(live)
    assert first is not None and len(first.commands) == 1
    assert rig.tick(live) is None  # same step: decided already
    rig.to_next_step()
    second = rig.tick(live)
    assert second is not None and second.time == NOON + timedelta(minutes=15)
    # The model starts the step from the field's SOC and predicts a quarter hour at −20 kW, η = 0.95.
    predicted = rig.battery("SocPct") / 100.0 + 20.0 * 0.25 * 0.95 / 80.0
    assert live.fleet.soc[0] == pytest.approx(predicted, abs=1e-12)
    assert second.setpoints_kw == {"bess": pytest.approx(-20.0)} and second.commands == ()
    fixed.kw = -20.0 + 0.5 * 0.01 * RATING_KW  # within the 1 % deadband
    rig.to_next_step()
    third = rig.tick(live)
    assert third is not None and third.commands == ()
    fixed.kw = -10.0
    rig.to_next_step()
    fourth = rig.tick(live)
    assert fourth is not None and [c.value for c in fourth.commands] == [-10_000.0]


def test_a_setpoint_beyond_rating_is_clamped_before_it_reaches_the_field(rig: Rig) -> None:
    live = rig.live(Fixed(100.0, name="wrong"))
    rig.step()
    decision = rig.tick(live)
    assert decision is not None
    # Discharge limit: rating, unless the SOC window is tighter (50 % → 10 % of 80 kWh is 32 kWh: not here).
    assert decision.setpoints_kw == {"bess": pytest.approx(RATING_KW)}
    (refusal,) = decision.refusals
    assert (refusal.requested_kw, refusal.applied_kw, refusal.reason) == (100.0, RATING_KW, "power rating")
    assert [c.value for c in decision.commands] == [RATING_KW * 1e3]
    rig.step(30)
    rig.step()
    assert rig.battery("TotW") == pytest.approx(RATING_KW * 1e3)
    assert all(abs(r.value) <= RATING_KW * 1e3 for r in rig.centre.commands.recent())


def test_a_failing_controller_is_reported_every_step_while_the_others_act(rig: Rig) -> None:
    live = rig.live(Broken(), Fixed(-15.0))
    rig.step()
    decision = rig.tick(live)
    assert decision is not None
    assert len(decision.failed) == 1 and decision.failed[0].startswith("broken: RuntimeError: no forecast today")
    assert decision.setpoints_kw == {"bess": pytest.approx(-15.0)}
    assert [c.value for c in decision.commands] == [-15_000.0]
    rig.to_next_step()
    again = rig.tick(live)
    assert again is not None and again.failed == decision.failed  # tried again, failed again, reported again


def test_the_window_takes_the_present_from_readings_and_the_future_from_profiles(rig: Rig) -> None:
    live = rig.live(SelfConsumption(), horizon_steps=8)
    profiles = rig.centre.measurements.profiles
    before, fallbacks = live.window(rig.clock.now())  # nothing reported yet: every value from the profiles
    assert fallbacks == len(rig.scenario.network.loads) + len(rig.scenario.network.generators) + 1
    np.testing.assert_allclose(before.load_p_kw[0], profiles.values(NOON).load_p_kw[0])
    assert before.ev_p_kw[0, 0] == 0.0
    rig.step()
    window, fallbacks = live.window(rig.clock.now())
    assert fallbacks == 0 and window.steps == 1 and window.times[0] == NOON
    meters = rig.centre.image.series(DeviceKind.METER, "TotW")
    position = {e: i for i, e in enumerate(rig.scenario.network.loads)}
    for element, watts in zip(meters.elements, meters.value, strict=True):
        assert window.load_p_kw[0, position[element]] == pytest.approx(watts / 1e3)
    assert window.lookahead is not None
    ahead = window.lookahead(100)
    assert ahead.steps == 8  # clipped to the horizon
    np.testing.assert_array_equal(ahead.load_p_kw[0], window.load_p_kw[0])
    for k in (1, 7):
        when = NOON + timedelta(minutes=15 * k)
        assert ahead.times[k] == when
        np.testing.assert_allclose(ahead.load_p_kw[k], profiles.values(when).load_p_kw[0])
        np.testing.assert_allclose(ahead.gen_p_kw[k], profiles.values(when).gen_p_kw[0])
    assert not ahead.ev_p_kw[1:].any()


def test_the_mpc_plans_on_the_live_lookahead(rig: Rig) -> None:
    mpc = ModelPredictiveControl(horizon_steps=8)
    live = rig.live(mpc, horizon_steps=8)
    rig.step()
    decision = rig.tick(live)
    assert decision is not None and decision.failed == ()
    assert mpc.stats.solves == 1 and mpc.stats.not_optimal == 0
    assert -RATING_KW - 1e-6 <= decision.setpoints_kw["bess"] <= RATING_KW + 1e-6


class Curtail:
    """Holds back a fixed amount of the extra PV (asked while ``kw`` is set; nothing once it is None)."""

    name, priority = "curtail", 40

    def __init__(self, kw: float | None) -> None:
        self.kw = kw

    def plan(self, window: Window) -> Request:
        curtail = np.full((window.steps, len(window.network.generators)), np.nan)
        if self.kw is not None:
            curtail[:, list(window.network.generators).index("extra-pv")] = self.kw
        return Request(window.nothing(), curtail_kw=curtail)


def test_curtailment_limits_the_inverter_and_is_released_afterwards(rig: Rig) -> None:
    curtail = Curtail(10.0)
    live = rig.live(curtail)
    rig.step()
    decision = rig.tick(live)
    assert decision is not None and decision.curtailed_kw == {"extra-pv": pytest.approx(10.0)}
    (command,) = decision.commands
    output_kw = float(
        live.window(rig.clock.now())[0].gen_p_kw[0, list(rig.scenario.network.generators).index("extra-pv")]
    )
    assert command.action == "set-power" and command.value == pytest.approx((output_kw - 10.0) * 1e3, rel=0.05)
    rig.to_next_step()
    assert rig.centre.commands.record(command.device, command.seq).status == "done"  # type: ignore[union-attr]
    curtail.kw = None
    released = rig.tick(live)
    assert released is not None and released.curtailed_kw == {}
    assert [c.action for c in released.commands] == ["release"]
    assert [d.time for d in live.recent(5)] == [released.time, decision.time]
