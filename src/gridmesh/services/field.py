"""The field simulator: the scenario's devices playing live, publishing signed telemetry, obeying commands.

``gridmesh run`` starts it beside the centre on the in-process bus; ``gridmesh field`` runs it alone
against an MQTT broker. It plays every device of :func:`~gridmesh.telemetry.catalogue.catalogue_of`.

Time. The simulated clock runs ``speed`` × wall time from ``start`` (default: the scenario's start; pass
the platform clock's present instant to agree with a centre on :class:`~gridmesh.services.clock.SimClock`).
Telemetry ``ts`` is this simulated time in UTC nanoseconds; command expiry is judged against it.

Ticks. Every tick (``tick_s`` of wall time in the background thread, or one :meth:`FieldSimulator.step`)
applies the commands received since the last tick, solves one power flow of the whole network at the
present instant (:class:`~gridmesh.services.field_grid.FieldGrid`) and publishes the devices whose
reporting instant fell in the elapsed interval. Each kind reports every ``periods[kind]`` simulated
seconds (:data:`DEFAULT_PERIODS`), devices spread evenly over the period so traffic is smooth: over any
interval of one period every device reports exactly once.

Messages (all signed with the device's key, one sequence counter per device across channels, persisted
by :class:`~gridmesh.services.field_seq.SeqStore`):

* ``telemetry``: an :class:`Envelope` with the readings of ``REPORTS[kind]`` (see
  :mod:`~gridmesh.services.field_readings` for units and signs), quality good;
* ``event``: a meter whose bus loses supply sends ``last-gasp`` once and falls silent; when supply
  returns it sends ``power-restored`` and reports again;
* ``ack``: the answer to every command (ok, or refused with the reason — see
  :mod:`~gridmesh.services.field_commands`), at the tick that executes it.

Faults (:mod:`~gridmesh.services.field_faults`, ``docs/faults.md``). :meth:`FieldSimulator.inject` and
:meth:`FieldSimulator.repair`, or a :class:`~gridmesh.telemetry.envelope.FaultOrder` signed by the centre's
command key on the gateway's topic ``gridmesh/v1/grid/field-gateway/command``, put a fault into the twin
and take it out. Protection acts on the simulated clock: each step is a signed event of the switch's
device (``trip``, ``reclose``, ``reclose-success``, ``lockout``; ``fault-passage`` from every FPI that
saw the fault, whose ``FltInd`` reads 1 until the repair), stamped with the instant it happened. The
gateway answers each order with an :class:`Ack` (``command_seq`` = the order's ``seq``) on
``gridmesh/v1/grid/field-gateway/ack``, signed with the key the field keyring holds for
``field-gateway`` if it holds one, else unsigned (see :class:`~gridmesh.services.field_commands.FaultOrderDesk`).

Online state. The simulator is ONE gateway connection to the broker. Its retained state topic
``gridmesh/v1/grid/field-gateway/state`` carries ``{"device": "field-gateway", "online": ..., "ts": ...}``;
:meth:`FieldSimulator.will` is the offline payload for the MQTT adapter's last will, so the broker marks
the gateway offline when the connection dies. Each device also has a retained ``state`` message
``{"device": id, "online": bool, "ts": ns}`` (a meter without supply is offline, with ``"reason":
"last-gasp"``). A device is online when its own state AND the gateway's say so.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import msgspec
import numpy as np

from gridmesh.model.scenario import Scenario
from gridmesh.physics.powerflow import FloatArray
from gridmesh.physics.protection import ProtectionResponse, ProtectionSettings
from gridmesh.physics.short_circuit import Fault
from gridmesh.security.keys import DeviceCredential, DeviceSecret, FieldKeyring
from gridmesh.security.signing import sign
from gridmesh.services.bus import Bus, Message
from gridmesh.services.field_commands import CommandDesk, FaultOrderDesk
from gridmesh.services.field_faults import FaultBook, Notice
from gridmesh.services.field_grid import BoolArray, FieldGrid, GridState
from gridmesh.services.field_readings import KindTable, kind_tables
from gridmesh.services.field_seq import SeqStore
from gridmesh.telemetry.catalogue import GRID_SITE, DeviceKind, catalogue_of
from gridmesh.telemetry.envelope import (
    TOPIC_ROOT,
    Ack,
    Command,
    Envelope,
    Event,
    Presence,
    Reading,
    encode,
    parse_topic,
    topic,
)

log = logging.getLogger(__name__)

GATEWAY = "field-gateway"
GATEWAY_STATE_TOPIC = topic(GRID_SITE, GATEWAY, "state")
GATEWAY_COMMAND_TOPIC = topic(GRID_SITE, GATEWAY, "command")  # fault orders (simulation control)
GATEWAY_ACK_TOPIC = topic(GRID_SITE, GATEWAY, "ack")
DEFAULT_PERIODS: Mapping[DeviceKind, float] = {
    DeviceKind.SUBSTATION: 60.0,
    DeviceKind.TRANSFORMER_MONITOR: 60.0,
    DeviceKind.SWITCH: 60.0,
    DeviceKind.BATTERY: 60.0,
    DeviceKind.EVSE: 60.0,
    DeviceKind.INVERTER: 300.0,
    DeviceKind.METER: 900.0,
}
TICK_S = 0.2  # wall seconds between ticks of the background thread
NS_PER_S = 1_000_000_000
M = TypeVar("M", Envelope, Event, Ack)


@dataclass
class TickReport:
    """What one tick did: the simulated instant and the messages published per channel."""

    when: datetime
    telemetry: int = 0
    readings: int = 0
    events: int = 0
    acks: int = 0
    failed: bool = False  # the power flow failed: no telemetry or events this tick
    by_kind: dict[DeviceKind, int] = field(default_factory=dict)


@dataclass
class FieldStats:
    """Running totals since construction, for status displays and benchmarks."""

    ticks: int = 0
    messages: int = 0  # signed messages published (telemetry, events, acks)
    readings: int = 0
    tick_seconds: float = 0.0  # wall time spent in ticks
    slowest_tick_s: float = 0.0
    failed_ticks: int = 0


def _utc_ns(when: datetime) -> int:
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def gateway_will(ts_ns: int) -> tuple[str, bytes]:
    """The field gateway's last will (topic, payload): every device behind it offline."""
    return GATEWAY_STATE_TOPIC, msgspec.json.encode(Presence(GATEWAY, False, ts_ns, "connection lost"))


class FieldSimulator:
    """Plays the scenario's devices on ``bus``; :meth:`start`/:meth:`stop` live, :meth:`step` for tests."""

    def __init__(
        self,
        scenario: Scenario,
        bus: Bus,
        keyring: FieldKeyring,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        periods: Mapping[DeviceKind, float] | None = None,
        noise: float = 0.002,
        seed: int = 7,
        clock: Callable[[], float] = time.monotonic,
        data_dir: Path | None = None,
        tick_s: float = TICK_S,
        protection: ProtectionSettings | None = None,
        exclude: Collection[str] = (),
        agents: Mapping[str, DeviceCredential] | None = None,
    ) -> None:
        """``exclude``: devices played by something else (a real device behind a gateway): not simulated;
        ``agents``: microgrid → its edge agent's public key: the devices of that site also obey commands
        signed by it (``edge-public.json``)."""
        if not speed > 0 or not tick_s > 0 or not noise >= 0:
            raise ValueError(f"need speed > 0, tick_s > 0 and noise ≥ 0; got {speed}, {tick_s}, {noise}")
        period_of = {**DEFAULT_PERIODS, **(periods or {})}
        if any(not p > 0 for p in period_of.values()):
            raise ValueError(f"reporting periods must be positive seconds, got {dict(period_of)}")
        self.scenario, self.bus, self.speed, self.noise, self.tick_s = scenario, bus, speed, noise, tick_s
        self.catalogue = catalogue_of(scenario.network)
        devices = [d for d in self.catalogue.devices.values() if d.id not in exclude]
        missing = [d.id for d in devices if d.id not in keyring.secrets]
        if missing:
            raise ValueError(
                f"the field keyring has no key for {len(missing)} device(s) (first: {missing[0]}); provision keys "
                "for this scenario (gridmesh.security.keys.ensure_keyrings) before starting the simulator"
            )
        self._secrets: list[DeviceSecret] = [keyring.secrets[d.id] for d in devices]
        self._row = {d.id: i for i, d in enumerate(devices)}
        self._topics = [{ch: topic(d.site, d.id, ch) for ch in ("telemetry", "event", "ack", "state")} for d in devices]
        self.grid = FieldGrid(scenario, seed=seed)
        self.tables: dict[DeviceKind, KindTable] = kind_tables(scenario.network, self.grid.engine.index, devices)
        self.faults = FaultBook(self.grid, settings=protection)
        centre = keyring.centre_credential
        self._desk = CommandDesk(self.grid, self.catalogue.devices, centre, interlock=self.faults, agents=agents)
        self._orders = FaultOrderDesk(self.faults, GATEWAY, centre, keyring.secrets.get(GATEWAY))
        self.seqs = SeqStore([*(d.id for d in devices), GATEWAY], data_dir)  # the gateway's answers last
        self._gateway_row = np.array([len(devices)], dtype=np.int64)
        self._switch_devices = self.catalogue.by_element(DeviceKind.SWITCH)
        self._period = np.array([period_of[d.kind] for d in devices])
        self._offset = np.zeros(len(devices))
        for table in self.tables.values():  # spread each kind evenly over its period
            n = len(table.rows)
            self._offset[table.rows] = self._period[table.rows] * np.arange(n) / n
        self._rng = np.random.default_rng(seed)
        first = start or scenario.time.start
        self.start_time = first.astimezone(UTC).replace(tzinfo=None) if first.tzinfo else first
        self._clock = clock
        self._start_ns = _utc_ns(self.start_time)
        self.elapsed_s = 0.0
        meters = self.tables.get(DeviceKind.METER)
        # Meters without supply from the outset never had power to speak; they start offline, silently.
        self._dark = ~self.grid.energized_bus[meters.bus] if meters is not None else np.zeros(0, dtype=bool)
        self.last_state: GridState | None = None  # the last tick's power flow (e.g. a site's load for its VEN)
        # Consumption shed per load now (kW, power-flow order), asked before every power flow: how the
        # sites' demand-response answers reach the grid (see services.dr_service.SiteDemand).
        self.load_shed: Callable[[], FloatArray] | None = None
        self._pending: list[tuple[str, Command | None, str]] = []
        self._lock, self._tick_lock = threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced = False
        self.failure: BaseException | None = None
        self.stats = FieldStats()
        self._decoder = msgspec.json.Decoder(Command)
        bus.subscribe(f"{TOPIC_ROOT}/+/+/command", self._on_commands)

    # -- clock ---------------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The simulated instant of the last tick (naive, UTC)."""
        return self.start_time + timedelta(seconds=self.elapsed_s)

    def now_ns(self) -> int:
        return self._start_ns + round(self.elapsed_s * NS_PER_S)

    # -- lifecycle -----------------------------------------------------------------------------------
    def will(self) -> tuple[str, bytes]:
        """The gateway's last will (topic, payload) for the MQTT adapter: every device behind it offline."""
        return gateway_will(self._start_ns)

    def start(self) -> None:
        """Announce the devices online and tick in a background thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the field simulator is already running")
        self._announce()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="field-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking, save the sequence numbers and mark the gateway offline (retained)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        with self._tick_lock:
            self.seqs.save()
            if self._announced:
                self.bus.publish(
                    GATEWAY_STATE_TOPIC,
                    msgspec.json.encode(Presence(GATEWAY, False, self.now_ns(), "stopped")),
                    retain=True,
                )
                self._announced = False
        if self.failure is not None:
            raise RuntimeError(f"the field simulator stopped on an error: {self.failure}") from self.failure

    def step(self, sim_seconds: float) -> TickReport:
        """Advance the simulated clock by ``sim_seconds`` and run one tick (no thread; for tests and tools)."""
        if self._thread is not None:
            raise RuntimeError("step() drives a stopped simulator; call stop() first")
        if sim_seconds < 0:
            raise ValueError(f"simulated time only moves forward, got {sim_seconds} s")
        self._announce()
        return self._tick(self.elapsed_s + sim_seconds)

    def _run(self) -> None:
        wall0, elapsed0 = self._clock(), self.elapsed_s
        while not self._stop.wait(self.tick_s):
            try:
                self._tick(elapsed0 + (self._clock() - wall0) * self.speed)
            except Exception as exc:  # a dead simulator must say so, not go quiet
                log.exception("field simulator tick failed; stopping")
                self.failure = exc
                return

    # -- faults --------------------------------------------------------------------------------------
    def inject(self, fault_id: str, fault: Fault) -> ProtectionResponse:
        """Put ``fault`` into the twin now, on the present topology; protection acts from the next tick.

        Raises:
            FaultError: an unknown element, an id already in use, or a device already in a sequence.
        """
        with self._tick_lock:
            return self.faults.inject(fault_id, fault, self.now_ns())

    def repair(self, fault_id: str) -> None:
        """Take a fault out of the twin (lockouts and FPIs reset; opened switches stay open)."""
        with self._tick_lock:
            self.faults.repair(fault_id)

    def _gateway_seq(self) -> int:
        return int(self.seqs.take(self._gateway_row)[0])

    def _protection_events(self, outbox: _Outbox) -> int:
        """Signed events of the protection steps taken since the last tick, and of the closings that
        synchronised a live island onto the grid (``resync``; switches with a device)."""
        switches = self._switch_devices
        notices = self.faults.take_notices() + [
            Notice(self.now_ns(), s.switch, "resync", s.detail) for s in self.grid.take_synchronised()
        ]
        for notice in notices:
            spec = switches.get(notice.switch)
            if spec is None:
                log.info("%s of %s (no device to report it): %s", notice.kind, notice.switch, notice.detail)
                continue
            outbox.add(self._row[spec.id], "event", Event(spec.id, 0, notice.ts_ns, notice.kind, notice.detail))
        self.grid.fault_indicated = self.faults.indicated
        return sum(n.switch in switches for n in notices)

    # -- commands ------------------------------------------------------------------------------------
    def _on_commands(self, batch: Sequence[Message]) -> None:
        """Bus handler: queue each command (or fault order) for the next tick (judged and answered there)."""
        received: list[tuple[str, Command | None, str]] = []
        for message in batch:
            if message.topic == GATEWAY_COMMAND_TOPIC:
                self._orders.receive(message.payload)
                continue
            parsed = parse_topic(message.topic)
            if parsed is None or parsed[1] not in self._row:
                log.warning("command on %s ignored: no such device in this simulator", message.topic)
                continue
            try:
                received.append((parsed[1], self._decoder.decode(message.payload), ""))
            except msgspec.DecodeError as exc:
                received.append((parsed[1], None, f"malformed command: {exc}"))
        with self._lock:
            self._pending.extend(received)

    def _execute_commands(self, now_ns: int) -> list[Ack]:
        """Judge and apply the queued commands in arrival order; one (unnumbered, unsigned) ack each."""
        with self._lock:
            pending, self._pending = self._pending, []
        acks = []
        for device, command, problem in pending:
            if command is None:
                reason, command_seq = problem, 0
            else:
                reason, command_seq = self._desk.execute(command, device, now_ns), command.seq
            if reason:
                log.info("command to %s refused: %s", device, reason)
            acks.append(Ack(device, 0, now_ns, command_seq, ok=not reason, reason=reason))
        return acks

    # -- the tick ------------------------------------------------------------------------------------
    def _tick(self, elapsed_s: float) -> TickReport:
        """Commands, one power flow, then every message due; sequence numbers saved before publishing."""
        with self._tick_lock:
            began = time.perf_counter()
            previous, self.elapsed_s = self.elapsed_s, elapsed_s
            now_ns, report = self.now_ns(), TickReport(self.now)
            outbox = _Outbox(self.seqs, self._secrets)
            self.faults.advance(now_ns)  # protection steps up to now, then orders and commands given now
            answers = self._orders.execute(now_ns, self._gateway_seq)
            for ack in self._execute_commands(now_ns):
                outbox.add(self._row[ack.device], "ack", ack)
            report.acks = len(outbox.messages) + len(answers)
            report.events += self._protection_events(outbox)
            if self.load_shed is not None:
                self.grid.load_shed_kw = self.load_shed()
            state = self.grid.advance(self.now, elapsed_s - previous)
            self.last_state = state
            report.failed = state.failed
            if state.failed:
                log.warning("power flow failed at %s (%s); no telemetry this tick", self.now, state.flow.failed)
            else:
                self._supply_events(state, now_ns, outbox, report)
                due = np.floor((elapsed_s - self._offset) / self._period) > np.floor(
                    (previous - self._offset) / self._period
                )
                for table in self.tables.values():
                    self._telemetry(table, due[table.rows], state, now_ns, outbox, report)
            self.seqs.save()
            for answer in answers:
                self.bus.publish(GATEWAY_ACK_TOPIC, answer)
            for row, channel, payload in outbox.messages:
                self.bus.publish(self._topics[row][channel], payload)
            for row, online, reason in outbox.states:
                self._state(row, online=online, ts=now_ns, reason=reason)
            took = time.perf_counter() - began
            stats = self.stats
            stats.ticks += 1
            stats.messages += len(outbox.messages) + len(answers)
            stats.readings += report.readings
            stats.tick_seconds += took
            stats.slowest_tick_s = max(stats.slowest_tick_s, took)
            stats.failed_ticks += report.failed
            return report

    def _supply_events(self, state: GridState, now_ns: int, outbox: _Outbox, report: TickReport) -> None:
        """Last gasp of meters that lost supply, power-restored of those that got it back."""
        meters = self.tables.get(DeviceKind.METER)
        if meters is None:
            return
        live = state.flow.energized[0][meters.bus]
        for k in np.flatnonzero(live == self._dark):  # dark and live again, or lit and now dead
            spec, row = meters.devices[k], int(meters.rows[k])
            restored = bool(live[k])
            kind = "power-restored" if restored else "last-gasp"
            outbox.add(row, "event", Event(spec.id, 0, now_ns, kind, {"bus": spec.bus}))
            outbox.states.append((row, restored, "" if restored else "last-gasp"))
            report.events += 1
        self._dark = ~live

    def _telemetry(
        self, table: KindTable, due: BoolArray, state: GridState, now_ns: int, outbox: _Outbox, report: TickReport
    ) -> None:
        """Envelopes of the due devices of one kind (meters without supply stay silent)."""
        if table.kind is DeviceKind.METER:
            due = due & ~self._dark
        picked = np.flatnonzero(due)
        if not picked.size:
            return
        values = table.with_noise(table.values(state)[picked], self.noise, self._rng).tolist()
        rows = table.rows[picked]
        readings = 0
        for k, row, seq, row_values in zip(
            picked.tolist(), rows.tolist(), self.seqs.take(rows).tolist(), values, strict=True
        ):
            spec = table.devices[k]
            body = [Reading(q, v) for q, v in zip(spec.reports, row_values, strict=False) if not math.isnan(v)]
            readings += len(body)
            outbox.add(row, "telemetry", Envelope(spec.id, seq, now_ns, body), seq)
        report.telemetry += len(rows)
        report.readings += readings
        report.by_kind[table.kind] = len(rows)

    # -- online state --------------------------------------------------------------------------------
    def _state(self, row: int, *, online: bool, ts: int, reason: str = "") -> None:
        device = self._secrets[row].device
        payload = msgspec.json.encode(Presence(device, online, ts, reason))
        self.bus.publish(self._topics[row]["state"], payload, retain=True)

    def _announce(self) -> None:
        """Retained online states: the gateway's, then every device's (meters without supply offline)."""
        if self._announced:
            return
        ts = self.now_ns()
        self.bus.publish(GATEWAY_STATE_TOPIC, msgspec.json.encode(Presence(GATEWAY, True, ts)), retain=True)
        meters = self.tables.get(DeviceKind.METER)
        dark = set(meters.rows[self._dark].tolist()) if meters is not None else set()
        for row in range(len(self._secrets)):
            self._state(row, online=row not in dark, ts=ts, reason="no supply" if row in dark else "")
        self._announced = True


class _Outbox:
    """The signed messages of one tick, published only after their sequence numbers are saved."""

    def __init__(self, seqs: SeqStore, secrets: Sequence[DeviceSecret]) -> None:
        self.seqs, self.secrets = seqs, secrets
        self.messages: list[tuple[int, str, bytes]] = []
        self.states: list[tuple[int, bool, str]] = []  # retained online states (unsigned)

    def add(self, row: int, channel: str, message: M, seq: int | None = None) -> None:
        """Number (the device's next seq unless given), sign with the device's key and queue."""
        if seq is None:
            seq = int(self.seqs.take(np.array([row], dtype=np.int64))[0])
        signed = sign(msgspec.structs.replace(message, seq=seq), self.secrets[row])
        self.messages.append((row, channel, encode(signed)))
