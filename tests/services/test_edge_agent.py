"""The edge agent on a stepped field simulator: its own telemetry in, its own signed commands out; following
the centre's plan, falling back without it, islanding when the PCC opens; and over a real broker that
stops and restarts, every report delivered in order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from gridmesh.adapters.mqtt.bus import MqttBus
from gridmesh.control.controller import Controller
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.errors import CommandRefused
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.security.edge_keys import EdgeKeyring, agent_credentials, provision_edge_keys
from gridmesh.security.keys import CENTRE_FILE, FIELD_FILE, CentreKeyring, FieldKeyring, provision_keyrings
from gridmesh.security.signing import sign
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.centre_views import utc
from gridmesh.services.edge_agent import EdgeAgent, EdgeSettings
from gridmesh.services.edge_link import REPORT, AgentMode, AgentReport, AgentStates, PlanPublisher, agent_topic
from gridmesh.services.field import FieldSimulator
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of, device_id
from gridmesh.telemetry.envelope import Ack, Command, encode, topic
from support.brokers import PrivateBroker, wait_for
from support.live import FieldClock

NOON = datetime(2016, 6, 1, 12)
NIGHT = datetime(2016, 6, 1, 22)  # no PV: an island's deficit is all load
EVERY_MINUTE = dict.fromkeys(DeviceKind, 60.0)
RATING_KW = 40.0
PCC = "LV1.101 Switch 9"
EDGE_MICROGRID = """
name: edge-microgrid
base: {simbench: 1-LV-rural1--0-sw}
profiles: {simbench: 1-LV-rural1--0-sw}
time: {start: 2016-06-01, days: 2}
elements:
  generators:
    - {id: extra-pv, bus: LV1.101 Bus 7, kind: pv, p_kw: 60, profile: PV5}
  batteries:
    - {id: bess, bus: LV1.101 Bus 4, e_kwh: 80, p_kw: 40, eta_charge: 0.95, eta_discharge: 0.93,
       grid_forming: true, soc_init: 0.2}
  loads:
    - {id: clinic, bus: LV1.101 Bus 5, p_kw: 20, critical: true, p_profile: H0-A_pload}
  ev_chargers:
    - {id: ev, bus: LV1.101 Bus 12, p_kw: 11, connectors: 2}
  sites:
    - {id: mg, pcc: LV1.101 Switch 9, owner: coop}
"""
SECOND_SITE = """
    - {id: mg2, pcc: LV1.101 Switch 22, owner: other, buses: [LV1.101 Bus 11]}
"""
FAST = EdgeSettings(horizon_steps=8)


def _provision(scenario: Scenario, folder: Path, sites: list[str]) -> Path:
    catalogue = catalogue_of(scenario.network)
    field_ring, centre_ring = provision_keyrings(catalogue.devices)
    field_ring.save(folder / FIELD_FILE)
    centre_ring.save(folder / CENTRE_FILE)
    provision_edge_keys(folder, catalogue, sites)
    return folder


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("edge") / "edge.yaml"
    path.write_text(EDGE_MICROGRID)
    return read_scenario(path)


@pytest.fixture(scope="module")
def keys(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _provision(scenario, tmp_path_factory.mktemp("keys"), ["mg"])


class EdgeRig:
    """A stepped field, the edge agent of ``mg`` on the same in-process bus, and the centre's plan publisher."""

    def __init__(self, scenario: Scenario, keys: Path, folder: Path, start: datetime) -> None:
        self.bus = InProcessBus()
        field_ring = FieldKeyring.load(keys / FIELD_FILE)
        self.field = FieldSimulator(
            scenario, self.bus, field_ring, noise=0.0, periods=EVERY_MINUTE, data_dir=folder, start=start
        )
        # The field trusts each site's agent for that site's devices (platform wiring: see docs/edge.md).
        self.field._desk.agents = agent_credentials(keys)
        self.clock = FieldClock(self.field)
        self.historian = EmbeddedHistorian(folder / "edge.duckdb")
        self.scenario, self.keys = scenario, keys
        self.centre_ring = CentreKeyring.load(keys / CENTRE_FILE)
        self.plans = PlanPublisher(self.bus, self.centre_ring.command_secret, clock=self.clock.now_ns)
        self.reports: list[AgentReport] = []
        self.centre_view = AgentStates(agent_credentials(keys), on_report=self.reports.append)
        self.bus.subscribe("gridmesh/v1/+/agent/report", self.centre_view.handle_reports)
        self.bus.subscribe("gridmesh/v1/+/agent/state", self.centre_view.handle_state)
        self.acks: list[Ack] = []
        self.bus.subscribe("gridmesh/v1/+/+/ack", self._acks)

    def _acks(self, batch: list[Message]) -> None:
        self.acks += [msgspec.json.decode(m.payload, type=Ack) for m in batch]

    def agent(self, *controllers: Controller, site: str = "mg") -> EdgeAgent:
        ring = EdgeKeyring.load(self.keys / f"edge-{site}-keys.json")
        chosen = list(controllers) or None
        return EdgeAgent(self.scenario, site, self.bus, ring, self.clock, self.historian, chosen, settings=FAST)

    def step(self, seconds: float = 60.0) -> None:
        self.field.step(seconds)
        assert self.bus.drain()

    def cycle(self, agent: EdgeAgent) -> None:
        agent.cycle()
        assert self.bus.drain()

    def to_next_step(self) -> None:
        """Minute by minute to the next quarter hour (a command lives one minute, so it is executed)."""
        now = self.field.now
        target = now - timedelta(minutes=now.minute % 15, seconds=now.second) + timedelta(minutes=15, seconds=30)
        while self.field.now < target:
            self.step(min(60.0, (target - self.field.now).total_seconds()))

    def reading(self, device: str, quantity: str, agent: EdgeAgent) -> float:
        """The latest ``quantity`` of ``device`` in the agent's live image."""
        series = agent.image.series(agent.catalogue.devices[device].kind, quantity)
        return float(series.value[series.devices.index(device)])

    def close(self) -> None:
        self.bus.close()
        self.historian.close()


@pytest.fixture
def noon(scenario: Scenario, keys: Path, tmp_path: Path) -> Iterator[EdgeRig]:
    rig = EdgeRig(scenario, keys, tmp_path, NOON)
    yield rig
    rig.close()


def _net_load_kw(agent: EdgeAgent) -> float:
    """Consumption − generation of the site straight from its devices' readings (kW)."""
    total = 0.0
    for kind, sign_ in ((DeviceKind.METER, 1.0), (DeviceKind.EVSE, 1.0), (DeviceKind.INVERTER, -1.0)):
        total += sign_ * float(np.nansum(agent.image.series(kind, "TotW").value))
    return total / 1e3


def test_the_agent_charges_its_battery_from_its_own_telemetry_with_its_own_key(noon: EdgeRig) -> None:
    agent = noon.agent(SelfConsumption())
    assert set(agent.catalogue.devices) == {d.id for d in catalogue_of(noon.scenario.network).of_site("mg")}
    noon.step()
    assert agent.ingest.counters.snapshot()["rejected"] == 0
    net_kw = _net_load_kw(agent)
    assert net_kw < -RATING_KW  # a surplus beyond the battery's rating at noon in June
    noon.cycle(agent)
    assert agent.mode is AgentMode.FALLBACK and agent.reason == "no plan from the centre yet"
    decision = agent.live.last
    assert decision is not None and decision.setpoints_kw == {"bess": pytest.approx(-RATING_KW)}
    (command,) = decision.commands
    assert (command.device, command.value) == ("battery-bess", -RATING_KW * 1e3)
    noon.step(30)
    noon.step()
    # Only the agent commanded: the field verified its signature with the agent's key of site mg.
    assert agent.commands.record(command.device, command.seq).status == "done"  # type: ignore[union-attr]
    assert noon.reading("battery-bess", "TotW", agent) == pytest.approx(-RATING_KW * 1e3)
    kinds = [r.kind for r in noon.reports]
    assert kinds == ["mode", "step"] and noon.reports[1].values["bess"] == pytest.approx(-RATING_KW)
    assert noon.centre_view.rejected == 0
    assert noon.centre_view.states()["mg"].mode == "fallback"


def test_the_default_mpc_plans_on_the_site_alone(noon: EdgeRig) -> None:
    agent = noon.agent()
    noon.step()
    noon.cycle(agent)
    decision = agent.live.last
    assert decision is not None and decision.failed == () and decision.fallbacks == 0
    assert list(decision.setpoints_kw) == ["bess"]  # the site's battery, nothing beyond the PCC
    assert -RATING_KW - 1e-6 <= decision.setpoints_kw["bess"] <= RATING_KW + 1e-6


def test_a_centre_plan_holds_the_pcc_and_its_prices_replace_the_tariff(noon: EdgeRig) -> None:
    agent = noon.agent(SelfConsumption())
    noon.step()
    net_kw = _net_load_kw(agent)
    target_kw = net_kw + 15.0  # export 15 kW less than the surplus: the battery must charge 15 kW
    start = noon.clock.now_ns() - 60 * 10**9  # the schedule's first step covers the present
    prices = [0.5, 0.1, 0.1, 0.1]
    plan = noon.plans.publish(
        "mg", start_ns=start, pcc_kw=[target_kw] * 4, import_price=prices, export_price=[0.05] * 4
    )
    noon.bus.drain()
    noon.cycle(agent)
    assert agent.mode is AgentMode.CONNECTED
    decision = agent.live.last
    assert decision is not None
    # import = net load − battery discharge ⇒ battery = net load − target = −15 kW (charging)
    assert decision.setpoints_kw["bess"] == pytest.approx(net_kw - target_kw, abs=1e-6)
    window, _ = agent.live.window(noon.clock.now())
    np.testing.assert_allclose(window.tariff.import_price(window.times), prices[:1])
    np.testing.assert_allclose(window.tariff.export_price(window.times), [0.05])
    noon.step(30)
    noon.step()
    # The PCC (the transformer at its HV terminal) now carries the schedule, up to losses of the LV grid.
    monitor = device_id(DeviceKind.TRANSFORMER_MONITOR, "MV1.101-LV1.101-Trafo 1")
    pcc_kw = noon.reading(monitor, "TotW", agent) / 1e3
    assert pcc_kw == pytest.approx(target_kw, abs=3.0)
    assert noon.centre_view.states()["mg"].plan_seq == plan.seq


def test_an_expired_plan_falls_back_with_an_event_and_a_new_one_resyncs(noon: EdgeRig) -> None:
    agent = noon.agent(SelfConsumption())
    noon.step()
    noon.plans.publish("mg", pcc_kw=[-20.0] * 4, lifetime_ns=20 * 60 * 10**9)
    noon.bus.drain()
    noon.cycle(agent)
    assert agent.mode is AgentMode.CONNECTED
    noon.to_next_step()
    noon.to_next_step()  # 30 min later: the plan lived 20
    noon.cycle(agent)
    assert agent.mode is AgentMode.FALLBACK and agent.reason.endswith("expired")
    fallback = [r for r in noon.reports if r.kind == "mode" and r.mode == "fallback"]
    assert fallback[-1].detail["reason"] == agent.reason and fallback[-1].detail["from"] == "connected"
    state = noon.centre_view.states()["mg"]
    assert (state.mode, state.reason, state.plan_seq) == ("fallback", agent.reason, 0)
    noon.to_next_step()
    noon.cycle(agent)  # still in fallback: a local step
    noon.plans.publish("mg")  # a heartbeat, within the same control step: no step report follows
    noon.bus.drain()
    noon.cycle(agent)
    assert agent.mode is AgentMode.CONNECTED
    resync = [r for r in noon.reports if r.kind == "resync"]
    assert len(resync) == 1 and resync[0].detail["steps"] == 2
    seqs = [r.seq for r in noon.reports]
    # Reported while in fallback: from its mode report to the last local step, just before the resync.
    assert resync[0].detail["first_seq"] == fallback[-1].seq and resync[0].detail["last_seq"] == seqs[-3]
    assert [r.kind for r in noon.reports[-3:]] == ["step", "resync", "mode"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_forged_plan_is_ignored_with_the_reason_logged(noon: EdgeRig, caplog: pytest.LogCaptureFixture) -> None:
    agent = noon.agent(SelfConsumption())
    forger = PlanPublisher(noon.bus, EdgeKeyring.load(noon.keys / "edge-mg-keys.json").secret, clock=noon.clock.now_ns)
    with caplog.at_level(logging.WARNING, logger="gridmesh.services.edge_agent"):
        forger.publish("mg", pcc_kw=[100.0])
        noon.bus.drain()
    assert len(agent.rejected_plans) == 1 and "bad signature" in agent.rejected_plans[0]
    assert "bad signature" in caplog.text
    noon.step()
    noon.cycle(agent)
    assert agent.mode is AgentMode.FALLBACK


def test_an_open_pcc_islands_the_site_and_keeps_the_critical_load(
    scenario: Scenario, keys: Path, tmp_path: Path
) -> None:
    rig = EdgeRig(scenario, keys, tmp_path, NIGHT)
    try:
        agent = rig.agent(SelfConsumption())
        rig.step()
        rig.cycle(agent)
        assert agent.mode is AgentMode.FALLBACK
        rig.field.grid.set_switch(PCC, False)  # the PCC breaker opens
        rig.step()
        assert rig.reading("switch-LV1.101_Switch_9", "Pos", agent) == 1.0
        rig.to_next_step()
        rig.cycle(agent)
        assert agent.mode is AgentMode.ISLANDED and agent.reason == f"PCC {PCC} open"
        window, _ = agent.live.window(rig.clock.now())
        island = agent.island.plan(window)
        loads = list(agent.network.loads)
        clinic_kw = float(window.load_p_kw[0, loads.index("clinic")])
        assert window.gen_p_kw[0].sum() == 0.0  # night
        # The field's battery has held the island since the PCC opened (from SOC 0.2): what is left above the
        # 0.1 floor is less than the clinic needs over the reserve horizon, so every other consumer is shed
        # (EV first) and the clinic is served by the battery alone.
        soc = float(window.batteries.soc[0])
        assert 0.1 < soc < 0.2
        ahead = window.lookahead(agent.island.reserve_steps)
        assert ahead.load_p_kw[:, loads.index("clinic")].sum() * ahead.dt_h > (soc - 0.1) * 80.0
        assert set(island.shed) == {*loads, "ev"} - {"clinic"} and island.shed[0] == "ev"
        assert island.critical_served_kw == pytest.approx(clinic_kw) and clinic_kw > 0
        assert island.battery_kw == pytest.approx(clinic_kw)
        step = [r for r in rig.reports if r.kind == "step"][-1]
        assert step.mode == "islanded" and step.values["bess"] == pytest.approx(clinic_kw)
        assert "clinic" not in str(step.detail["shed"]).split(",")
        rig.step(30)
        orders = {a.device: a for a in rig.acks if a.ok}
        shed_loads = set(loads) - {"clinic"}
        meters = {x: d.id for x, d in agent.catalogue.by_element(DeviceKind.METER).items()}
        assert {"battery-bess", "evse-ev", *(meters[x] for x in shed_loads)} <= set(orders)
        assert meters["clinic"] not in orders
        # The shed loads' supply relays are open: in the field's power flow only the clinic still draws.
        state = rig.field.last_state
        assert state is not None
        drawn = dict(zip(rig.field.grid.engine.index.loads, state.load_p_kw.tolist(), strict=True))
        assert all(drawn[x] == 0.0 for x in shed_loads) and drawn["clinic"] > 0
        assert rig.centre_view.states()["mg"].mode == "islanded"
        # Their meters read zero now, yet the next step still counts their demand: they stay shed.
        rig.to_next_step()
        rig.cycle(agent)
        again = [r for r in rig.reports if r.kind == "step"][-1]
        assert set(str(again.detail["shed"]).split(",")) == set(island.shed)
        assert float(again.detail["shed_kw"]) > 0
        rig.field.grid.set_switch(PCC, True)
        rig.to_next_step()
        rig.cycle(agent)
        assert agent.mode is AgentMode.FALLBACK
        rig.step(30)  # back on the grid: the relays the agent opened are closed again
        closed = {a.device for a in rig.acks[len(orders) :] if a.ok}
        assert {meters[x] for x in shed_loads} <= closed
        assert bool(rig.field.grid.load_supplied.all())
    finally:
        rig.close()


def test_the_field_refuses_a_command_from_another_sites_agent(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(EDGE_MICROGRID + SECOND_SITE)
    two = read_scenario(path)
    keys = _provision(two, tmp_path / "keys", ["mg", "mg2"])
    rig = EdgeRig(two, keys, tmp_path, NOON)
    try:
        other = EdgeKeyring.load(keys / "edge-mg2-keys.json")
        own = EdgeKeyring.load(keys / "edge-mg-keys.json")
        now = rig.clock.now_ns()
        expires = now + 60 * 10**9
        for seq, (ring, issuer) in enumerate(((other, "agent-mg2"), (other, "centre"), (own, "agent-mg")), 1):
            command = Command("battery-bess", seq, now, "set-power", -5000.0, expires, issuer)
            rig.bus.publish(topic("mg", "battery-bess", "command"), encode(sign(command, ring.secret)))
        rig.bus.drain()
        rig.step()
        answers = {a.command_seq: a for a in rig.acks if a.device == "battery-bess"}
        refused = "bad signature: agent-mg2 is not the agent of site mg"
        assert not answers[1].ok and answers[1].reason.startswith(refused)
        assert not answers[2].ok and answers[2].reason == "bad signature"
        assert answers[3].ok
        # Nor can an agent address another site's device: its command service knows only its own.
        agent = rig.agent(SelfConsumption(), site="mg2")
        with pytest.raises(CommandRefused, match="unknown device"):
            agent.commands.send("battery-bess", "set-power", -5000.0, user="test")
    finally:
        rig.close()


class ManualClock:
    """Simulated time moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.ns = int(pd.Timestamp(start).value)

    def now_ns(self) -> int:
        return self.ns

    def now(self) -> datetime:
        return utc(self.ns)


def test_reports_published_while_the_broker_is_down_all_arrive_in_order(
    scenario: Scenario, keys: Path, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    received: list[AgentReport] = []
    centre = MqttBus(private_broker.url, client_id="edge-test-centre")
    centre_view = AgentStates(agent_credentials(keys), on_report=received.append)
    centre.subscribe(agent_topic("mg", REPORT), centre_view.handle_reports)
    assert centre.ready(10)
    clock = ManualClock(NOON)
    bus = MqttBus(private_broker.url, client_id="edge-test-agent", buffer_path=tmp_path / "outbox.sqlite")
    historian = EmbeddedHistorian(tmp_path / "edge.duckdb")
    ring = EdgeKeyring.load(keys / "edge-mg-keys.json")
    controllers = [SelfConsumption()]
    agent = EdgeAgent(
        scenario, "mg", bus, ring, clock, historian, controllers, settings=FAST, link=lambda: bus.connected
    )
    try:
        assert bus.ready(10)
        quarter = 15 * 60 * 10**9
        for _ in range(2):
            agent.cycle()
            clock.ns += quarter
        private_broker.stop()
        wait_for(lambda: not bus.connected, 10, "the agent to notice the broker is gone")
        for _ in range(3):
            agent.cycle()  # fallback: reported while nobody can hear it
            clock.ns += quarter
        assert agent.reason == "connection to the broker lost"
        private_broker.start()
        wait_for(lambda: bus.connected, 30, "the agent to reconnect")
        agent.cycle()
        last = agent.report_seq
        wait_for(lambda: any(r.seq == last for r in received), 30, "the latest report at the centre")
        # At least once: a report in flight when the broker stopped may come twice; none may be missing.
        seqs = list(dict.fromkeys(r.seq for r in received))
        assert seqs == list(range(seqs[0], last + 1)) and centre_view.rejected == 0
        kinds = [(r.kind, r.detail.get("reason", "")) for r in {r.seq: r for r in received}.values()]
        assert ("mode", "connection to the broker lost") in kinds
        assert sum(k == "step" for k, _ in kinds) == 6
    finally:
        agent.stop()
        bus.close()
        centre.close()
        historian.close()
