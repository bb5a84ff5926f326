"""EV charging in the live platform: the OCPP central system inside the centre, its meter values in the
historian, sessions, and smart charging pushed to the stations; and the simulated stations of the field.

Centre side (:class:`EvService`): the central system (:mod:`gridmesh.adapters.ocpp`) listens on
``ws://HOST:PORT/ocpp/<charger>`` (security profile 1 by default, passwords provisioned under the keys
folder). A :class:`HistorianSink` stores every sampled energy register and power as readings of the
charger (device = charger id, ``seq`` = the sample's timestamp in ns plus ``connector − 1``, so two
connectors sampled at the same instant stay two readings) and every station event in the event log
(``ocpp.<kind>``). A thread re-plans every ``step_minutes`` of grid time and whenever the set of open
sessions changes: the open sessions and the transformer headroom left by the present estimated state
(:mod:`gridmesh.optim.ev_headroom`) make a :class:`~gridmesh.optim.ev_schedule.ChargingProblem`; the
first step of its plan is pushed as each station's limit (``push_profiles``) and the push's outcome kept.

Field side (:func:`start_stations`): one simulated station per scenario charger, a real websocket client
of the centre, with seeded sessions from gridmesh's EV model shifted to the platform clock's time of day.

Times. Stations stamp meter values and run charging profiles on the wall clock (OCPP is wall-clock);
sessions and energy advance at the platform speed. Grid-time instants of a session are derived as
``sim_now − (wall_now − wall_t) × speed``.
"""

from __future__ import annotations

import logging
import math
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from gridmesh.adapters.ocpp import (
    CentralConfig,
    CentralSystem,
    FleetThread,
    MeterRow,
    OcppEvent,
    PasswordStore,
    PushOutcome,
    PushReport,
    SecurityProfile,
    SessionPlan,
    StationConfig,
    client_tls_context,
    load_charger_secrets,
    make_station,
    provision_passwords,
    registry_from_network,
    server_tls_context,
    sessions_from_ev,
)
from gridmesh.adapters.ocpp.auth import HASH_FILE, SECRET_FILE
from gridmesh.adapters.openadr.certificates import Credentials, create_ca, fingerprint_of, issue_certificate
from gridmesh.api.ports import ChargerView, EvSessionView, PushView
from gridmesh.devices.ev import PATTERNS, Sessions
from gridmesh.model.elements import EvCharger
from gridmesh.model.scenario import Scenario
from gridmesh.optim.ev_headroom import charger_groups, headroom_from_loading
from gridmesh.optim.ev_schedule import ChargingProblem, schedule
from gridmesh.physics.powerflow import FloatArray
from gridmesh.services.clock import Clock
from gridmesh.services.historian.base import Historian, ReadingRows, StoredEvent

log = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000
QUANTITY_OF = {"Energy.Active.Import.Register": "TotWh", "Power.Active.Import": "TotW"}
TO_BASE_UNIT = {"Wh": 1.0, "kWh": 1e3, "W": 1.0, "kW": 1e3}  # → Wh, W (the historian's units)
TLS_FOLDER = "ocpp-tls"


def _ns(ts: datetime) -> int:
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return int(aware.timestamp()) * NS_PER_S + aware.microsecond * 1000


def _plain(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


class HistorianSink:
    """The centre's :class:`~gridmesh.adapters.ocpp.OcppSink`: readings and events into the historian.

    Energy registers are stored as ``TotWh`` (Wh), power as ``TotW`` (W); other measurands (current,
    voltage, SoC) are not stored. ``power_kw()`` is the latest power per charger (all connectors).
    """

    def __init__(self, historian: Historian, *, on_session: Callable[[], None] = lambda: None) -> None:
        self.historian = historian
        self._on_session = on_session
        self._lock = threading.Lock()
        self._power_w: dict[tuple[str, int], float] = {}
        self.stored = 0

    def meter_values(self, rows: Sequence[MeterRow]) -> None:
        kept = [r for r in rows if r.measurand in QUANTITY_OF and r.unit in TO_BASE_UNIT]
        if not kept:
            return
        ts = np.array([_ns(r.ts) for r in kept], dtype=np.int64)
        batch = ReadingRows(
            device=[r.charger_id for r in kept],
            seq=ts + np.array([max(r.connector, 1) - 1 for r in kept], dtype=np.int64),
            ts_ns=ts,
            quantity=[QUANTITY_OF[r.measurand] for r in kept],
            phase=[r.phase or "" for r in kept],
            value=np.array([r.value * TO_BASE_UNIT[r.unit] for r in kept], dtype=np.float64),
            quality=["good"] * len(kept),
            received_ns=np.full(len(kept), time.time_ns(), dtype=np.int64),
        )
        self.stored += self.historian.write_readings(batch)
        with self._lock:
            for r, quantity, value in zip(kept, batch.quantity, batch.value.tolist(), strict=True):
                if quantity == "TotW" and not r.phase:
                    self._power_w[(r.charger_id, r.connector)] = value

    def event(self, event: OcppEvent) -> None:
        detail = {k: _plain(v) for k, v in event.detail.items()}
        text = ", ".join(f"{k} {v}" for k, v in detail.items())
        message = f"{event.charger_id} {event.kind.value.replace('_', ' ')}" + (f": {text}" if text else "")
        self.historian.write_events(
            [StoredEvent(_ns(event.ts), f"ocpp.{event.kind.value}", event.charger_id, message, data=detail or None)]
        )
        if event.kind.value in ("transaction_started", "transaction_ended"):
            self._on_session()  # re-plan now (a station's last sample of a session reads 0 W)

    def power_kw(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {}
            for (charger, _), w in self._power_w.items():
                out[charger] = out.get(charger, 0.0) + w / 1e3
            return out


# -- security profiles 2 and 3: a CA of the platform's own under the keys folder ------------------------
def _credentials(folder: Path, name: str, issue: Callable[[], Credentials]) -> Credentials:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    if cert.exists() and key.exists():
        return Credentials(name, cert, key, fingerprint_of(cert))
    return issue()


def ocpp_tls_files(keys: Path, chargers: Sequence[str], *, client_certificates: bool) -> dict[str, Credentials]:
    """The CA (``ca``), the central system's certificate (``server``) and, for profile 3, one client
    certificate per charger (CN = charger id), provisioned once under ``<keys>/ocpp-tls``."""
    folder = keys / TLS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ca = _credentials(folder, "ca", lambda: create_ca(folder))
    out = {
        "ca": ca,
        "server": _credentials(
            folder,
            "server",
            lambda: issue_certificate(ca, folder, "server", hosts=("127.0.0.1", "localhost"), server=True),
        ),
    }
    if client_certificates:
        clients = folder / "chargers"
        clients.mkdir(exist_ok=True)
        for c in chargers:
            out[c] = _credentials(clients, c, lambda c=c: issue_certificate(ca, clients, c))  # type: ignore[misc]
    return out


@dataclass(frozen=True)
class EvSettings:
    """The centre's OCPP endpoint and smart charging.

    ``step_minutes`` of grid time between plans; ``horizon_h``/``dt_h`` the plan's horizon and step;
    ``limit`` the loading each constraint group may reach (fraction of its rating); ``ev_cap_kw`` an
    optional cap on the EVs behind any one group (kW); ``energy_kwh``/``dwell_h`` what a session asks
    for and how long it stays when the station does not say (default: the charger's mean energy and its
    usage pattern's mean dwell time).
    """

    host: str = "127.0.0.1"
    port: int = 9000
    profile: SecurityProfile = SecurityProfile.BASIC
    step_minutes: float = 15.0
    horizon_h: float = 24.0
    dt_h: float = 0.25
    limit: float = 0.97
    ev_cap_kw: float | None = None
    energy_kwh: float | None = None
    dwell_h: float | None = None
    price_eur_per_kwh: float = 0.30
    poll_s: float = 1.0
    response_timeout_s: float = 10.0
    keep_pushes: int = 50


@dataclass(frozen=True)
class EvSession:
    """An open or finished charging session as the centre sees it (grid time)."""

    charger: str
    connector: int
    transaction_id: str
    arrival: datetime
    departure: datetime  # expected (default dwell) while open; the stop time once ended
    requested_kwh: float
    delivered_kwh: float
    open: bool


@dataclass(frozen=True)
class PushRecord:
    """One smart-charging push: when (grid time), the plan's status, limits sent and what came back."""

    time: datetime
    reason: str
    plan_status: str
    plan_ms: float
    sessions: int
    shortfall_kwh: float
    limits_kw: Mapping[str, float]
    outcomes: Mapping[str, str]
    details: Mapping[str, str]
    wall_s: float

    def count(self, outcome: PushOutcome) -> int:
        return sum(o == outcome.value for o in self.outcomes.values())


class EvService:
    """The OCPP central system of the centre and its smart-charging loop (own thread)."""

    def __init__(
        self,
        scenario: Scenario,
        historian: Historian,
        keys: Path,
        *,
        clock: Clock,
        speed: float = 1.0,
        loading: Callable[[], Mapping[str, float]] = dict,
        settings: EvSettings | None = None,
    ) -> None:
        self.settings = s = settings or EvSettings()
        self.net = scenario.network
        self.clock, self.speed, self._loading = clock, speed, loading
        self.registry = registry_from_network(self.net)
        self.chargers: list[EvCharger] = [self.net.ev_chargers[c] for c in self.registry]
        self._index = {c.id: k for k, c in enumerate(self.chargers)}
        self.groups = charger_groups(self.net, self.chargers)
        keys.mkdir(parents=True, exist_ok=True)
        provision_passwords(list(self.registry), keys)
        tls = None
        if s.profile is not SecurityProfile.BASIC:
            files = ocpp_tls_files(keys, list(self.registry), client_certificates=s.profile is SecurityProfile(3))
            client_ca = files["ca"].cert_path if s.profile is SecurityProfile(3) else None
            tls = server_tls_context(files["server"].cert_path, files["server"].key_path, client_ca_file=client_ca)
        passwords = PasswordStore.load(keys / HASH_FILE) if s.profile is not SecurityProfile(3) else None
        self._wake = threading.Event()
        self.sink = HistorianSink(historian, on_session=self._wake.set)
        config = CentralConfig(
            host=s.host,
            port=s.port,
            profile=s.profile,
            passwords=passwords,
            tls=tls,
            response_timeout_s=s.response_timeout_s,
        )
        self.central = CentralSystem(self.registry, self.sink, config)
        self._pushes: deque[PushRecord] = deque(maxlen=s.keep_pushes)
        self._limits: dict[str, float] = {}
        self._planned: tuple[int, frozenset[str], frozenset[str]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.central.url

    def start(self) -> EvService:
        self.central.start()
        self._thread = threading.Thread(target=self._run, name="ev-smart-charging", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.central.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick()
            except Exception:
                log.exception("smart charging step failed; the next one retries")

    # -- sessions -----------------------------------------------------------------------------------
    def _grid_time(self, wall: datetime, now: datetime) -> datetime:
        return now - (datetime.now(UTC) - wall) * self.speed

    def sessions(self) -> list[EvSession]:
        """Every session the central system knows, newest first."""
        now = self.clock.now()
        out = []
        for t in self.central.state.transactions():
            charger = self.net.ev_chargers.get(t.charger_id)
            if charger is None:
                continue
            arrival = self._grid_time(t.started, now)
            dwell = self.settings.dwell_h if self.settings.dwell_h is not None else PATTERNS[charger.usage][2]
            requested = self.settings.energy_kwh if self.settings.energy_kwh is not None else charger.energy_kwh
            departure = self._grid_time(t.stopped, now) if t.stopped else arrival + timedelta(hours=dwell)
            out.append(
                EvSession(
                    t.charger_id,
                    t.connector,
                    t.transaction_id,
                    arrival,
                    departure,
                    requested,
                    t.energy_kwh,
                    t.stopped is None,
                )
            )
        return sorted(out, key=lambda x: x.arrival, reverse=True)

    # -- smart charging -----------------------------------------------------------------------------
    def headroom_kw(self) -> np.ndarray:
        """``(G,)`` kW the EVs behind each group may draw now: ``limit · rating − |S|`` of the estimated
        state, plus what the chargers behind it draw now (the estimate includes them); 0 where unknown."""
        loading = self._loading()
        present = np.array([[loading.get(name, math.nan) for name in self.groups.names]], dtype=np.float64)
        room = headroom_from_loading(self.groups, present, limit=self.settings.limit)[0]
        power = self.sink.power_kw()
        ev_now = np.array([power.get(c.id, 0.0) for c in self.chargers])
        room = np.where(np.isnan(present[0]), 0.0, room + self.groups.members @ ev_now)
        if self.settings.ev_cap_kw is not None:
            room = np.minimum(room, self.settings.ev_cap_kw)
        clipped: np.ndarray = np.clip(room, 0.0, None)
        return clipped

    def tick(self) -> PushRecord | None:
        """Plan and push when a grid-time step began or the open sessions changed; None otherwise."""
        now = self.clock.now()
        step = int(now.timestamp() // (self.settings.step_minutes * 60))
        open_ = [x for x in self.sessions() if x.open]
        connected = frozenset(self.central.connected())
        key = (step, frozenset(x.transaction_id for x in open_), connected)
        if key == self._planned or not connected:
            return None
        reason = "new step" if self._planned is None or self._planned[0] != step else "sessions changed"
        self._planned = key
        return self.push(now, [x for x in open_ if x.charger in connected], connected, reason)

    def plan_kw(self, now: datetime, sessions: Sequence[EvSession]) -> tuple[dict[str, float], str, float, float]:
        """Limit per charger with a session (kW, the plan's first step), the plan's status, ms and shortfall."""
        if not sessions:
            return {}, "no sessions", 0.0, 0.0
        s = self.settings
        steps = max(round(s.horizon_h / s.dt_h), 1)
        charger = np.array([self._index[x.charger] for x in sessions], dtype=np.int64)
        left_h = np.array([(x.departure - now).total_seconds() / 3600 for x in sessions])
        departure = np.clip(np.ceil(left_h / s.dt_h), 1, steps).astype(np.int64)
        energy = np.clip(np.array([x.requested_kwh - x.delivered_kwh for x in sessions]), 0.0, None)
        rating = np.array([c.p_kw for c in self.chargers])
        room = self.headroom_kw()
        problem = ChargingProblem(
            sessions=Sessions(charger, np.zeros(len(sessions), dtype=np.int64), departure, energy),
            p_max_kw=rating[charger],
            groups=self.groups.members,
            headroom_kw=np.tile(room, (steps, 1)),
            price_eur_per_kwh=np.full(steps, s.price_eur_per_kwh),
            dt_h=s.dt_h,
            ids=tuple(x.transaction_id for x in sessions),
            group_names=self.groups.names,
        )
        plan = schedule(problem, time_limit_s=5.0)
        first = plan.charger_kw(len(self.chargers))[0]
        limits = {self.chargers[k].id: round(float(first[k]), 3) for k in np.unique(charger).tolist()}
        return limits, plan.status.value, plan.seconds * 1e3, float(plan.shortfall_kwh.sum())

    def push(self, now: datetime, sessions: Sequence[EvSession], connected: frozenset[str], reason: str) -> PushRecord:
        limits, status, ms, shortfall = self.plan_kw(now, sessions)
        for c in connected:  # chargers without a car get their full rating back
            limits.setdefault(c, self.net.ev_chargers[c].p_kw * self.net.ev_chargers[c].connectors)
        report: PushReport = self.central.push_profiles(limits)
        record = PushRecord(
            time=now,
            reason=reason,
            plan_status=status,
            plan_ms=round(ms, 2),
            sessions=len(sessions),
            shortfall_kwh=round(shortfall, 3),
            limits_kw=limits,
            outcomes={c: r.outcome.value for c, r in report.results.items()},
            details={c: r.detail for c, r in report.results.items()},
            wall_s=report.wall_s,
        )
        with self._lock:
            self._pushes.appendleft(record)
            self._limits.update({c: limits[c] for c, o in record.outcomes.items() if o == PushOutcome.ACCEPTED.value})
        return record

    def pushes(self, limit: int = 20) -> list[PushRecord]:
        with self._lock:
            return list(self._pushes)[:limit]

    def limits_kw(self) -> dict[str, float]:
        """The last limit each station accepted (kW)."""
        with self._lock:
            return dict(self._limits)


# -- field side ---------------------------------------------------------------------------------------
def station_sessions(
    chargers: Sequence[EvCharger], start: datetime, *, hours: float = 48.0, seed: int = 7
) -> dict[str, list[SessionPlan]]:
    """Seeded sessions from gridmesh's EV model, shifted so that second 0 is ``start``'s time of day."""
    offset = (start - start.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    drawn = sessions_from_ev(chargers, hours=hours + offset / 3600, seed=seed)
    return {
        c: [
            SessionPlan(max(p.arrival_s - offset, 0.0), p.departure_s - offset, p.energy_kwh, p.id_token)
            for p in plans
            if p.departure_s > offset
        ]
        for c, plans in drawn.items()
    }


def start_stations(
    scenario: Scenario,
    url: str,
    keys: Path,
    *,
    speed: float,
    start: datetime,
    profile: SecurityProfile = SecurityProfile.BASIC,
    sessions: Mapping[str, Sequence[SessionPlan]] | None = None,
    version: str = "2.0.1",
) -> FleetThread:
    """One simulated OCPP station per scenario charger, connected to ``url`` (``ws(s)://host:port/ocpp/``).

    Passwords (and, for profiles 2–3, the CA and client certificates) come from the keys folder the
    centre provisioned (``gridmesh ocpp provision`` for separate machines)."""
    registry = registry_from_network(scenario.network)
    chargers = [scenario.network.ev_chargers[c] for c in registry]
    passwords = load_charger_secrets(keys / SECRET_FILE) if profile is not SecurityProfile(3) else {}
    tls: dict[str, ssl.SSLContext] = {}
    if profile is not SecurityProfile.BASIC:
        files = ocpp_tls_files(keys, list(registry), client_certificates=profile is SecurityProfile(3))
        for c in registry:
            mine = files.get(c) if profile is SecurityProfile(3) else None
            tls[c] = client_tls_context(
                files["ca"].cert_path,
                cert_file=mine.cert_path if mine else None,
                key_file=mine.key_path if mine else None,
            )
    plans = sessions if sessions is not None else station_sessions(chargers, start)
    period = max(1.0, 60.0 / speed)  # one sample per grid minute, at most one per wall second
    stations = [
        make_station(
            version,
            StationConfig(
                c.id,
                url,
                password=passwords.get(c.id),
                tls=tls.get(c.id),
                p_max_kw=c.p_kw,
                connectors=c.connectors,
                meter_period_s=period,
                speed=speed,
            ),
            plans.get(c.id, ()),
        )
        for c in chargers
    ]
    return FleetThread(stations).start()


__all__ = [
    "EvService",
    "EvSession",
    "EvSettings",
    "HistorianSink",
    "PushRecord",
    "charger_views",
    "ocpp_tls_files",
    "push_view",
    "session_view",
    "start_stations",
    "station_power",
    "station_sessions",
]


# -- API views ----------------------------------------------------------------------------------------
def charger_views(service: EvService) -> list[ChargerView]:
    states = service.central.state.chargers()
    power, limits = service.sink.power_kw(), service.limits_kw()
    out = []
    for charger_id, binding in service.registry.items():
        state = states.get(charger_id)
        element = service.net.ev_chargers[charger_id]
        connected = state is not None and state.connected
        out.append(
            ChargerView(
                id=charger_id,
                site=binding.sites[0] if binding.sites else "grid",
                bus=binding.bus,
                rating_kw=element.p_kw * element.connectors,
                connected=connected,
                version=state.version if state is not None and connected else None,
                status=", ".join(f"{n} {s}" for n, s in state.connectors) if state is not None else "",
                last_seen=state.last_seen if state is not None else None,
                power_kw=round(power.get(charger_id, 0.0), 3),
                limit_kw=limits.get(charger_id),
            )
        )
    return out


def session_view(session: EvSession) -> EvSessionView:
    return EvSessionView(
        charger=session.charger,
        connector=session.connector,
        transaction_id=session.transaction_id,
        arrival=session.arrival,
        departure=session.departure,
        requested_kwh=round(session.requested_kwh, 3),
        delivered_kwh=round(session.delivered_kwh, 3),
        open=session.open,
    )


def push_view(record: PushRecord) -> PushView:
    return PushView(
        time=record.time,
        reason=record.reason,
        plan_status=record.plan_status,
        plan_ms=record.plan_ms,
        sessions=record.sessions,
        shortfall_kwh=record.shortfall_kwh,
        limits_kw=dict(record.limits_kw),
        outcomes=dict(record.outcomes),
        accepted=record.count(PushOutcome.ACCEPTED),
        rejected=record.count(PushOutcome.REJECTED),
        timeout=record.count(PushOutcome.TIMEOUT),
        wall_s=round(record.wall_s, 4),
    )


def station_power(stations: FleetThread, chargers: Sequence[str]) -> Callable[[], FloatArray]:
    """Each charger's present charging power (kW, in ``chargers``' order; NaN for a charger no station
    plays): what the field's power flow draws at the charger while OCPP stations play it."""
    by_id = {s.config.charger_id: s for s in stations.stations}
    played = [by_id.get(c) for c in chargers]

    def power() -> FloatArray:
        return np.array(
            [np.nan if s is None else sum(c.power_kw for c in s.connectors) for s in played], dtype=np.float64
        )

    return power
