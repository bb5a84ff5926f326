"""The centre's coordination desk: day-ahead ADMM with progress, plans to the agents, VPP envelopes."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import msgspec
import pytest

from gridmesh.errors import CommandRefused
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.security.keys import provision_keyrings
from gridmesh.services import coordination_desk
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.coordination_desk import CoordinationDesk
from gridmesh.services.edge_link import AgentPlan, PlanPublisher
from gridmesh.telemetry.catalogue import catalogue_of
from support.brokers import wait_for

DAY = date(2016, 6, 1)


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


def test_a_day_ahead_run_reaches_the_centralised_optimum_and_sends_the_plans(scenario: Scenario) -> None:
    _, centre = provision_keyrings(catalogue_of(scenario.network).devices)
    bus = InProcessBus()
    plans: list[Message] = []
    bus.subscribe("gridmesh/v1/+/agent/plan", plans.extend)
    desk = CoordinationDesk(scenario, publisher=PlanPublisher(bus, centre.command_secret))
    run = desk.start(DAY, "operator")
    desk.wait(120)
    assert bus.drain()
    assert run.state == "done", run.error
    assert run.converged and run.agents == ("mg",)
    assert run.gap is not None and abs(run.gap) < 0.005
    assert len(run.rounds) >= 1 and run.rounds[-1].converged
    assert len(run.pcc_kw["mg"]) == 24  # hourly day-ahead schedule
    (message,) = plans
    plan = msgspec.json.decode(message.payload, type=AgentPlan)
    assert message.topic == "gridmesh/v1/mg/agent/plan"
    assert plan.pcc_kw == pytest.approx(run.pcc_kw["mg"], abs=1e-6)
    assert plan.step_s == 3600.0
    assert desk.runs() == [run]
    bus.close()


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Runs are held before their first round until the returned event is set."""
    released = threading.Event()
    real = coordination_desk.day_case

    def held(s: Scenario, day: date) -> coordination_desk.CoordinationCase:
        released.wait(30)
        return real(s, day)

    monkeypatch.setattr(coordination_desk, "day_case", held)
    return released


def test_a_second_run_is_refused_while_one_is_in_progress(scenario: Scenario, release: threading.Event) -> None:
    desk = CoordinationDesk(scenario)
    desk.start(DAY, "operator")
    with pytest.raises(CommandRefused, match="in progress"):
        desk.start(DAY, "operator")
    release.set()
    desk.wait(120)
    assert desk.runs()[0].state == "done"


def test_stopping_ends_a_run_in_progress_and_refuses_new_ones(scenario: Scenario, release: threading.Event) -> None:
    desk = CoordinationDesk(scenario)
    run = desk.start(DAY, "operator")
    stopper = threading.Thread(target=desk.stop)
    stopper.start()

    def refused_for_stopping() -> bool:  # while the run is held, a new one is refused either way
        try:
            desk.start(DAY, "operator")
        except CommandRefused as refused:
            return "stopping" in str(refused)
        return False

    wait_for(refused_for_stopping, 10, "the desk to refuse new runs")
    release.set()
    stopper.join(60)
    assert not stopper.is_alive()
    assert (run.state, run.error) == ("failed", "the centre stopped before the run finished")


def test_the_vpp_envelope_and_an_award_delivered_through_the_twin(scenario: Scenario) -> None:
    desk = CoordinationDesk(scenario)
    assert desk.vpp_sites() == ["vpp"]
    envelope = desk.envelope(None, DAY)
    intervals = envelope["intervals"]
    assert envelope["site"] == "vpp" and len(intervals["time"]) == 96
    assert min(intervals["down_kw"]) >= 0.0
    # the small VPP: the microgrid's battery and a curtailable PV. Ask for half of its down capability at noon
    # and for more than it can give up in the last interval of the day.
    award = [0.0] * 96
    noon = range(48, 52)
    for t in noon:
        award[t] = -0.5 * intervals["down_kw"][t]
    award[95] = intervals["up_kw"][95] + 10.0
    delivery = desk.dispatch("vpp", DAY, award)
    assert delivery["intervals"]["target_kw"][95] == pytest.approx(intervals["up_kw"][95], abs=1e-3)
    assert delivery["intervals"]["reason"][95] != ""  # clipped, with the reason
    for t in noon:  # delivered, as the full power flow measures it at the VPP's connection
        assert delivery["intervals"]["delivered_kw"][t] == pytest.approx(award[t], rel=0.05, abs=0.05)
    assert delivery["summary"]["clipped_intervals"] >= 1
    with pytest.raises(ValueError, match="96 finite values"):
        desk.dispatch("vpp", DAY, [0.0] * 95)


def test_a_live_day_is_read_from_the_same_date_of_the_profiles_year(scenario: Scenario) -> None:
    desk = CoordinationDesk(scenario)
    typical = desk.start(DAY, "operator")
    desk.wait(120)
    live = desk.start(date(2026, 6, 1), "operator")
    desk.wait(120)
    assert live.state == "done", live.error
    assert live.day == date(2026, 6, 1)
    assert live.pcc_kw["mg"] == pytest.approx(typical.pcc_kw["mg"], abs=1e-6)
