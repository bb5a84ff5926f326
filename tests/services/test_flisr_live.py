"""Self-healing end to end on the in-process bus: a permanent fault in the field twin → protection locks
out → the centre locates, isolates and restores through ties by signed commands → repair → normal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from gridmesh.api.ports import FaultRequest
from gridmesh.errors import CentreError, NotFound
from gridmesh.model.scenario import Scenario
from gridmesh.security.keys import provision_keyrings
from gridmesh.services.bus import InProcessBus
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.field import GATEWAY, FieldSimulator
from gridmesh.services.flisr_service import FlisrMode
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of
from support.flisr_feeder import two_feeders
from support.live import FieldClock


class Live:
    """Field and centre sharing the simulated clock; the field is stepped, the centre's threads run."""

    def __init__(self, folder: Path, mode: FlisrMode) -> None:
        scenario = Scenario("two-feeders", two_feeders())
        field_ring, centre_ring = provision_keyrings([*catalogue_of(scenario.network).devices, GATEWAY])
        self.bus = InProcessBus()
        self.historian = EmbeddedHistorian(folder / "historian.duckdb")
        periods = dict.fromkeys(DeviceKind, 60.0)
        self.field = FieldSimulator(
            scenario, self.bus, field_ring, noise=0.0, periods=periods, start=datetime(2016, 1, 5, 18), data_dir=folder
        )

        settings = CentreSettings(flisr=mode)
        self.centre = ControlCentre(
            scenario, self.historian, self.bus, centre_ring, clock=FieldClock(self.field), settings=settings
        )
        self.centre.flisr.settle_s = 0.05
        self.network = scenario.network

    def run_until(self, done: Callable[[], bool], *, seconds: float = 1.0, limit: int = 400) -> None:
        """Step the field ``seconds`` at a time (commands execute at each tick) until ``done``."""
        for _ in range(limit):
            self.field.step(seconds)
            assert self.bus.drain()
            if done():
                return
            time.sleep(0.01)  # the FLISR worker thread sends the next command meanwhile
        pytest.fail("the condition never became true")

    def closed(self, switch: str) -> bool:
        return self.field.grid.is_closed(switch)

    def close(self) -> None:
        self.centre.stop()
        self.bus.close()
        self.historian.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    rig = Live(tmp_path, FlisrMode.AUTOMATIC)
    rig.run_until(lambda: True, seconds=60)
    yield rig
    rig.close()


def test_a_permanent_fault_is_isolated_and_the_healthy_sections_restored(live: Live) -> None:
    fault = live.centre.inject_fault(FaultRequest(element="lA4", table="lines"), "engineer")
    live.run_until(lambda: any(c.status == "done" for c in live.centre.flisr_cases()))
    (case,) = live.centre.flisr_cases()
    assert case.kind == "fault" and case.trips == ["rA"]
    steps = {(s.switch, s.action) for s in case.steps}
    assert {("sA2", "open"), ("sA4", "open"), ("sA7", "open"), ("rA", "close")} <= steps
    assert {("tie1", "close"), ("tie2", "close")} <= steps  # a5/a6 via b3, the clinic at a7 via b2
    assert all(s.outcome == "done" for s in case.steps)
    # In the field: the faulted section is dead, everything else is supplied and nothing tripped again.
    grid = live.field.grid
    energized = dict(zip(grid.engine.index.buses, grid.energized_bus.tolist(), strict=True))
    assert not energized["a3"] and not energized["a4"]
    assert all(energized[b] for b in ("a1", "a2", "a5", "a6", "a7", "b1", "b2", "b3", "b4"))
    assert [e for e in live.field.faults.locked_out] == []  # the isolated fault no longer holds rA locked
    # Every step is an event in the historian: the case can be replayed.
    logged = live.centre.events(since=None, kind="flisr", limit=100)
    assert {"opened", "planned", "step", "done"} <= {e.data["what"] for e in logged if e.data}
    assert case.plan_ms > 0

    live.centre.repair_fault(fault.id, "engineer")
    live.run_until(lambda: any(c.kind == "return-to-normal" and c.status == "done" for c in live.centre.flisr_cases()))
    assert [c.status for c in live.centre.flisr_cases()] == ["done", "done"]
    assert not live.closed("tie1") and not live.closed("tie2")
    assert all(live.closed(s) for s in ("rA", "sA2", "sA4", "sA7"))


def test_an_operator_confirms_and_a_stale_plan_is_refused(tmp_path: Path) -> None:
    live = Live(tmp_path, FlisrMode.CONFIRM)
    try:
        live.run_until(lambda: True, seconds=60)
        live.centre.inject_fault(FaultRequest(element="lA4", table="lines"), "engineer")
        live.run_until(lambda: any(c.status == "awaiting-confirmation" for c in live.centre.flisr_cases()))
        (case,) = live.centre.flisr_cases()
        assert not live.closed("tie1")  # nothing is executed before the confirmation
        live.centre.command("switch-tie1", "close", 0.0, "someone-else")  # the grid changes meanwhile
        live.run_until(lambda: live.closed("tie1"))
        with pytest.raises(CentreError, match="stale plan"):
            live.centre.confirm_flisr(case.id, "operator")
        assert live.centre.flisr_case(case.id).status == "awaiting-confirmation"
    finally:
        live.close()


def test_bad_fault_orders_are_refused_with_the_reason(live: Live) -> None:
    with pytest.raises(NotFound, match="no line 'nowhere'"):
        live.centre.inject_fault(FaultRequest(element="nowhere", table="lines"), "engineer")
    with pytest.raises(NotFound):
        live.centre.flisr_case("no-such-case")
    with pytest.raises(NotFound):
        live.centre.repair_fault("F0", "engineer")


def test_stopping_the_centre_waits_for_the_case_it_is_executing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    rig = Live(tmp_path, FlisrMode.AUTOMATIC)
    rig.run_until(lambda: True, seconds=60)
    rig.centre.inject_fault(FaultRequest(element="lA4", table="lines"), "engineer")
    rig.run_until(lambda: any(c.status == "executing" for c in rig.centre.flisr_cases()))
    rig.close()  # the centre stops while the case's worker waits for an acknowledgement, then the historian closes
    assert [t.name for t in threading.enumerate() if t.name.startswith("flisr:")] == []
    time.sleep(0.1)
    assert failures == []  # nothing tried to log into the closed historian
