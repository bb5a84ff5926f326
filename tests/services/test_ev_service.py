"""EV charging in the live platform: the centre's OCPP central system with real websocket stations from the
field assembly, meter values in the historian (and /history), sessions, and a smart-charging push that the
station accepts and obeys; the historian sink and the headroom on their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridmesh.adapters.ocpp import EventKind, MeterRow, OcppEvent, PushOutcome, SessionPlan, sessions_from_ev
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.services.bus import InProcessBus
from gridmesh.services.clock import SimClock
from gridmesh.services.dr_service import DrSettings
from gridmesh.services.ev_service import (
    EvService,
    EvSettings,
    HistorianSink,
    start_stations,
    station_power,
    station_sessions,
)
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.platform import Platform, start_centre, start_field, start_field_protocols
from gridmesh.telemetry.catalogue import DeviceKind
from support.brokers import wait_for
from support.live import FieldAndCentre

CAP_KW = 5.0
SPEED = 60.0  # station sessions run 60× the wall clock; one meter sample per wall second


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


class Rig(FieldAndCentre):
    """Field (stepped) and centre on the in-process bus, the EV service in the centre, stations in the field."""

    def __init__(self, scenario: Scenario, folder: Path) -> None:
        super().__init__(scenario, folder, start=datetime(2016, 6, 1, 12), periods=dict.fromkeys(DeviceKind, 60.0))
        self.centre.cycle()
        # 100 kWh cannot fit in 4 h at the 5 kW cap: the plan must give the car the whole cap at every step.
        settings = EvSettings(port=0, ev_cap_kw=CAP_KW, energy_kwh=100.0, dwell_h=4.0, poll_s=0.1)
        self.ev = EvService(
            scenario,
            self.historian,
            folder / "keys",
            clock=self.clock,
            speed=SPEED,
            loading=self.centre.branch_loading,
            settings=settings,
        ).start()
        self.centre.ev = self.ev
        plans = {"ev": [SessionPlan(0.0, 4 * 3600.0, 100.0, "card-1")]}
        self.stations = start_stations(
            scenario, self.ev.url, folder / "keys", speed=SPEED, start=datetime(2016, 6, 1, 12), sessions=plans
        )
        # as the platform wires it: the field's power flow draws what the station charges
        self.field.grid.ev_power = station_power(self.stations, self.field.grid.engine.index.ev_chargers)

    def close(self) -> None:
        self.stations.stop(drain_timeout_s=5)
        self.ev.stop()
        super().close()


@pytest.fixture(scope="module")
def rig(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(scenario, tmp_path_factory.mktemp("ev"))
    yield rig
    rig.close()


def _last_watts(rig: Rig) -> float | None:
    now = datetime.now(UTC)
    series = rig.centre.history("ev", "TotW", now - timedelta(minutes=5), now + timedelta(seconds=5), None)
    return series.value[-1] if series.value else None


def test_a_plan_is_pushed_accepted_and_obeyed(rig: Rig) -> None:
    def planned() -> bool:
        return any(p.sessions == 1 and p.outcomes.get("ev") == "accepted" for p in rig.ev.pushes())

    wait_for(planned, 30, "a smart-charging push for the session, accepted by the station")
    push = next(p for p in rig.ev.pushes() if p.sessions == 1)
    assert push.plan_status == "optimal"
    assert push.limits_kw == {"ev": pytest.approx(CAP_KW)}  # the cap binds: 100 kWh > 5 kW × 4 h
    assert push.count(PushOutcome.ACCEPTED) == 1 and push.wall_s > 0
    assert push.shortfall_kwh == pytest.approx(100.0 - CAP_KW * 4, abs=1.0)  # less what was already charged
    # obeyed: the station's metered power (from the historian, as /api/v1/history shows it) is the cap
    wait_for(lambda: _last_watts(rig) == pytest.approx(CAP_KW * 1e3), 15, "the station to charge at the limit")
    rig.field.step(0.0)  # the grid draws what the station charges: the smart-charging limit reaches the twin
    assert rig.field.last_state is not None and rig.field.last_state.ev_p_kw.tolist() == pytest.approx([CAP_KW])
    (charger,) = rig.centre.ev_chargers()
    assert (charger.connected, charger.version, charger.site) == (True, "2.0.1", "mg")
    assert charger.power_kw == pytest.approx(CAP_KW) and charger.limit_kw == pytest.approx(CAP_KW)
    assert "Occupied" in charger.status
    (pushed, *_) = rig.centre.ev_pushes(5)
    assert pushed.accepted >= 1 and pushed.outcomes["ev"] == "accepted"


def test_meter_values_and_sessions_reach_the_centre(rig: Rig) -> None:
    wait_for(lambda: any(s.open for s in rig.ev.sessions()), 30, "the session to open")
    (session,) = rig.centre.ev_sessions(10)
    assert (session.charger, session.connector, session.requested_kwh, session.open) == ("ev", 1, 100.0, True)
    assert session.departure - session.arrival == timedelta(hours=4)
    now = datetime.now(UTC)
    energy = rig.centre.history("ev", "TotWh", now - timedelta(minutes=5), now + timedelta(seconds=5), None)
    assert energy.unit == "Wh" and len(energy.value) >= 2
    assert np.all(np.diff(energy.value) >= 0)  # a register only grows
    kinds = set(rig.historian.events(limit=1000)["kind"])
    assert {"ocpp.connected", "ocpp.boot", "ocpp.transaction_started"} <= kinds


def test_the_sink_stores_registers_in_wh_and_keeps_connectors_apart(tmp_path: Path) -> None:
    historian = EmbeddedHistorian(tmp_path / "h.duckdb")
    try:
        sink = HistorianSink(historian)
        ts = datetime(2026, 1, 1, 12, tzinfo=UTC)
        sink.meter_values(
            [
                MeterRow("cp", 1, "t1", ts, "Energy.Active.Import.Register", 1.5, "kWh"),
                MeterRow("cp", 2, "t2", ts, "Power.Active.Import", 7.0, "kW"),
                MeterRow("cp", 1, "t1", ts, "Power.Active.Import", 3000.0, "W"),
                MeterRow("cp", 1, "t1", ts, "Current.Import", 16.0, "A", phase="L1"),  # not stored
            ]
        )
        sink.event(OcppEvent(EventKind.STATUS, "cp", ts, {"connector": 1, "status": "Charging"}))
        rows = historian.history(start=ts, end=ts + timedelta(seconds=1), device="cp").sort_values(["quantity", "seq"])
        assert list(zip(rows["quantity"], rows["value"], strict=True)) == [
            ("TotW", 3000.0),
            ("TotW", 7000.0),
            ("TotWh", 1500.0),
        ]
        assert sink.power_kw() == {"cp": pytest.approx(10.0)}  # both connectors
        (event,) = historian.events(kind="ocpp.status")["message"]
        assert event == "cp status: connector 1, status Charging"
    finally:
        historian.close()


def test_headroom_is_the_rating_margin_plus_the_evs_own_draw(scenario: Scenario, tmp_path: Path) -> None:
    historian = EmbeddedHistorian(tmp_path / "h.duckdb")
    try:
        service = EvService(
            scenario,
            historian,
            tmp_path / "keys",
            clock=SimClock(),
            loading=lambda: loading,
            settings=EvSettings(port=0),
        )
        groups = service.groups
        assert groups.names and groups.members.all()  # the one charger sits behind every group
        loading = {name: 0.5 for name in groups.names}
        assert service.headroom_kw() == pytest.approx((0.97 - 0.5) * groups.rating_kva)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        service.sink.meter_values([MeterRow("ev", 1, "t", now, "Power.Active.Import", 4000.0, "W")])
        assert service.headroom_kw() == pytest.approx((0.97 - 0.5) * groups.rating_kva + 4.0)  # its own draw
        loading = {name: 1.2 for name in groups.names}  # overloaded without the EV: nothing left
        service.sink.meter_values([MeterRow("ev", 1, "t", now, "Power.Active.Import", 0.0, "W")])
        assert service.headroom_kw() == pytest.approx(np.zeros(len(groups)))
        loading = {}  # no estimate: no charging allowed beyond what is drawn now (0)
        assert service.headroom_kw() == pytest.approx(np.zeros(len(groups)))
    finally:
        historian.close()


def test_field_sessions_start_at_the_clock_time_of_day(scenario: Scenario) -> None:
    chargers = list(scenario.network.ev_chargers.values())
    noon = station_sessions(chargers, datetime(2016, 6, 1, 12), hours=24)
    drawn = sessions_from_ev(chargers, hours=36)["ev"]
    shift = 12 * 3600.0
    expected = [
        (max(p.arrival_s - shift, 0.0), p.departure_s - shift, p.energy_kwh) for p in drawn if p.departure_s > shift
    ]
    assert [(p.arrival_s, p.departure_s, p.energy_kwh) for p in noon["ev"]] == expected
    assert expected and all(a >= 0 and d > 0 for a, d, _ in expected)


def test_the_platform_assembly_connects_stations_and_vens(scenario: Scenario, tmp_path: Path) -> None:
    """What `gridmesh run` assembles: the centre's central system and VTN, the field's stations and VENs."""
    clock = SimClock(speed=SPEED)
    bus = InProcessBus()
    problems: list[str] = []
    centre, historian = start_centre(
        scenario,
        tmp_path,
        bus,
        clock=clock,
        ev=EvSettings(port=0),
        dr=DrSettings(port=0, poll_s=1.0),
        problems=problems,
    )
    platform = Platform(bus, historian, centre, problems=problems)
    try:
        platform.field, platform.sunspec = start_field(scenario, tmp_path, bus, clock=clock)
        assert centre.ev is not None and centre.dr is not None
        start_field_protocols(platform, scenario, tmp_path, clock=clock, ocpp_url=centre.ev.url, vtn_url=centre.dr.url)
        assert platform.problems == []
        wait_for(lambda: centre.ev_chargers()[0].connected, 20, "the field's charger to connect")
        assert set(centre.dr.vtn.registrations()) == {"mg"}  # the field's VEN registered at start
        wait_for(lambda: bool(centre.ev_pushes(1)), 20, "a first push")
        assert centre.ev_pushes(1)[0].outcomes == {"ev": "accepted"}
        assert (tmp_path / "keys" / "ocpp-passwords.json").exists() and (tmp_path / "keys" / "openadr").is_dir()
    finally:
        platform.stop()
