"""An in-memory Centre for the API and dashboard tests: a small drawn grid, a few alarms, a fault with two
FLISR cases (one ready to confirm, one stale), recorded calls.

Shared by ``tests/api`` and ``tests/web`` (imported as ``api.centre_double``; ``tests/`` is on the path
because ``tests/conftest.py`` lives there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from gridmesh.api.ports import (
    AlarmView,
    BranchView,
    BusView,
    CentreError,
    ChargerView,
    CommandRefused,
    CommandView,
    ControlStepView,
    ControlView,
    CoordinationRunView,
    DeadLetterView,
    DeviceView,
    DrEventRequest,
    DrEventView,
    DrResultView,
    EstimatorInfo,
    EventView,
    EvSessionView,
    FaultRequest,
    FaultView,
    FlisrCaseView,
    FlisrStepView,
    Listener,
    MicrogridView,
    NetworkView,
    NotFound,
    Pushed,
    PushView,
    RefusalView,
    ResidualView,
    SeriesView,
    SiteSummary,
    SiteView,
    StateView,
    VenResultView,
    VppDispatchRequest,
    VppDispatchView,
    VppEnvelopeView,
    VppSiteView,
)

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FEEDER_LENGTH = 6


def sample_network() -> NetworkView:
    """A 20 kV substation bus feeding two 0.4 kV microgrids, each a radial feeder of six buses."""
    buses = [BusView(id="MV", x=0.0, y=0.0, vn_kv=20.0, site=None)]
    branches: list[BranchView] = []
    for feeder, y, site in (("A", 1.0, "mg-a"), ("B", -1.0, "mg-b")):
        for i in range(FEEDER_LENGTH):
            buses.append(BusView(id=f"{feeder}{i}", x=1.0 + i, y=y + 0.15 * (i % 2), vn_kv=0.4, site=site))
        branches.append(BranchView(id=f"T-{feeder}", kind="transformer", from_bus="MV", to_bus=f"{feeder}0"))
        for i in range(1, FEEDER_LENGTH):
            branches.append(
                BranchView(id=f"L-{feeder}{i}", kind="line", from_bus=f"{feeder}{i - 1}", to_bus=f"{feeder}{i}")
            )
    sites = [
        SiteView(id="mg-a", name="Hofweiler", level=1, pcc="S-A"),
        SiteView(id="mg-b", name="Lindenhof", level=1, pcc="S-B"),
    ]
    return NetworkView(name="two-feeder test grid", buses=buses, branches=branches, sites=sites)


def sample_state(time: datetime = T0, *, import_a_kw: float = 42.5, substation_p_kw: float = 180.0) -> StateView:
    """Feeder A sags to 0.93 pu (heavy load), feeder B rises to 1.07 pu (PV); bus B3 is unobservable."""
    v: list[float | None] = [1.0]
    v += [1.0 - 0.014 * i for i in range(FEEDER_LENGTH)]
    v += [None if i == 3 else 1.0 + 0.014 * i for i in range(FEEDER_LENGTH)]
    loading: list[float | None] = [64.0, 112.0, 95.0, 70.0, 40.0, 15.0, 55.0, 30.0, 20.0, 12.0, 8.0, 3.0]
    return StateView(
        time=time,
        v_pu=v,
        loading_pct=loading,
        substation_p_kw=substation_p_kw,
        substation_q_kvar=35.0,
        sites=[
            SiteSummary(site="mg-a", import_kw=import_a_kw, soc_pct=63.0, renewable_share_pct=18.0, islanded=False),
            SiteSummary(
                site="mg-b",
                import_kw=-27.0,
                soc_pct=None,
                renewable_share_pct=100.0,
                islanded=True,
                frequency_hz=49.712,
            ),
        ],
        estimator=EstimatorInfo(observable=True, j=12.3, threshold=31.4, suspects=[], cycle_ms=4.2),
    )


def sample_alarms() -> list[AlarmView]:
    return [
        AlarmView(
            id="al-1",
            kind="overload",
            severity="critical",
            source="L-A1",
            message="line L-A1 loaded 112 % (limit 100 %)",
            raised=T0 - timedelta(minutes=5),
            value=112.0,
        ),
        AlarmView(
            id="al-2",
            kind="voltage-low",
            severity="warning",
            source="A5",
            message="bus A5 at 0.930 pu (limit 0.94 pu)",
            raised=T0 - timedelta(minutes=3),
            value=0.93,
        ),
        AlarmView(
            id="al-3",
            kind="stale-device",
            severity="major",
            source="meter-A3",
            message="meter-A3 silent for 45 min (3 reporting periods)",
            raised=T0 - timedelta(minutes=1),
        ),
    ]


def sample_devices() -> list[DeviceView]:
    return [
        DeviceView(
            id="substation-grid",
            kind="substation",
            element="grid",
            bus="MV",
            site="grid",
            online=True,
            last_seen=T0,
            reports=["TotW", "TotVAr", "PhV", "Hz"],
        ),
        DeviceView(
            id="meter-A3",
            kind="meter",
            element="A3",
            bus="A3",
            site="mg-a",
            online=False,
            last_seen=T0 - timedelta(minutes=1),
            reports=["TotW", "TotVAr", "PhV"],
        ),
        DeviceView(
            id="battery-A2",
            kind="battery",
            element="A2",
            bus="A2",
            site="mg-a",
            online=True,
            last_seen=T0,
            controllable=True,
            reports=["TotW", "TotVAr", "PhV", "SocPct", "WSpt"],
        ),
        DeviceView(
            id="inverter-B4",
            kind="inverter",
            element="B4",
            bus="B4",
            site="mg-b",
            online=True,
            last_seen=T0,
            controllable=True,
            reports=["TotW", "TotVAr", "PhV"],
        ),
    ]


STALE_CASE = "fault-0"
READY_CASE = "fault-1"


def sample_faults() -> list[FaultView]:
    """Newest first: a fault on L-A3 (case fault-1) and an older one on L-B2 (case fault-0), since repaired."""
    a3 = FaultView(
        id="F2",
        element="L-A3",
        table="lines",
        fault_type="three-phase",
        permanent=True,
        position=0.5,
        injected=T0 - timedelta(minutes=2),
        injected_by="trainer",
    )
    ago = {"injected": T0 - timedelta(minutes=30), "repaired": T0 - timedelta(minutes=10), "repaired_by": "crew"}
    b2 = a3.model_copy(update={"id": "F1", "element": "L-B2", "fault_type": "line-to-ground", **ago})
    return [a3, b2]


def sample_cases() -> list[FlisrCaseView]:
    """Newest first: a three-step plan awaiting confirmation, the return to normal after F1's repair (one
    switch refused), and an older plan the grid has since outdated."""

    def case(case_id: str, minutes_ago: int, trips: list[str], steps: str) -> FlisrCaseView:
        plan = [FlisrStepView(switch=w, action=a, purpose=p) for w, a, p in (t.split() for t in steps.split(","))]
        opened = T0 - timedelta(minutes=minutes_ago, milliseconds=-200)
        return FlisrCaseView(
            id=case_id,
            kind="fault",
            status="awaiting-confirmation",
            opened=opened,
            trips=trips,
            steps=plan,
            plan_ms=12.5 * len(plan),
            restored_customers=14,
            unrestored_customers=3,
            restored_kw=61.5,
        )

    ready = case(READY_CASE, 2, ["CB-A"], "S-A3 open isolate,S-A4 open isolate,S-AB close restore")
    back = case("rtn-1", 10, [], "S-AB open restore,S-B2 close restore")
    outcomes = ["done", "refused by the device: interlock"]
    steps = [s.model_copy(update={"outcome": o}) for s, o in zip(back.steps, outcomes, strict=True)]
    message = f"S-B2 did not operate: {outcomes[1]}"
    failed = back.model_copy(
        update={"kind": "return-to-normal", "status": "failed", "steps": steps, "message": message}
    )
    none = {"restored_customers": None, "unrestored_customers": None, "restored_kw": None}
    stale = case(STALE_CASE, 30, ["CB-B"], "S-B2 open isolate,S-AB close restore")
    return [
        ready,
        failed.model_copy(update=none),
        stale.model_copy(update={"restored_customers": 9, "restored_kw": 40.2}),
    ]


def sample_chargers() -> list[ChargerView]:
    """One charger charging at its smart-charging limit, one offline."""
    return [
        ChargerView(
            id="cp-A4",
            site="mg-a",
            bus="A4",
            rating_kw=22.0,
            connected=True,
            version="2.0.1",
            status="1 Occupied, 2 Available",
            last_seen=T0,
            power_kw=7.4,
            limit_kw=7.4,
        ),
        ChargerView(
            id="cp-B1",
            site="mg-b",
            bus="B1",
            rating_kw=11.0,
            connected=False,
            version=None,
            status="",
            last_seen=T0 - timedelta(hours=2),
            power_kw=0.0,
            limit_kw=None,
        ),
    ]


def sample_sessions() -> list[EvSessionView]:
    return [
        EvSessionView(
            charger="cp-A4",
            connector=1,
            transaction_id="tx-2",
            arrival=T0 - timedelta(hours=1),
            departure=T0 + timedelta(hours=7),
            requested_kwh=30.0,
            delivered_kwh=6.2,
            open=True,
        ),
        EvSessionView(
            charger="cp-B1",
            connector=1,
            transaction_id="tx-1",
            arrival=T0 - timedelta(hours=5),
            departure=T0 - timedelta(hours=3),
            requested_kwh=12.0,
            delivered_kwh=12.0,
            open=False,
        ),
    ]


def sample_pushes() -> list[PushView]:
    """Newest first: a push the offline charger missed, and an earlier one both stations accepted."""
    return [
        PushView(
            time=T0,
            reason="new step",
            plan_status="optimal",
            plan_ms=3.1,
            sessions=1,
            shortfall_kwh=0.0,
            limits_kw={"cp-A4": 7.4, "cp-B1": 11.0},
            outcomes={"cp-A4": "accepted", "cp-B1": "not_connected"},
            accepted=1,
            rejected=0,
            timeout=0,
            wall_s=0.042,
        ),
        PushView(
            time=T0 - timedelta(minutes=15),
            reason="sessions changed",
            plan_status="optimal",
            plan_ms=2.5,
            sessions=2,
            shortfall_kwh=1.5,
            limits_kw={"cp-A4": 11.0, "cp-B1": 5.0},
            outcomes={"cp-A4": "accepted", "cp-B1": "accepted"},
            accepted=2,
            rejected=0,
            timeout=0,
            wall_s=0.05,
        ),
    ]


DR_SITES = ("mg-a", "mg-b")


def sample_dr_events() -> list[DrEventView]:
    start = T0 - timedelta(hours=2)
    return [
        DrEventView(
            id="peak-1",
            signal="LOAD_DISPATCH",
            start=start,
            end=start + timedelta(hours=1),
            levels={"mg-a": 30.0, "mg-b": 20.0},
            opts={"mg-a": "optIn", "mg-b": "optOut"},
            status="completed",
            requested_kw=50.0,
        ),
    ]


def sample_dr_results() -> list[DrResultView]:
    return [
        DrResultView(
            event_id="peak-1",
            cancelled=False,
            requested_kw=50.0,
            delivered_kwh=27.0,
            opted_in=["mg-a"],
            vens=[
                VenResultView(
                    ven="mg-a",
                    opt="optIn",
                    requested_kw=30.0,
                    delivered_kwh=27.0,
                    mean_reduction_kw=27.0,
                    percent_of_requested=90.0,
                    note="",
                ),
                VenResultView(
                    ven="mg-b",
                    opt="optOut",
                    requested_kw=20.0,
                    delivered_kwh=None,
                    mean_reduction_kw=None,
                    percent_of_requested=None,
                    note="not opted in",
                ),
            ],
        )
    ]


def sample_microgrids() -> list[MicrogridView]:
    """mg-a follows the centre's plan; mg-b is islanded (its PCC opened, as the state says)."""
    return [
        MicrogridView(
            site="mg-a",
            name="Hofweiler",
            agent_online=True,
            mode="connected",
            since=T0 - timedelta(hours=2),
            plan_seq=1042,
            import_kw=42.5,
            islanded=False,
        ),
        MicrogridView(
            site="mg-b",
            name="Lindenhof",
            agent_online=True,
            mode="islanded",
            reason="PCC S-B open",
            since=T0 - timedelta(minutes=20),
            import_kw=-27.0,
            islanded=True,
        ),
    ]


def sample_run(run_id: str = "co-1", state: str = "done") -> CoordinationRunView:
    """Four ADMM rounds converging at the fourth; 1 % above the centralised optimum (101 vs 100 EUR).

    Done, it agrees flat PCC schedules (mg-a imports 40 kW, mg-b exports 10 kW) at prices that peak 17:00-21:00.
    """
    primal, dual = [40.0, 9.0, 2.5, 0.4], [3.0, 1.2, 0.3, 0.05]
    done = state == "done"
    price = [0.12 if 17 <= hour < 21 else 0.05 for hour in range(24)]
    return CoordinationRunView(
        id=run_id,
        state=state,  # type: ignore[arg-type]
        day=T0.date(),
        requested_by="test-operator",
        started=T0 - timedelta(minutes=5),
        finished=T0 - timedelta(minutes=4) if done else None,
        agents=["mg-a", "mg-b"],
        iterations=4 if done else 2,
        residuals=[
            ResidualView(iteration=k + 1, primal=p, dual=d, eps_primal=0.5, eps_dual=0.1, rho=0.2)
            for k, (p, d) in enumerate(zip(primal, dual, strict=True))
        ][: 4 if done else 2],
        converged=done,
        objective_eur=101.0 if done else None,
        centralised_eur=100.0 if done else None,
        gap=0.01 if done else None,
        price_eur_per_kw={"mg-a": price, "mg-b": [p - 0.01 for p in price]} if done else {},
        pcc_kw={"mg-a": [40.0] * 24, "mg-b": [-10.0] * 24} if done else {},
        plans_sent=["mg-a", "mg-b"] if done else [],
    )


DISPATCH_EUR_PER_KWH = 0.12  # the double's flat cost of delivered flexibility


def sample_envelope(day: date) -> VppEnvelopeView:
    """Four hours of a VPP: 120 kW up and 80 kW down, the last hour limited by the storage."""
    return VppEnvelopeView(
        site="vpp-1",
        owner="aggregator",
        day=day,
        dt_h=1.0,
        time=[datetime.combine(day, datetime.min.time(), UTC).replace(hour=h).isoformat() for h in range(4)],
        up_kw=[120.0, 110.0, 100.0, 30.0],
        down_kw=[80.0, 80.0, 60.0, 20.0],
        energy_up_kwh=[120.0, 230.0, 330.0, 360.0],
        energy_down_kwh=[80.0, 160.0, 220.0, 240.0],
        limited_by=["", "", "", "storage"],
        storage={"power_kw": 100.0, "stored_kwh": 200.0},
        seconds=0.8,
    )


def ramp(
    start: datetime, end: datetime, step: timedelta, first: float, slope_per_step: float
) -> tuple[list[datetime], list[float]]:
    """Points ``first + k * slope`` at ``start + k * step`` for every k with the time before ``end``."""
    times: list[datetime] = []
    values: list[float] = []
    t, k = start, 0
    while t < end:
        times.append(t)
        values.append(first + k * slope_per_step)
        t, k = t + step, k + 1
    return times, values


Found = TypeVar("Found", FaultView, FlisrCaseView, DrEventView)


def find(items: list[Found], key: str, what: str, listing: str) -> tuple[int, Found]:
    for i, item in enumerate(items):
        if item.id == key:
            return i, item
    raise NotFound(f"unknown {what} {key!r}", f"list them with {listing}")


@dataclass
class FakeCentre:
    """Implements :class:`gridmesh.api.ports.Centre` in memory and records what the API asked of it."""

    net: NetworkView = field(default_factory=sample_network)
    current: StateView | None = field(default_factory=sample_state)
    alarm_list: list[AlarmView] = field(default_factory=sample_alarms)
    device_list: list[DeviceView] = field(default_factory=sample_devices)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)
    commands: list[tuple[str, str, float, str]] = field(default_factory=list)
    history_calls: list[tuple[str, str, datetime, datetime, timedelta | None]] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    acknowledged_event: threading.Event = field(default_factory=threading.Event)
    fault_list: list[FaultView] = field(default_factory=sample_faults)
    case_list: list[FlisrCaseView] = field(default_factory=sample_cases)
    stale_cases: set[str] = field(default_factory=lambda: {STALE_CASE})
    injected: list[tuple[FaultRequest, str]] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)
    confirmed: list[tuple[str, str]] = field(default_factory=list)
    charger_list: list[ChargerView] = field(default_factory=sample_chargers)
    session_list: list[EvSessionView] = field(default_factory=sample_sessions)
    push_list: list[PushView] = field(default_factory=sample_pushes)
    dr_event_list: list[DrEventView] = field(default_factory=sample_dr_events)
    dr_result_list: list[DrResultView] = field(default_factory=sample_dr_results)
    dr_actions: list[tuple[str, str, str]] = field(default_factory=list)  # (action, event id, user)
    microgrid_list: list[MicrogridView] = field(default_factory=sample_microgrids)
    run_list: list[CoordinationRunView] = field(default_factory=lambda: [sample_run()])
    coordination_requests: list[tuple[date | None, str]] = field(default_factory=list)
    envelope_requests: list[tuple[str, date | None]] = field(default_factory=list)
    dispatches: list[tuple[str, str]] = field(default_factory=list)
    awards: list[tuple[VppDispatchRequest, str]] = field(default_factory=list)  # (posted award, user)

    def network(self) -> NetworkView:
        return self.net

    def devices(self, site: str | None, kind: str | None) -> list[DeviceView]:
        return [d for d in self.device_list if site in (None, d.site) and kind in (None, d.kind)]

    def state(self) -> StateView | None:
        return self.current

    def history(
        self, device: str, quantity: str, start: datetime, end: datetime, every: timedelta | None
    ) -> SeriesView:
        if device not in {d.id for d in self.device_list}:
            raise NotFound(f"no device {device!r}", "list the devices with GET /api/v1/devices")
        self.history_calls.append((device, quantity, start, end, every))
        times, values = ramp(start, end, every or timedelta(minutes=1), 1000.0, 10.0)
        if every is None:
            return SeriesView(device=device, quantity=quantity, unit="W", every_s=None, t=times, value=values)
        return SeriesView(
            device=device,
            quantity=quantity,
            unit="W",
            every_s=every.total_seconds(),
            t=times,
            value=values,
            min=[v - 50.0 for v in values],
            max=[v + 50.0 for v in values],
        )

    def substation_history(self, start: datetime, end: datetime, every: timedelta) -> SeriesView:
        times, values = ramp(start, end, every, 150.0, 0.5)
        return SeriesView(
            device="substation-grid",
            quantity="TotW",
            unit="kW",
            every_s=every.total_seconds(),
            t=times,
            value=values,
            min=values,
            max=values,
        )

    def alarms(self, active_only: bool) -> list[AlarmView]:
        return [a for a in self.alarm_list if a.active or not active_only]

    def acknowledge(self, alarm_id: str, user: str) -> AlarmView:
        for i, alarm in enumerate(self.alarm_list):
            if alarm.id == alarm_id:
                done = alarm.model_copy(update={"acknowledged_by": user, "acknowledged_at": T0})
                self.alarm_list[i] = done
                self.acknowledged.append((alarm_id, user))
                self.acknowledged_event.set()
                return done
        raise NotFound(f"no alarm {alarm_id!r}", "list the alarms with GET /api/v1/alarms")

    def events(self, since: datetime | None, kind: str | None, limit: int) -> list[EventView]:
        events = [
            EventView(
                ts=T0 - timedelta(minutes=5),
                kind="alarm-raised",
                source="L-A1",
                message="overload",
                severity="critical",
            ),
            EventView(ts=T0 - timedelta(minutes=1), kind="device-offline", source="meter-A3", message="last will"),
        ]
        return [e for e in events if (since is None or e.ts >= since) and kind in (None, e.kind)][:limit]

    def counters(self) -> dict[str, int]:
        return {"accepted": 123456, "duplicates": 17, "rejected.bad-signature": 3, "rejected.out-of-range": 1}

    def dead_letters(self, limit: int, reason: str | None) -> list[DeadLetterView]:
        letter = DeadLetterView(
            received=T0,
            topic="gridmesh/v1/mg-a/meter-A1/telemetry",
            reason="bad-signature",
            detail="signature does not verify",
            size=312,
            device="meter-A1",
        )
        return [letter][:limit] if reason in (None, letter.reason) else []

    def command(self, device: str, action: str, value: float, user: str) -> CommandView:
        spec = next((d for d in self.device_list if d.id == device), None)
        if spec is None:
            raise NotFound(f"no device {device!r}", "list the devices with GET /api/v1/devices")
        if not spec.controllable:
            raise CommandRefused(
                f"{device} is not controllable", "send commands to batteries, inverters, EVSE, switches"
            )
        self.commands.append((device, action, value, user))
        return CommandView(
            device=device, seq=len(self.commands), action=action, value=value, issued_by=user, issued_at=T0
        )

    def inject_fault(self, request: FaultRequest, user: str) -> FaultView:
        lines = {b.id for b in self.net.branches if b.kind == "line"}
        if request.element not in (lines if request.table == "lines" else {b.id for b in self.net.buses}):
            raise NotFound(f"no {request.table[:-1]} {request.element!r}", "list them with GET /api/v1/network")
        if request.position is not None and request.table != "lines":
            raise CentreError(
                f"position {request.position} is not a fraction 0…1 along a line", "omit it for a bus fault"
            )
        self.injected.append((request, user))
        fault = FaultView(
            id=f"F{len(self.fault_list) + 1}",
            element=request.element,
            table=request.table,
            fault_type=request.fault_type,
            permanent=request.permanent,
            position=request.position,
            injected=T0,
            injected_by=user,
        )
        self.fault_list.insert(0, fault)
        return fault

    def repair_fault(self, fault_id: str, user: str) -> FaultView:
        i, fault = find(self.fault_list, fault_id, "fault", "GET /api/v1/faults")
        if fault.repaired is not None:
            raise CentreError(f"fault {fault_id} was already repaired", "nothing to do")
        self.repaired.append((fault_id, user))
        self.fault_list[i] = fault.model_copy(update={"repaired": T0, "repaired_by": user})
        return self.fault_list[i]

    def faults(self) -> list[FaultView]:
        return list(self.fault_list)

    def flisr_cases(self) -> list[FlisrCaseView]:
        return list(self.case_list)

    def flisr_case(self, case_id: str) -> FlisrCaseView:
        return find(self.case_list, case_id, "FLISR case", "GET /api/v1/flisr")[1]

    def confirm_flisr(self, case_id: str, user: str) -> FlisrCaseView:
        """Like the real service: refuse unless awaiting, refuse a stale plan, else start executing."""
        i, case = find(self.case_list, case_id, "FLISR case", "GET /api/v1/flisr")
        if case.status != "awaiting-confirmation":
            raise CommandRefused(f"case {case_id} is {case.status}, not awaiting confirmation")
        if case_id in self.stale_cases:
            raise CommandRefused(
                "stale plan: switch S-AB is now closed; the plan assumed otherwise",
                "plan again from the present grid state",
            )
        self.confirmed.append((case_id, user))
        self.case_list[i] = case.model_copy(update={"status": "executing"})
        return self.case_list[i]

    def finish(self, case_id: str) -> None:
        """What the centre's worker does when every step of an executing case has operated."""
        i, case = find(self.case_list, case_id, "FLISR case", "GET /api/v1/flisr")
        steps = [s.model_copy(update={"outcome": "done"}) for s in case.steps]
        self.case_list[i] = case.model_copy(update={"status": "done", "steps": steps})

    def control(self, limit: int) -> ControlView:
        """Two quarter-hours of an MPC: the battery charging, then a PV inverter curtailed and a clamp."""
        steps = [
            ControlStepView(
                time=T0 - timedelta(minutes=15 * k),
                setpoints_kw={"bat-A2": -20.0 + 5 * k},
                curtailed_kw={"pv-B4": 3.5} if k == 0 else {},
                commands=2 - k,
                refusals=[
                    RefusalView(
                        device="bat-A2", requested_kw=-30.0, applied_kw=-20.0, reason="SOC window", source="safety"
                    )
                ]
                if k == 0
                else [],
                cycle_ms=42.0,
                failed=[],
                fallbacks=0,
            )
            for k in range(2)
        ]
        return ControlView(
            enabled=True, controllers=["mpc", "self-consumption"], step_minutes=15.0, steps=steps[:limit]
        )

    def ev_chargers(self) -> list[ChargerView]:
        return list(self.charger_list)

    def ev_sessions(self, limit: int) -> list[EvSessionView]:
        return self.session_list[:limit]

    def ev_pushes(self, limit: int) -> list[PushView]:
        return self.push_list[:limit]

    def dr_events(self) -> list[DrEventView]:
        return list(self.dr_event_list)

    def dr_results(self) -> list[DrResultView]:
        return list(self.dr_result_list)

    def create_dr_event(self, request: DrEventRequest, user: str) -> DrEventView:
        """Like the VTN: refuse a start in the past (wall clock), unknown sites, no level; else schedule."""
        event_id = f"dr-{len(self.dr_event_list) + 1}"
        levels = dict(request.levels) or (
            dict.fromkeys(request.sites, request.level) if request.sites and request.level is not None else {}
        )
        if not levels:
            raise CommandRefused("no sites and level given", "give `levels` per site, or `sites` and `level`")
        unknown = sorted(set(levels) - set(DR_SITES))
        if unknown:
            raise CommandRefused(f"event {event_id}: vens: unknown VEN {unknown[0]}", "use a microgrid id")
        if request.start <= datetime.now(UTC):
            raise CommandRefused(f"event {event_id}: start: starts in the past", "give a start in the future")
        end = request.start + timedelta(minutes=request.duration_minutes)
        event = DrEventView(
            id=event_id,
            signal=request.signal,
            start=request.start,
            end=end,
            levels=levels,
            opts=dict.fromkeys(levels, "pending"),
            status="scheduled",
            requested_kw=sum(levels.values()) if request.signal == "LOAD_DISPATCH" else None,
        )
        self.dr_event_list.append(event)
        self.dr_actions.append(("create", event_id, user))
        return event

    def cancel_dr_event(self, event_id: str, user: str) -> DrEventView:
        i, event = find(self.dr_event_list, event_id, "DR event", "GET /api/v1/dr/events")
        if event.status in ("cancelled", "completed"):
            raise CommandRefused(f"event {event_id}: already {event.status}", "nothing to do")
        self.dr_event_list[i] = event.model_copy(update={"status": "cancelled"})
        self.dr_actions.append(("cancel", event_id, user))
        return self.dr_event_list[i]

    def microgrids(self) -> list[MicrogridView]:
        return list(self.microgrid_list)

    def coordination_runs(self) -> list[CoordinationRunView]:
        return list(self.run_list)

    def start_coordination(self, day: date | None, user: str) -> CoordinationRunView:
        if any(r.state == "running" for r in self.run_list):
            raise CommandRefused("a coordination run is in progress", "wait for it to finish, then ask again")
        self.coordination_requests.append((day, user))
        run = sample_run(f"co-{len(self.run_list) + 1}", "running").model_copy(
            update={"day": day or T0.date(), "requested_by": user}
        )
        self.run_list.insert(0, run)
        return run

    def vpp_sites(self) -> list[VppSiteView]:
        return [VppSiteView(id="vpp-1", name="Valley VPP", members=["mg-a", "mg-b"])]

    def vpp_envelope(self, site: str, day: date | None) -> VppEnvelopeView:
        if site != "vpp-1":
            raise NotFound(f"unknown VPP {site!r}", "list the VPPs with GET /api/v1/vpp")
        self.envelope_requests.append((site, day))
        return sample_envelope(day or T0.date())

    def vpp_dispatch(self, site: str, request: VppDispatchRequest, user: str) -> VppDispatchView:
        """Like the centre: unknown VPP 404, one value per interval or 400; delivery = the clipped award."""
        envelope = self.vpp_envelope(site, request.day)
        if len(request.award_kw) != len(envelope.time):
            raise CentreError(f"award_kw must be {len(envelope.time)} finite values", "one value per interval")
        target = [
            max(-d, min(u, a)) for a, u, d in zip(request.award_kw, envelope.up_kw, envelope.down_kw, strict=True)
        ]
        self.dispatches.append((site, user))
        self.awards.append((request, user))
        shortfall = [a - t for a, t in zip(request.award_kw, target, strict=True)]
        # the target has the award's sign and at most its size, so all of it counts as delivered
        awarded_kwh = sum(abs(a) for a in request.award_kw) * envelope.dt_h
        delivered_kwh = sum(abs(t) for t in target) * envelope.dt_h
        return VppDispatchView(
            site=site,
            day=envelope.day,
            time=envelope.time,
            award_kw=request.award_kw,
            target_kw=target,
            delivered_kw=target,
            shortfall_kw=shortfall,
            reason=["above up capability" if a > t else "" for a, t in zip(request.award_kw, target, strict=True)],
            summary={
                "awarded_kwh": awarded_kwh,
                "clipped_kwh": sum(abs(x) for x in shortfall) * envelope.dt_h,
                "clipped_intervals": sum(x != 0 for x in shortfall),
                "delivered_share": delivered_kwh / awarded_kwh if awarded_kwh > 0 else 1.0,
                "mae_vs_target_kw": 0.0,
                "cost_eur": DISPATCH_EUR_PER_KWH * delivered_kwh,
            },
        )

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def push(self, message: Pushed) -> None:
        """What the centre's threads do on every new state or alarm change."""
        if isinstance(message, StateView):
            self.current = message
        for listener in list(self.listeners):
            listener(message)
