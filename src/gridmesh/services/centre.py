"""The control centre: ingest → historian, live image → state estimation → alarms → API and dashboard.

Threads: the bus delivers telemetry batches to the ingest (which commits to the historian before the
batch is acknowledged) and hands accepted readings to the live image; one estimator thread runs the
cycle every ``cycle_s`` wall seconds: measurements from the image (pseudo-measurements from profiles for
what is missing), weighted-least-squares state estimation, alarms on the *estimated* state, and a push of
state and alarm changes to API listeners (the WebSocket hub). Switch positions reported by the field
change the topology the estimator uses. The platform may attach an EV service (OCPP central system and
smart charging, :mod:`~gridmesh.services.ev_service`) and a DR service (OpenADR VTN,
:mod:`~gridmesh.services.dr_service`); the centre serves their views and stops them with itself.

Microgrid edge agents (:mod:`~gridmesh.services.edge_agent`, in this process with ``gridmesh run
--edge-agents`` or elsewhere with ``gridmesh edge``) are followed on ``gridmesh/v1/+/agent/state`` and
``…/report`` (verified reports become events); every :data:`HEARTBEAT` of simulated time each agent site
is sent its plan again (the day-ahead schedule while it lasts, else a heartbeat) so that a silent centre
is told apart from a quiet one. The coordination desk (:mod:`~gridmesh.services.coordination_desk`) runs
day-ahead ADMM on request and sends the schedules through the same publisher.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import msgspec
import numpy as np

from gridmesh.api.ports import (
    AlarmView,
    ChargerView,
    CommandView,
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
    Listener,
    MicrogridView,
    NetworkView,
    Pushed,
    PushView,
    SeriesView,
    StateView,
    VppDispatchRequest,
    VppDispatchView,
    VppEnvelopeView,
    VppSiteView,
)
from gridmesh.control.controller import Controller
from gridmesh.errors import CentreError, CommandRefused, NotFound, NotReady, ProfileError
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites
from gridmesh.physics.estimation import Estimate, StateEstimator
from gridmesh.security.edge_keys import agent_id
from gridmesh.security.keys import CentreKeyring, DeviceCredential
from gridmesh.services.alarms import AlarmChange, AlarmEngine, AlarmSettings, ObservedState
from gridmesh.services.bus import Bus, Message
from gridmesh.services.centre_views import (
    alarm_view,
    case_view,
    control_view,
    dead_letter_views,
    event_views,
    fault_view,
    network_view,
    rounded,
    run_view,
    utc,
)
from gridmesh.services.clock import Clock, SimClock
from gridmesh.services.commands import CommandRecord, CommandService
from gridmesh.services.coordination_desk import CoordinationDesk
from gridmesh.services.dr_service import DrService, event_view, result_view
from gridmesh.services.edge_link import (
    REPORT,
    STATE,
    AgentMode,
    AgentReport,
    AgentStates,
    PlanPublisher,
    agent_topic,
)
from gridmesh.services.ev_service import EvService, charger_views, push_view, session_view
from gridmesh.services.fault_desk import FaultDesk
from gridmesh.services.field import DEFAULT_PERIODS, GATEWAY
from gridmesh.services.flisr_service import FlisrMode, FlisrService
from gridmesh.services.historian.base import Historian, ReadingRows, StoredEvent
from gridmesh.services.historian.retention import RetentionPolicy, RetentionSchedule
from gridmesh.services.ingest import Ingest
from gridmesh.services.live_control import LiveControl
from gridmesh.services.live_feed import LiveFeed
from gridmesh.services.live_image import LiveImage
from gridmesh.services.measurements import TelemetryMeasurements
from gridmesh.services.site_summary import SiteSummaries
from gridmesh.services.switch_states import SwitchStates
from gridmesh.sim.profiles_at import ProfilesAt
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of
from gridmesh.telemetry.envelope import Event, Presence
from gridmesh.telemetry.quantities import QUANTITIES
from gridmesh.units import W_PER_KW

log = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000
SWITCH_OPENED = frozenset({"trip", "lockout"})
SWITCH_CLOSED = frozenset({"reclose", "reclose-success"})
SUBSCRIPTIONS = ("gridmesh/v1/+/+/telemetry", "gridmesh/v1/+/+/event")
HEARTBEAT = timedelta(minutes=5)  # simulated time between the plans (or heartbeats) sent to each agent site


@dataclass(frozen=True)
class CentreSettings:
    cycle_s: float = 5.0
    flisr: FlisrMode = FlisrMode.AUTOMATIC
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    retention: RetentionPolicy | None = field(default_factory=lambda: RetentionPolicy(keep=timedelta(days=90)))


class ControlCentre:
    """Implements the API's :class:`~gridmesh.api.ports.Centre` over the live services."""

    def __init__(
        self,
        scenario: Scenario,
        historian: Historian,
        bus: Bus,
        keyring: CentreKeyring,
        *,
        clock: Clock | None = None,
        settings: CentreSettings | None = None,
        controllers: Sequence[Controller] = (),
        agents: Mapping[str, DeviceCredential] | None = None,
    ) -> None:
        """``agents``: microgrid → its edge agent's public key (``edge-public.json``); reports of others
        are rejected."""
        self.scenario, self.historian, self.bus = scenario, historian, bus
        self.net = scenario.network
        self.clock: Clock = clock or SimClock()
        self.settings = settings or CentreSettings()
        self.catalogue = catalogue_of(self.net)
        self.sites = resolve_sites(self.net)
        self.image = LiveImage(self.catalogue)
        self._network_view = network_view(self.net, self.sites)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        # Last gasps group into one outage per sub-network (a SimBench zone is one LV feeder area).
        area = {b.id: b.zone or b.id for b in self.net.buses.values()}
        self.alarm_engine = AlarmEngine(self.settings.alarms, on_change=self._alarm_changes, outage_area=area)
        self.alarm_engine.restore(self._stored_alarm_events())
        self.ingest = Ingest(
            self.catalogue, keyring, historian, clock=self.clock.now_ns, on_accept=self._accepted, on_event=self._event
        )
        self.commands = CommandService(
            self.net,
            self.catalogue,
            keyring,
            bus,
            clock=self.clock.now_ns,
            on_event=historian.write_events,
            on_done=self._command_done,
        )
        profiles = ProfilesAt(self.net, scenario.profiles)
        self.measurements = TelemetryMeasurements(self.net, profiles, DEFAULT_PERIODS)
        self.switches = SwitchStates(self.net)
        self._summaries = SiteSummaries(self.net, self.sites, self.image, self.switches.closed)
        self._estimator_version = 0
        # The study's control cycle, live: controllers plan every 15 simulated minutes on the live image.
        self.live_control = (
            LiveControl(
                self.net, self.sites, self.catalogue, self.image, profiles, self.commands, self.clock, controllers
            )
            if controllers
            else None
        )
        self.fault_desk = FaultDesk(self.net, keyring, bus, clock=self.clock.now_ns, on_event=historian.write_events)
        self.flisr = FlisrService(
            self.net,
            self.catalogue,
            self.commands,
            present=self.switches.network,
            indications=self._indications,
            loads_kw=self._loads_now,
            clock=self.clock.now_ns,
            on_event=historian.write_events,
            mode=self.settings.flisr,
        )
        self._estimator = StateEstimator(self.net)
        self._periods = {d.id: DEFAULT_PERIODS[d.kind] for d in self.catalogue.devices.values()}
        self._retention = RetentionSchedule(self.settings.retention) if self.settings.retention else None
        self._state: StateView | None = None
        self._estimate: Estimate | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.feed = LiveFeed(self._push)
        # EV charging (OCPP) and demand response (OpenADR): attached by the platform when switched on.
        self.ev: EvService | None = None
        self.dr: DrService | None = None
        self.cycles = 0
        self.cycle_ms: list[float] = []
        for pattern in SUBSCRIPTIONS:
            bus.subscribe(pattern, self.ingest.handle)
        bus.subscribe("gridmesh/v1/+/+/ack", self.commands.handle_acks)
        self._presence: dict[str, Presence] = {}
        self._presence_decoder = msgspec.json.Decoder(Presence)
        bus.subscribe("gridmesh/v1/+/+/state", self._presence_changed)
        # Edge agents and distributed coordination.
        self.plans = PlanPublisher(bus, keyring.command_secret, clock=self.clock.now_ns)
        self.agents = AgentStates(agents or {}, on_report=self._agent_report)
        bus.subscribe(agent_topic("+", STATE), self.agents.handle_state)
        bus.subscribe(agent_topic("+", REPORT), self.agents.handle_reports)
        self.coordination = CoordinationDesk(
            scenario, publisher=self.plans, clock=self.clock.now
        )
        self._next_heartbeat_ns = 0

    # -- live data ------------------------------------------------------------------------------------
    def _accepted(self, rows: ReadingRows) -> None:
        self.image.update(rows)
        self.feed.add(rows)

    def _event(self, event: Event) -> None:
        spec = self.catalogue.devices.get(event.device)
        if spec is None:
            return
        if event.kind == "last-gasp":
            self.alarm_engine.last_gasp(event.device, spec.bus, event.ts)
        elif event.kind == "power-restored":
            self.alarm_engine.restored(event.device, event.ts)
        elif spec.kind is DeviceKind.SWITCH and event.kind in SWITCH_OPENED | SWITCH_CLOSED:
            self.switches.report(spec.element, event.kind in SWITCH_CLOSED, event.ts)
            if event.kind == "lockout":
                self.flisr.lockout(spec.element)
        elif spec.kind is DeviceKind.SWITCH and event.kind == "fault-passage":
            self.fault_desk.passage(spec.element)

    def _indications(self) -> dict[str, bool]:
        """Fault passage per indicating switch: ``FltInd`` telemetry or a latched ``fault-passage`` event."""
        fpi = self.image.series(DeviceKind.SWITCH, "FltInd")
        latched = self.fault_desk.indications()
        return {
            sw: bool(v == 1.0) or sw in latched
            for sw, v in zip(fpi.elements, fpi.value.tolist(), strict=True)
            if math.isfinite(v) or sw in latched
        }

    def _loads_now(self) -> dict[str, float]:
        """kW per load: the meter's latest reading, else the profile value now."""
        base = self.measurements.profiles.values(self.clock.now().replace(tzinfo=None))
        loads = list(self.net.loads)
        kw, _ = self.image.overlay(DeviceKind.METER, "TotW", loads, base.load_p_kw[0], scale=1 / W_PER_KW)
        return dict(zip(loads, kw.tolist(), strict=True))

    def _command_done(self, record: CommandRecord) -> None:
        spec = self.catalogue.devices[record.device]
        if spec.kind is DeviceKind.SWITCH and record.action in ("open", "close"):
            self.switches.report(spec.element, record.action == "close", record.answered_ns)

    def _presence_changed(self, batch: Sequence[Message]) -> None:
        """Retained online flags and last wills; an offline transition goes to the event log."""
        events = []
        for message in batch:
            try:
                presence = self._presence_decoder.decode(message.payload)
            except msgspec.DecodeError:
                continue
            before = self._presence.get(presence.device)
            self._presence[presence.device] = presence
            went_offline = not presence.online and (before is None or before.online)
            came_back = presence.online and before is not None and not before.online
            if went_offline or came_back:
                state = "online" if presence.online else f"offline ({presence.reason or 'no reason given'})"
                events.append(StoredEvent(presence.ts, "presence", presence.device, f"{presence.device} {state}"))
        if events:
            self.historian.write_events(events)

    def _online(self, device: str, seen: dict[str, int], now: int) -> bool:
        """Recent data, and neither the device nor its gateway has said (or willed) it is offline."""
        gateway = self._presence.get(GATEWAY)
        flag = self._presence.get(device)
        recent = device in seen and now - seen[device] < 3 * self._periods[device] * NS_PER_S
        return recent and (flag is None or flag.online) and (gateway is None or gateway.online)

    def _agent_report(self, report: AgentReport) -> None:
        """A verified agent report as an event; a change to fallback or islanded is a warning."""
        detail = report.detail
        if report.kind == "mode":
            reason = f" ({detail['reason']})" if detail.get("reason") else ""
            message = f"edge agent of {report.site}: {detail.get('from') or 'start'} → {report.mode}{reason}"
        else:
            message = f"edge agent of {report.site}: {report.kind} report ({report.mode})"
        warn = report.kind == "mode" and report.mode != AgentMode.CONNECTED
        data = {"seq": report.seq, "mode": report.mode, "detail": dict(detail), "values": dict(report.values)}
        self.historian.write_events(
            [
                StoredEvent(
                    report.ts,
                    f"agent.{report.kind}",
                    agent_id(report.site),
                    message,
                    "warning" if warn else "info",
                    data,
                )
            ]
        )

    def renew_plans(self, now_ns: int) -> None:
        """Every :data:`HEARTBEAT` of simulated time, each agent site's plan again (or a heartbeat)."""
        if now_ns < self._next_heartbeat_ns:
            return
        self._next_heartbeat_ns = now_ns + int(HEARTBEAT.total_seconds() * NS_PER_S)
        for site in self.agents.agents:
            self.plans.renew(site)

    def _alarm_changes(self, changes: Sequence[AlarmChange]) -> None:
        self.historian.write_events([c.to_event() for c in changes])
        for change in changes:
            self._push(alarm_view(change.alarm))

    def _stored_alarm_events(self) -> list[StoredEvent]:
        frame = self.historian.events(kind="alarm", limit=100_000)
        return [
            StoredEvent(int(r["ts"].value), r["kind"], r["source"], r["message"], r["severity"], r["data"])
            for r in frame.iloc[::-1].to_dict("records")
        ]

    def _push(self, view: Pushed) -> None:
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("a state listener failed")

    # -- the cycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.feed.start()
        self._thread = threading.Thread(target=self._run, name="centre-cycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for service in (self.ev, self.dr):
            if service is not None:
                service.stop()
        self.flisr.stop()
        self.coordination.stop()
        self.feed.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except Exception:
                log.exception("centre cycle failed; the next cycle retries")
            self._stop.wait(max(0.0, self.settings.cycle_s - (time.monotonic() - started)))

    def _topology(self) -> None:
        """Rebuild the estimator when the known switch positions moved since it was built."""
        self.switches.from_positions(self.image.series(DeviceKind.SWITCH, "Pos"))
        if self.switches.version != self._estimator_version:
            self._estimator_version = self.switches.version
            self._estimator = StateEstimator(self.switches.network())

    def cycle(self) -> StateView:
        """One estimation cycle; returns (and pushes) the new state."""
        started = time.perf_counter()
        now_ns = self.clock.now_ns()
        self._topology()
        measurements = self.measurements.build(self.image, utc(now_ns).replace(tzinfo=None), now_ns)
        estimate = self._estimator.estimate(measurements)
        cycle_ms = (time.perf_counter() - started) * 1e3
        state = self._state_view(estimate, now_ns, cycle_ms)
        with self._lock:
            self._state, self._estimate = state, estimate
            self.cycles += 1
            self.cycle_ms = [*self.cycle_ms[-999:], cycle_ms]
        self.alarm_engine.evaluate(now_ns, self._observed(estimate))
        self.renew_plans(now_ns)
        if self.live_control is not None:
            decision = self.live_control.tick(self.clock.now())
            if decision is not None and (decision.failed or decision.refusals):
                refused = len(decision.refusals)
                log.warning("control step %s: failed %s, %d refusals", decision.time, decision.failed, refused)
        self._push(state)
        if self._retention is not None:
            self._retention.run_if_due(self.historian, utc(now_ns))
        return state

    def branch_loading(self) -> dict[str, float]:
        """Loading (fraction of rating) of every line and transformer in the last estimate; NaN unknown."""
        with self._lock:
            estimate = self._estimate
        if estimate is None or not estimate.observable:
            return {}
        index = estimate.index
        values = np.concatenate([estimate.line_loading, estimate.trafo_loading]).tolist()
        return dict(zip((*index.lines, *index.transformers), values, strict=True))

    def _observed(self, estimate: Estimate) -> ObservedState:
        # the substations' frequency, and each battery's where it measures one (an island's droop frequency)
        measured = (self.image.series(DeviceKind.SUBSTATION, "Hz"), self.image.reported_with(DeviceKind.BATTERY, "Hz"))
        index = estimate.index
        return ObservedState(
            bus_ids=index.buses,
            v_pu=estimate.v_pu if estimate.observable else np.full(len(index.buses), np.nan),
            branch_ids=(*index.lines, *index.transformers),
            loading=np.concatenate([estimate.line_loading, estimate.trafo_loading]),
            frequency_hz={
                d: float(v) for f in measured for d, v in zip(f.devices, f.value, strict=True) if np.isfinite(v)
            },
            last_seen_ns=self.ingest.last_seen(),
            expected_period_s=self._periods,
            # Largest normalised residual: only the first suspect is the identified bad datum; the others
            # are often its smearing onto neighbours and clear once it is removed.
            suspects=[(s.element, s.quantity, s.normalised_residual) for s in estimate.suspects[:1]],
        )

    def _state_view(self, estimate: Estimate, now_ns: int, cycle_ms: float) -> StateView:
        index = estimate.index
        v = estimate.v_pu if estimate.observable else np.full(len(index.buses), np.nan)
        loading = np.concatenate([estimate.line_loading, estimate.trafo_loading]) * 100.0
        return StateView(
            time=utc(now_ns),
            v_pu=rounded(v, 4),
            loading_pct=rounded(loading, 1),
            substation_p_kw=float(np.nansum(estimate.grid_p_kw)),
            substation_q_kvar=float(np.nansum(estimate.grid_q_kvar)),
            sites=self._summaries(estimate),
            estimator=EstimatorInfo(
                observable=estimate.observable,
                problem=estimate.observability or estimate.message,
                j=float(estimate.objective),
                threshold=float(estimate.chi2_threshold),
                suspects=[s.element for s in estimate.suspects[:1]],
                cycle_ms=round(cycle_ms, 1),
            ),
        )

    # -- the API port ---------------------------------------------------------------------------------
    def network(self) -> NetworkView:
        return self._network_view

    def devices(self, site: str | None, kind: str | None) -> list[DeviceView]:
        seen = self.ingest.last_seen()
        now = self.clock.now_ns()
        return [
            DeviceView(
                id=d.id,
                kind=d.kind.value,
                element=d.element,
                bus=d.bus,
                site=d.site,
                online=self._online(d.id, seen, now),
                last_seen=utc(seen[d.id]) if d.id in seen else None,
                controllable=d.controllable,
                reports=list(d.reports),
            )
            for d in self.catalogue.devices.values()
            if (site is None or d.site == site) and (kind is None or d.kind.value == kind)
        ]

    def state(self) -> StateView | None:
        with self._lock:
            return self._state

    def history(
        self, device: str, quantity: str, start: datetime, end: datetime, every: timedelta | None
    ) -> SeriesView:
        chargers = self.ev.registry if self.ev is not None else {}
        if device not in self.catalogue.devices and device not in chargers:
            raise NotFound(f"unknown device {device!r}", "list devices with GET /api/v1/devices")
        if quantity not in QUANTITIES:
            raise NotFound(f"unknown quantity {quantity!r}", f"use one of {', '.join(QUANTITIES)}")
        unit = QUANTITIES[quantity].unit
        if every is None:
            raw = self.historian.history(start=start, end=end, device=device, quantity=quantity)
            raw = raw[raw["phase"] == ""]
            t, values = list(raw["ts"]), raw["value"].tolist()
            return SeriesView(device=device, quantity=quantity, unit=unit, every_s=None, t=t, value=values)
        b = self.historian.buckets(start=start, end=end, every=every, device=device, quantity=quantity)
        b = b[b["phase"] == ""]
        return SeriesView(
            device=device,
            quantity=quantity,
            unit=unit,
            every_s=every.total_seconds(),
            t=list(b["bucket"]),
            value=b["mean"].tolist(),
            min=b["min"].tolist(),
            max=b["max"].tolist(),
        )

    def substation_history(self, start: datetime, end: datetime, every: timedelta) -> SeriesView:
        substation = next(d.id for d in self.catalogue.devices.values() if d.kind is DeviceKind.SUBSTATION)
        series = self.history(substation, "TotW", start, end, every)
        kw = 1e-3
        return series.model_copy(
            update={
                "unit": "kW",
                "value": [v * kw for v in series.value],
                "min": [v * kw for v in series.min or []],
                "max": [v * kw for v in series.max or []],
            }
        )

    def alarms(self, active_only: bool) -> list[AlarmView]:
        chosen = self.alarm_engine.active() if active_only else self.alarm_engine.all(limit=500)
        return [alarm_view(a) for a in chosen]

    def acknowledge(self, alarm_id: str, user: str) -> AlarmView:
        try:
            return alarm_view(self.alarm_engine.acknowledge(alarm_id, user, self.clock.now_ns()))
        except KeyError as exc:
            raise NotFound(f"unknown alarm {alarm_id!r}", "list alarms with GET /api/v1/alarms") from exc

    def events(self, since: datetime | None, kind: str | None, limit: int) -> list[EventView]:
        return event_views(self.historian.events(since=since, kind=kind, limit=limit))

    def counters(self) -> dict[str, int]:
        with self._lock:
            cycles = self.cycles
        return {**self.ingest.counters.snapshot(), "estimator.cycles": cycles}

    def dead_letters(self, limit: int, reason: str | None) -> list[DeadLetterView]:
        return dead_letter_views(self.historian.dead_letters(limit=limit, reason=reason))

    def command(self, device: str, action: str, value: float, user: str) -> CommandView:
        record = self.commands.send(device, action, value, user=user)
        return CommandView(
            device=record.device,
            seq=record.seq,
            action=record.action,
            value=record.value,
            issued_by=record.user,
            issued_at=utc(record.sent_ns),
        )

    def inject_fault(self, request: FaultRequest, user: str) -> FaultView:
        record = self.fault_desk.inject(
            request.element,
            request.table,
            request.fault_type,
            permanent=request.permanent,
            position=request.position,
            user=user,
        )
        return fault_view(record)

    def repair_fault(self, fault_id: str, user: str) -> FaultView:
        record = self.fault_desk.repair(fault_id, user)
        self.flisr.return_to_normal(user)
        return fault_view(record)

    def faults(self) -> list[FaultView]:
        return [fault_view(f) for f in self.fault_desk.faults()]

    def control(self, limit: int) -> ControlView:
        return control_view(self.live_control, limit)

    def flisr_cases(self) -> list[FlisrCaseView]:
        return [case_view(c) for c in self.flisr.cases()]

    def flisr_case(self, case_id: str) -> FlisrCaseView:
        return case_view(self.flisr.case(case_id))

    def confirm_flisr(self, case_id: str, user: str) -> FlisrCaseView:
        return case_view(self.flisr.confirm(case_id, user))

    def ev_chargers(self) -> list[ChargerView]:
        return charger_views(self.ev) if self.ev is not None else []

    def ev_sessions(self, limit: int) -> list[EvSessionView]:
        return [session_view(x) for x in self.ev.sessions()[:limit]] if self.ev is not None else []

    def ev_pushes(self, limit: int) -> list[PushView]:
        return [push_view(p) for p in self.ev.pushes(limit)] if self.ev is not None else []

    def dr_events(self) -> list[DrEventView]:
        return [event_view(*e) for e in self.dr.events()] if self.dr is not None else []

    def dr_results(self) -> list[DrResultView]:
        return [result_view(r) for r in self.dr.results()] if self.dr is not None else []

    def _dr(self) -> DrService:
        if self.dr is None:
            raise NotReady("demand response is off", "start the centre without --no-dr")
        return self.dr

    def create_dr_event(self, request: DrEventRequest, user: str) -> DrEventView:
        dr = self._dr()
        levels = dict(request.levels)
        if not levels:
            if not request.sites or request.level is None:
                raise CommandRefused("no sites and level given", "give `levels` per site, or `sites` and `level`")
            levels = dict.fromkeys(request.sites, request.level)
        event = dr.create(levels, request.signal, request.start, timedelta(minutes=request.duration_minutes))
        self.historian.write_events(
            [
                StoredEvent(
                    self.clock.now_ns(),
                    "dr.event-created",
                    event.event_id,
                    f"{user} created DR event {event.event_id} ({event.signal.value}) for {', '.join(event.vens)}",
                    data={"user": user, "start": event.start.isoformat(), "levels": dict(event.levels)},
                )
            ]
        )
        return next(event_view(*e) for e in dr.events() if e[0].event_id == event.event_id)

    def cancel_dr_event(self, event_id: str, user: str) -> DrEventView:
        dr = self._dr()
        dr.cancel(event_id)
        self.historian.write_events(
            [
                StoredEvent(
                    self.clock.now_ns(),
                    "dr.event-cancelled",
                    event_id,
                    f"{user} cancelled DR event {event_id}",
                    data={"user": user},
                )
            ]
        )
        return next(event_view(*e) for e in dr.events() if e[0].event_id == event_id)

    def microgrids(self) -> list[MicrogridView]:
        states = self.agents.states()
        with self._lock:
            state = self._state
        summaries = {s.site: s for s in state.sites} if state is not None else {}
        views = []
        for site in self.net.sites.values():
            if site.level is not SiteLevel.MICROGRID or not site.pcc:
                continue
            agent, summary = states.get(site.id), summaries.get(site.id)
            mode = agent.mode if agent is not None and agent.mode in tuple(AgentMode) else ""
            views.append(
                MicrogridView(
                    site=site.id,
                    name=site.name or site.id,
                    agent_online=agent is not None and agent.online,
                    mode=mode,  # checked against AgentMode above
                    reason=agent.reason if agent is not None else "",
                    since=utc(agent.since) if agent is not None and agent.since else None,
                    plan_seq=agent.plan_seq if agent is not None else 0,
                    import_kw=summary.import_kw if summary is not None else None,
                    islanded=summary.islanded if summary is not None else None,
                )
            )
        return views

    def coordination_runs(self) -> list[CoordinationRunView]:
        return [run_view(r) for r in self.coordination.runs()]

    def start_coordination(self, day: date | None, user: str) -> CoordinationRunView:
        run = self.coordination.start(day or self.clock.now().date(), user)
        self.historian.write_events(
            [
                StoredEvent(
                    self.clock.now_ns(),
                    "coordination.started",
                    run.id,
                    f"{user} started day-ahead coordination {run.id} for {run.day.isoformat()}",
                    data={"user": user, "day": run.day.isoformat()},
                )
            ]
        )
        return run_view(run)

    def vpp_sites(self) -> list[VppSiteView]:
        sites = self.net.sites
        return [
            VppSiteView(id=v, name=sites[v].name or v, members=list(sites[v].members))
            for v in self.coordination.vpp_sites()
        ]

    def vpp_envelope(self, site: str, day: date | None) -> VppEnvelopeView:
        if site not in self.coordination.vpp_sites():
            raise NotFound(f"unknown VPP {site!r}", "list the VPPs with GET /api/v1/vpp")
        chosen = day or self.clock.now().date()
        try:
            document = self.coordination.envelope(site, chosen)
        except ProfileError as exc:
            raise NotFound(f"no profiles for {chosen.isoformat()}: {exc}", "ask for a day the profiles cover") from exc
        intervals = document["intervals"]
        return VppEnvelopeView(
            site=site,
            owner=document["owner"],
            day=chosen,
            dt_h=document["dt_h"],
            time=intervals["time"],
            up_kw=intervals["up_kw"],
            down_kw=intervals["down_kw"],
            energy_up_kwh=intervals["energy_up_kwh"],
            energy_down_kwh=intervals["energy_down_kwh"],
            limited_by=intervals["limited_by"],
            storage=document["storage"],
            seconds=document["seconds"],
        )

    def vpp_dispatch(self, site: str, request: VppDispatchRequest, user: str) -> VppDispatchView:
        if site not in self.coordination.vpp_sites():
            raise NotFound(f"unknown VPP {site!r}", "list the VPPs with GET /api/v1/vpp")
        chosen = request.day or self.clock.now().date()
        try:
            document = self.coordination.dispatch(site, chosen, request.award_kw)
        except ProfileError as exc:
            raise NotFound(f"no profiles for {chosen.isoformat()}: {exc}", "ask for a day the profiles cover") from exc
        except ValueError as exc:
            raise CentreError(str(exc), "send one award value per interval (GET …/envelope lists them)") from exc
        summary = document["summary"]
        self.historian.write_events(
            [
                StoredEvent(
                    self.clock.now_ns(),
                    "vpp.dispatch",
                    site,
                    f"award for {chosen.isoformat()}: {100 * summary['delivered_share']:.1f} % delivered",
                    "info",
                    {"user": user},
                )
            ]
        )
        return VppDispatchView(site=site, day=chosen, **document["intervals"], summary=summary)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe
