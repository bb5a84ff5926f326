"""Edge agents in the live platform: ``gridmesh run --edge-agents`` wiring (keys, agents, field, centre), the
centre's side of the link (agent states and verified reports, plan renewal) and its coordination desk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.security.edge_keys import EdgeKeyring, agent_credentials, agent_id
from gridmesh.security.keys import KeyAlgorithm, new_secret
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.clock import SimClock
from gridmesh.services.edge_link import (
    PLAN,
    REPORT,
    STATE,
    AgentMode,
    AgentPlan,
    AgentReport,
    AgentState,
    agent_topic,
    sign_link,
)
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.platform import (
    Platform,
    keyrings,
    provision_agents,
    start_centre,
    start_edge_agents,
    start_field,
)
from support.brokers import wait_for

NS = 1_000_000_000


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


class CentreRig:
    def __init__(self, scenario: Scenario, data: Path) -> None:
        self.rings = provision_agents(scenario, data)
        self.bus = InProcessBus()
        self.historian = EmbeddedHistorian(data / "historian.duckdb")
        _, centre_ring = keyrings(data, scenario)
        self.clock = SimClock(speed=1.0)
        self.centre = ControlCentre(
            scenario, self.historian, self.bus, centre_ring, clock=self.clock, agents=agent_credentials(data / "keys")
        )
        self.plans: list[AgentPlan] = []
        self.bus.subscribe(agent_topic("mg", PLAN), self._plan)

    def _plan(self, batch: list[Message]) -> None:
        self.plans.extend(msgspec.json.decode(m.payload, type=AgentPlan) for m in batch)

    def report(self, ring: EdgeKeyring, seq: int, mode: AgentMode, reason: str) -> None:
        report = AgentReport(
            "mg", seq, self.clock.now_ns(), "mode", mode.value, {"from": "connected", "reason": reason}
        )
        self.bus.publish(agent_topic("mg", REPORT), msgspec.json.encode(sign_link(report, ring.secret)))


@pytest.fixture
def rig(scenario: Scenario, tmp_path: Path) -> Iterator[CentreRig]:
    rig = CentreRig(scenario, tmp_path)
    yield rig
    rig.centre.stop()
    rig.bus.close()
    rig.historian.close()


def test_provisioning_gives_each_microgrid_an_agent_key_the_centre_and_field_know(
    scenario: Scenario, tmp_path: Path
) -> None:
    rings = provision_agents(scenario, tmp_path)
    assert list(rings) == ["mg"]
    public = agent_credentials(tmp_path / "keys")
    assert public["mg"].key == rings["mg"].credential.key
    again = provision_agents(scenario, tmp_path)  # a restart keeps the agent's key
    assert again["mg"].credential.key == rings["mg"].credential.key


def test_the_centre_shows_agent_state_and_stores_verified_reports(rig: CentreRig, scenario: Scenario) -> None:
    since = rig.clock.now_ns() - 60 * NS
    state = AgentState(agent_id("mg"), True, rig.clock.now_ns(), "islanded", "PCC LV1.101 Switch 9 open", since, 0, 7)
    rig.bus.publish(agent_topic("mg", STATE), msgspec.json.encode(state), retain=True)
    ring = rig.rings["mg"]
    rig.report(ring, 8, AgentMode.ISLANDED, "PCC LV1.101 Switch 9 open")
    forged = EdgeKeyring("mg", new_secret(agent_id("mg"), KeyAlgorithm.ED25519), {}, ring.centre_public)
    rig.report(forged, 9, AgentMode.CONNECTED, "")
    assert rig.bus.drain()
    (view,) = rig.centre.microgrids()
    assert (view.site, view.mode, view.agent_online, view.reason) == (
        "mg",
        "islanded",
        True,
        "PCC LV1.101 Switch 9 open",
    )
    assert view.since is not None and int(view.since.timestamp() * NS) == pytest.approx(since, abs=1_000)
    assert rig.centre.agents.rejected == 1  # the forged report
    events = rig.historian.events(kind="agent.mode", limit=10)
    assert len(events) == 1 and events.iloc[0]["severity"] == "warning"
    assert "connected → islanded (PCC LV1.101 Switch 9 open)" in events.iloc[0]["message"]


def test_renewal_repeats_the_schedule_in_force_then_turns_into_a_heartbeat(rig: CentreRig) -> None:
    first = rig.centre.plans.publish("mg", step_s=3600.0, pcc_kw=[10.0, -5.0], lifetime_ns=2 * 3600 * NS)
    rig.centre.renew_plans(rig.clock.now_ns())  # as every centre cycle does
    rig.centre.renew_plans(rig.clock.now_ns())  # within 5 simulated minutes: nothing
    assert rig.bus.drain()
    sent, renewed = rig.plans
    assert sent == first and len(rig.plans) == 2
    assert renewed.seq > first.seq and renewed.pcc_kw == [10.0, -5.0]
    assert (renewed.start, renewed.step_s) == (first.start, 3600.0)
    assert renewed.expires == pytest.approx(first.expires, abs=NS)  # the same end (two clock reads apart)
    rig.centre.plans.latest["mg"] = msgspec.structs.replace(first, expires=rig.clock.now_ns() - 1)
    heartbeat = rig.centre.plans.renew("mg")
    assert heartbeat.pcc_kw == [] and heartbeat.import_price == []  # expired: no opinion any more


def test_a_coordination_run_from_the_centre_reaches_the_agent(rig: CentreRig) -> None:
    view = rig.centre.start_coordination(None, "operator")  # the grid's current day (read from the profiles)
    assert view.day == rig.clock.now().date() and view.requested_by == "operator"
    rig.centre.coordination.wait(120)
    assert rig.bus.drain()
    (run,) = rig.centre.coordination_runs()
    assert run.state == "done", run.error
    assert run.converged and run.iterations == len(run.residuals) >= 1
    assert run.gap is not None and abs(run.gap) < 0.005
    plan = rig.plans[-1]
    assert plan.pcc_kw == pytest.approx(run.pcc_kw["mg"], abs=1e-6) and run.plans_sent == ["mg"]
    assert rig.historian.events(kind="coordination.started", limit=5).iloc[0]["source"] == run.id


@pytest.mark.slow
def test_run_with_edge_agents_the_field_obeys_the_agent(scenario: Scenario, tmp_path: Path) -> None:
    """``gridmesh run --edge-agents`` assembly: the agent hears the centre's heartbeat, connects, and its
    signed set-power commands are executed by the field."""
    clock = SimClock(speed=600.0)  # a 15-minute control step every 1.5 wall seconds
    rings = provision_agents(scenario, tmp_path)
    bus = InProcessBus()
    centre, store = start_centre(scenario, tmp_path, bus, clock=clock, settings=CentreSettings(cycle_s=0.5))
    platform = Platform(bus, store, centre)
    try:
        start_edge_agents(platform, scenario, tmp_path, bus, rings, clock=clock)
        platform.field, _ = start_field(scenario, tmp_path, bus, clock=clock)
        (agent,) = platform.agents
        wait_for(lambda: centre.microgrids()[0].mode == "connected", 60, "the agent to follow the centre")
        agent_store = platform.agent_stores[0]

        def acked() -> bool:
            acks = agent_store.events(kind="command-ack", limit=10)
            return bool(len(acks)) and acks["message"].str.endswith("done").any()

        wait_for(acked, 60, "a command of the agent executed by the field")
        assert agent.commands is not None
    finally:
        platform.stop()
    assert centre.microgrids()[0].agent_online is False  # stopping publishes the agent offline
