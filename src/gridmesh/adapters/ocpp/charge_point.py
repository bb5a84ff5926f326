"""A simulated charging station (the test double of a real one), for both protocol versions.

The station runs on one asyncio loop with two halves that never wait for each other:

* the *physics* tick (every ``meter_period_s``): cars arrive and leave per their :class:`SessionPlan`,
  energy integrates (``speed`` simulated seconds per wall second), power obeys the charging profiles
  in force, and each tick queues one meter sample per charging connector;
* the *connection*: connects (Basic auth / TLS as configured), boots once, heartbeats, and sends the
  outbox in order. A message leaves the outbox only when the centre has answered it, and a resend
  keeps its message id, so a dropped connection loses nothing and duplicates nothing (the centre
  answers a repeated id without storing twice). Reconnects use exponential back-off with jitter.

Subclasses (``sim_v201.SimStationV201``, ``sim_v16.SimStationV16``) say how each event is worded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import ssl
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.headers import build_authorization_basic
from websockets.typing import Subprotocol

from gridmesh.adapters.ocpp.framing import FramingMixin
from gridmesh.adapters.ocpp.profiles import ActiveProfile, limit_kw

TRANSIENT_ERROR = "InternalError"  # the CALLERROR a centre answers when it could not process (e.g. store) a call


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One car's visit: times in simulated seconds after the station starts, energy wanted in kWh."""

    arrival_s: float
    departure_s: float
    energy_kwh: float
    id_token: str = "gridmesh-ev"
    connector: int | None = None  # None: the first free connector


@dataclass(frozen=True)
class StationConfig:
    """How a simulated station connects and behaves; ``url`` is the centre's base (``…/ocpp/``)."""

    charger_id: str
    url: str
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    p_max_kw: float = 11.0  # per connector
    connectors: int = 1
    meter_period_s: float = 10.0
    speed: float = 1.0  # simulated seconds per wall second (energy and session times)
    heartbeat_s: float | None = None  # None: the interval the centre gives at boot
    response_timeout_s: float = 10.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 30.0
    ignore_actions: frozenset[str] = frozenset()  # calls it never answers (to test the centre's timeouts)


@dataclass(frozen=True, slots=True)
class Sample:
    """A meter sample as the station generated it (what the centre must end up storing)."""

    connector: int
    transaction: str
    ts: datetime
    register_wh: float
    power_w: float


@dataclass
class Outgoing:
    """A queued call: built when sent (1.6 needs the centre's transaction id), same message id on resends."""

    build: Callable[[], Any]
    samples: int = 0  # sampled values it carries
    on_result: Callable[[Any], None] | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class ConnectorSim:
    number: int
    register_wh: float = 0.0
    power_kw: float = 0.0
    session: SessionPlan | None = None
    delivered_kwh: float = 0.0
    transaction: str | None = None  # the station's own reference (2.0.1: the transaction id itself)

    @property
    def remaining_kwh(self) -> float:
        return 0.0 if self.session is None else max(self.session.energy_kwh - self.delivered_kwh, 0.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


class SimStation(ABC):
    """The version-independent station; see the module docstring."""

    version: ClassVar[str]
    subprotocol: ClassVar[str]

    def __init__(self, config: StationConfig, sessions: Sequence[SessionPlan] = ()) -> None:
        self.config = config
        self.connectors = [ConnectorSim(n + 1) for n in range(config.connectors)]
        self.profiles: list[ActiveProfile] = []
        self.samples: list[Sample] = []
        self.finished: dict[str, float] = {}  # transaction → energy delivered (kWh)
        self.refused: list[str] = []  # calls the centre answered with a CALLERROR
        self.rejected_tokens: list[str] = []
        self.online = False
        self.booted = False
        self.connections = 0
        self.last_error: str | None = None
        self.values_generated = 0
        self.values_acknowledged = 0
        self._plans = deque(sorted(sessions, key=lambda s: s.arrival_s))
        self._outbox: deque[Outgoing] = deque()
        self._ws: ClientConnection | None = None
        self._offline_until = 0.0
        self._t0 = 0.0
        self._last: datetime | None = None
        self._heartbeat_s: float = 300.0
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    # ---- wording per version -------------------------------------------------------------------------
    @abstractmethod
    def _protocol(self, ws: ClientConnection) -> Any:
        """The library ChargePoint subclass that answers the centre's calls on ``ws``."""

    @abstractmethod
    def _boot(self) -> Any: ...

    @abstractmethod
    def _heartbeat(self) -> Any: ...

    @abstractmethod
    def _authorize(self, id_token: str) -> Any: ...

    @abstractmethod
    def _accepted(self, answer: Any) -> bool:
        """Whether an Authorize answer lets the car charge."""

    @abstractmethod
    def _status(self, connector: ConnectorSim, charging: bool, ts: datetime) -> Outgoing: ...

    @abstractmethod
    def _started(self, connector: ConnectorSim, sample: Sample) -> list[Outgoing]: ...

    @abstractmethod
    def _updated(self, connector: ConnectorSim, sample: Sample) -> Outgoing: ...

    @abstractmethod
    def _ended(self, connector: ConnectorSim, sample: Sample, reason: str) -> list[Outgoing]: ...

    # ---- physics -------------------------------------------------------------------------------------
    def _sim_seconds(self) -> float:
        return (time.monotonic() - self._t0) * self.config.speed

    def _advance(self, now: datetime) -> None:
        """Integrate every connector's energy from the last instant to ``now`` at the power then in force."""
        if self._last is not None:
            dt_h = max((now - self._last).total_seconds(), 0.0) * self.config.speed / 3600.0
            for c in self.connectors:
                if c.session is not None and c.power_kw > 0:
                    energy = min(c.power_kw * dt_h, c.remaining_kwh)
                    c.delivered_kwh += energy
                    c.register_wh += energy * 1000.0
        self._last = now

    def _set_power(self, now: datetime) -> None:
        limit = limit_kw(self.profiles, now)
        active = {c.number for c in self.connectors if c.transaction is not None and c.remaining_kwh > 0}
        share = math.inf if limit is None or not active else limit / len(active)
        for c in self.connectors:
            c.power_kw = min(self.config.p_max_kw, share) if c.number in active else 0.0

    def _sample(self, c: ConnectorSim, now: datetime) -> Sample:
        assert c.transaction is not None
        sample = Sample(c.number, c.transaction, now, c.register_wh, c.power_kw * 1000.0)
        self.samples.append(sample)
        self.values_generated += 2
        return sample

    def _queue(self, items: Sequence[Outgoing]) -> None:
        self._outbox.extend(items)
        if self._wake is not None:
            self._wake.set()

    def _start(self, c: ConnectorSim, session: SessionPlan, now: datetime) -> None:
        c.session, c.delivered_kwh, c.transaction = session, 0.0, str(uuid.uuid4())
        self._set_power(now)
        self._queue([self._status(c, True, now), *self._started(c, self._sample(c, now))])

    def _end(self, c: ConnectorSim, now: datetime, reason: str) -> None:
        assert c.transaction is not None
        c.power_kw = 0.0
        self._queue([*self._ended(c, self._sample(c, now), reason), self._status(c, False, now)])
        self.finished[c.transaction] = c.delivered_kwh
        c.session, c.transaction = None, None
        self._set_power(now)

    def _tick(self) -> None:
        now, sim_s = utc_now(), self._sim_seconds()
        self._advance(now)
        for c in self.connectors:
            if c.session is not None and sim_s >= c.session.departure_s:
                if c.transaction is None:
                    c.session = None  # left before its token was accepted
                else:
                    self._end(c, now, "EVDeparted")
        while self._plans and self._plans[0].arrival_s <= sim_s:
            plan = self._plans.popleft()
            free = [c for c in self.connectors if c.session is None and plan.connector in (None, c.number)]
            if free and sim_s < plan.departure_s:  # a car finding no free connector drives on
                self._arrive(free[0], plan)
        self._set_power(now)
        for c in self.connectors:
            if c.transaction is not None:
                self._queue([self._updated(c, self._sample(c, now))])

    def _arrive(self, c: ConnectorSim, plan: SessionPlan) -> None:
        """A car plugs in: hold the connector, ask the centre about its token, charge once accepted."""
        c.session = plan

        def answered(answer: Any) -> None:
            if c.session is not plan or c.transaction is not None:
                return  # the car left meanwhile
            if self._accepted(answer):
                now = utc_now()
                self._advance(now)
                self._start(c, plan, now)
            else:
                self.rejected_tokens.append(plan.id_token)
                c.session = None

        self._queue([Outgoing(lambda: self._authorize(plan.id_token), on_result=answered)])

    # ---- what the centre may ask (called by the protocol handlers, on the loop) -----------------------
    def add_profile(self, profile: ActiveProfile) -> None:
        now = utc_now()
        self._advance(now)
        self.profiles = [p for p in self.profiles if (p.profile_id, p.purpose) != (profile.profile_id, profile.purpose)]
        self.profiles.append(profile)
        self._set_power(now)

    def clear_profiles(self, *, profile_id: int | None = None, purpose: str | None = None) -> bool:
        """Remove matching profiles (all when no criterion); False when none matched."""
        keep = [
            p
            for p in self.profiles
            if not ((profile_id is None or p.profile_id == profile_id) and purpose in (None, p.purpose))
        ]
        cleared = len(keep) < len(self.profiles)
        now = utc_now()
        self._advance(now)
        self.profiles = keep
        self._set_power(now)
        return cleared

    def remote_start(self, id_token: str, connector: int | None) -> bool:
        """Start charging now for ``id_token`` (until stopped remotely); False when no connector is free."""
        free = [c for c in self.connectors if c.session is None and connector in (None, 0, c.number)]
        if not free:
            return False
        now = utc_now()
        self._advance(now)
        self._start(free[0], SessionPlan(self._sim_seconds(), math.inf, math.inf, id_token), now)
        return True

    def remote_stop(self, transaction: str) -> bool:
        for c in self.connectors:
            if c.transaction is not None and c.transaction == transaction:
                now = utc_now()
                self._advance(now)
                self._end(c, now, "Remote")
                return True
        return False

    def ignores(self, raw: str | bytes) -> bool:
        """True for a call the configuration says to leave unanswered."""
        if not self.config.ignore_actions:
            return False
        with contextlib.suppress(ValueError, TypeError, IndexError):
            frame = json.loads(raw)
            return bool(frame[0] == 2 and frame[2] in self.config.ignore_actions)
        return False

    # ---- running -------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Messages not yet answered by the centre."""
        return len(self._outbox)

    def go_offline(self, seconds: float) -> None:
        """Drop the connection abruptly (as a lost network would) and stay away for ``seconds``."""
        self._offline_until = time.monotonic() + seconds
        if self._ws is not None:
            self._ws.transport.abort()

    def stop(self) -> None:
        """Stop after the outbox is sent (or at once when offline); call on the station's loop."""
        if self._stopping is not None:
            self._stopping.set()
            assert self._wake is not None
            self._wake.set()

    async def run(self) -> None:
        """Simulate and stay connected until :meth:`stop`."""
        self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        self._t0 = time.monotonic()
        physics = asyncio.create_task(self._physics())
        try:
            await self._connection_loop()
        finally:
            physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await physics

    async def _physics(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            self._tick()
            await asyncio.sleep(self.config.meter_period_s)

    def _headers(self) -> dict[str, str]:
        if self.config.password is None:
            return {}
        return {"Authorization": build_authorization_basic(self.config.charger_id, self.config.password)}

    async def _connection_loop(self) -> None:
        assert self._stopping is not None
        backoff = self.config.reconnect_min_s
        while not self._stopping.is_set():
            away = self._offline_until - time.monotonic()
            if away > 0:
                await self._pause(away)
                continue
            try:
                async with connect(
                    self.config.url + quote(self.config.charger_id, safe=""),
                    subprotocols=[Subprotocol(self.subprotocol)],
                    additional_headers=self._headers(),
                    ssl=self.config.tls,
                    compression=None,
                    open_timeout=self.config.response_timeout_s,
                ) as ws:
                    backoff = self.config.reconnect_min_s
                    await self._session(ws)
                    return  # stopped with an empty outbox
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, OCPPError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._stopping.is_set() and self._offline_until <= time.monotonic():
                return  # stopping while the centre is unreachable: give up the backlog
            await self._pause(backoff * (1.0 + 0.5 * random.random()))
            backoff = min(backoff * 2.0, self.config.reconnect_max_s)

    async def _pause(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _session(self, ws: ClientConnection) -> None:
        protocol = self._protocol(ws)
        reader = asyncio.create_task(protocol.start())
        heartbeats: asyncio.Task[None] | None = None
        self._ws, self.online = ws, True
        self.connections += 1
        try:
            if not self.booted:
                answer = await self._call(protocol, reader, Outgoing(self._boot))
                self._heartbeat_s = self.config.heartbeat_s or float(answer.interval)
                self.booted = True
                now = utc_now()
                self._outbox.extendleft(
                    reversed([self._status(c, c.session is not None, now) for c in self.connectors])
                )
            heartbeats = asyncio.create_task(self._heartbeats(protocol, reader))
            await self._send_outbox(protocol, reader)
        finally:
            self._ws, self.online = None, False
            for task in (reader, heartbeats):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task

    async def _call(self, protocol: Any, reader: asyncio.Task[None], item: Outgoing) -> Any:
        """Send one call and wait for its answer, or raise ConnectionClosed as soon as the link drops."""
        # The centre validates every call against the OCPP schemas and answers a bad one with a CALLERROR
        # (kept in ``refused``); validating here too would double the simulator's cost per message.
        call = protocol.call(item.build(), unique_id=item.message_id, suppress=False, skip_schema_validation=True)
        sending = asyncio.create_task(call)
        await asyncio.wait({sending, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            reader.result()  # raises the ConnectionClosed that ended the reader
            raise ConnectionClosed(None, None)
        return sending.result()

    async def _send_outbox(self, protocol: Any, reader: asyncio.Task[None]) -> None:
        assert self._wake is not None and self._stopping is not None
        while True:
            if not self._outbox:
                if self._stopping.is_set():
                    return
                self._wake.clear()
                waiting = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waiting, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if reader.done():
                    reader.result()
                    raise ConnectionClosed(None, None)
                continue
            item = self._outbox[0]
            try:
                result = await self._call(protocol, reader, item)
            except TimeoutError:
                continue  # no answer: send it again (same id) on this connection
            except OCPPError as exc:
                if exc.code == TRANSIENT_ERROR:  # the centre failed to store it: offer it again shortly
                    await self._pause(self.config.reconnect_min_s)
                    continue
                self.refused.append(f"{exc.code}: {exc.description}")
                self._outbox.popleft()  # the centre will never take it as it is; keep the queue moving
                continue
            self._outbox.popleft()
            self.values_acknowledged += item.samples
            if item.on_result is not None:
                item.on_result(result)

    async def _heartbeats(self, protocol: Any, reader: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            with contextlib.suppress(TimeoutError, OCPPError):
                await self._call(protocol, reader, Outgoing(self._heartbeat))


class StationSide(FramingMixin):
    """The station's end of the socket, put before a version's ``ChargePoint`` in the bases: answers the
    centre's calls by asking the simulated station, which may choose to ignore a frame (a station that
    never answers)."""

    def __init__(self, station: SimStation, ws: ClientConnection) -> None:
        super().__init__(station.config.charger_id, ws, response_timeout=station.config.response_timeout_s)  # type: ignore[call-arg]
        self.station = station

    async def route_message(self, raw_msg: str | bytes) -> None:
        if not self.station.ignores(raw_msg):
            await super().route_message(raw_msg)
