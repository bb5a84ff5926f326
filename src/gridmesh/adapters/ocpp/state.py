"""What the centre knows about its stations: connections, connector status, transactions, readings.

Both protocol versions feed one :class:`CentreState`; it is changed only on the centre's event-loop
thread, and other threads read consistent copies (``chargers()``, ``transactions()``) under a lock.
Readings are handed to the sink once: a station that lost the answer to a call repeats it with the
same message id, so the answers to each station's last messages are kept and a repeat gets the same
answer without being processed twice (a 1.6 StartTransaction keeps its transaction id).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gridmesh.adapters.ocpp.sink import EventKind, MeterRow, OcppEvent, OcppSink

ENERGY_REGISTER = "Energy.Active.Import.Register"
KEEP_CLOSED = 10_000  # ended transactions kept for queries; older ones live in the sink's events
RECENT_IDS = 256  # message ids remembered per station to drop repeats (a reconnect replays only a few)
_WH_PER_UNIT = {"Wh": 1.0, "kWh": 1000.0}


@dataclass(frozen=True, slots=True)
class ChargerState:
    """A station's connection and the last status of each connector (EVSE in OCPP 2.0.1)."""

    charger_id: str
    connected: bool = False
    version: str | None = None  # "2.0.1" or "1.6" while connected
    vendor: str | None = None
    model: str | None = None
    last_seen: datetime | None = None
    connectors: tuple[tuple[int, str], ...] = ()

    def status(self, connector: int) -> str | None:
        return dict(self.connectors).get(connector)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A charging session; ``energy_kwh`` is the energy register's rise since the start."""

    transaction_id: str
    charger_id: str
    connector: int
    id_token: str | None
    started: datetime
    meter_start_wh: float | None = None
    meter_last_wh: float | None = None
    stopped: datetime | None = None
    stop_reason: str | None = None
    offline_updates: int = 0  # TransactionEvent messages the station queued while offline (2.0.1)

    @property
    def energy_kwh(self) -> float:
        if self.meter_start_wh is None or self.meter_last_wh is None:
            return 0.0
        return (self.meter_last_wh - self.meter_start_wh) / 1000.0


class _Recent:
    """The answers to a station's last messages by message id (bounded, oldest forgotten first)."""

    def __init__(self) -> None:
        self._answers: OrderedDict[str, object] = OrderedDict()

    def get(self, message_id: str) -> object | None:
        return self._answers.get(message_id)

    def put(self, message_id: str, answer: object) -> None:
        self._answers[message_id] = answer
        if len(self._answers) > RECENT_IDS:
            self._answers.popitem(last=False)


def register_wh(rows: Sequence[MeterRow]) -> float | None:
    """The last energy-register reading among ``rows`` in Wh (None when there is none)."""
    for row in reversed(rows):
        if row.measurand == ENERGY_REGISTER and row.unit in _WH_PER_UNIT and row.phase is None:
            return row.value * _WH_PER_UNIT[row.unit]
    return None


class CentreState:
    """Station and transaction records, fed by the protocol handlers; events and readings go to ``sink``."""

    def __init__(self, sink: OcppSink, *, accepted_tokens: Collection[str] | None = None) -> None:
        self.sink = sink
        self.accepted_tokens = None if accepted_tokens is None else frozenset(accepted_tokens)
        self._lock = threading.Lock()
        self._chargers: dict[str, ChargerState] = {}
        self._transactions: dict[tuple[str, str], Transaction] = {}
        self._open: dict[str, dict[int, str]] = {}  # charger → connector → running transaction id
        self._closed: deque[tuple[str, str]] = deque()  # oldest first, forgotten beyond KEEP_CLOSED
        self._recent: dict[str, _Recent] = {}
        self._next_v16_id = itertools.count(1)
        self.rows_stored = 0
        self.repeats_dropped = 0

    # ---- reading (any thread) -------------------------------------------------------------------------
    def chargers(self) -> dict[str, ChargerState]:
        with self._lock:
            return dict(self._chargers)

    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions.values())

    def transaction(self, charger_id: str, transaction_id: str) -> Transaction | None:
        with self._lock:
            return self._transactions.get((charger_id, transaction_id))

    def open_transaction(self, charger_id: str, connector: int | None = None) -> Transaction | None:
        """The station's running transaction (on ``connector`` when given), if any."""
        with self._lock:
            running = self._open.get(charger_id, {})
            tx_id = next(iter(running.values()), None) if connector is None else running.get(connector)
            return None if tx_id is None else self._transactions[(charger_id, tx_id)]

    # ---- writing (the centre's loop thread) -----------------------------------------------------------
    def _charger(self, charger_id: str, **changes: object) -> None:
        with self._lock:
            current = self._chargers.get(charger_id) or ChargerState(charger_id)
            self._chargers[charger_id] = replace(current, last_seen=datetime.now(UTC), **changes)  # type: ignore[arg-type]

    def _event(self, kind: EventKind, charger_id: str, ts: datetime | None = None, **detail: object) -> None:
        self.sink.event(OcppEvent(kind, charger_id, ts or datetime.now(UTC), detail))

    def connected(self, charger_id: str, version: str) -> None:
        self._charger(charger_id, connected=True, version=version)
        self._event(EventKind.CONNECTED, charger_id, version=version)

    def disconnected(self, charger_id: str) -> None:
        self._charger(charger_id, connected=False, version=None)
        self._event(EventKind.DISCONNECTED, charger_id)

    def booted(self, charger_id: str, vendor: str, model: str) -> None:
        self._charger(charger_id, vendor=vendor, model=model)
        self._event(EventKind.BOOT, charger_id, vendor=vendor, model=model)

    def seen(self, charger_id: str) -> None:
        self._charger(charger_id)

    def status(self, charger_id: str, connector: int, status: str, ts: datetime) -> None:
        with self._lock:
            current = self._chargers.get(charger_id) or ChargerState(charger_id)
            connectors = dict(current.connectors)
            connectors[connector] = status
            self._chargers[charger_id] = replace(
                current, connectors=tuple(sorted(connectors.items())), last_seen=datetime.now(UTC)
            )
        self._event(EventKind.STATUS, charger_id, ts, connector=connector, status=status)

    def authorize(self, charger_id: str, id_token: str) -> bool:
        """Whether ``id_token`` may charge: any non-empty token, or only ``accepted_tokens`` when given."""
        ok = bool(id_token) and (self.accepted_tokens is None or id_token in self.accepted_tokens)
        self._event(EventKind.AUTHORIZE, charger_id, id_token=id_token, accepted=ok)
        return ok

    def answered(self, charger_id: str, message_id: str) -> object | None:
        """The answer already given to this message id (a repeat after a reconnect), else None."""
        answer = self._recent.setdefault(charger_id, _Recent()).get(message_id)
        if answer is not None:
            self.repeats_dropped += 1
        return answer

    def remember(self, charger_id: str, message_id: str, answer: object) -> None:
        self._recent.setdefault(charger_id, _Recent()).put(message_id, answer)

    def new_v16_transaction_id(self) -> int:
        """OCPP 1.6 transaction ids are integers chosen by the centre."""
        return next(self._next_v16_id)

    def start_transaction(
        self,
        charger_id: str,
        transaction_id: str,
        *,
        connector: int,
        id_token: str | None,
        ts: datetime,
        meter_start_wh: float | None,
    ) -> Transaction:
        tx = Transaction(transaction_id, charger_id, connector, id_token, ts, meter_start_wh, meter_start_wh)
        with self._lock:
            self._transactions[(charger_id, transaction_id)] = tx
            self._open.setdefault(charger_id, {})[connector] = transaction_id
        self._event(EventKind.TRANSACTION_STARTED, charger_id, ts, transaction_id=transaction_id, connector=connector)
        return tx

    def update_transaction(
        self, charger_id: str, transaction_id: str, *, id_token: str | None = None, offline: bool = False
    ) -> None:
        """Note an update of a running transaction (a token given later, an update sent from the queue)."""
        with self._lock:
            tx = self._transactions.get((charger_id, transaction_id))
            if tx is None:
                return
            self._transactions[(charger_id, transaction_id)] = replace(
                tx, id_token=tx.id_token or id_token, offline_updates=tx.offline_updates + int(offline)
            )

    def meter_values(self, charger_id: str, transaction_id: str | None, rows: Sequence[MeterRow]) -> None:
        """Store ``rows`` (sink first, so a failing sink stores nothing here) and move the transaction's meter."""
        if not rows:
            return
        self.sink.meter_values(rows)
        self.rows_stored += len(rows)
        reading = register_wh(rows)
        if transaction_id is None or reading is None:
            return
        with self._lock:
            tx = self._transactions.get((charger_id, transaction_id))
            if tx is not None:
                start = reading if tx.meter_start_wh is None else tx.meter_start_wh
                self._transactions[(charger_id, transaction_id)] = replace(
                    tx, meter_start_wh=start, meter_last_wh=reading
                )

    def stop_transaction(
        self, charger_id: str, transaction_id: str, *, ts: datetime, meter_stop_wh: float | None, reason: str | None
    ) -> Transaction | None:
        with self._lock:
            tx = self._transactions.get((charger_id, transaction_id))
            if tx is None or tx.stopped is not None:
                return tx
            last = meter_stop_wh if meter_stop_wh is not None else tx.meter_last_wh
            tx = replace(tx, stopped=ts, stop_reason=reason, meter_last_wh=last)
            self._transactions[(charger_id, transaction_id)] = tx
            if self._open.get(charger_id, {}).get(tx.connector) == transaction_id:
                del self._open[charger_id][tx.connector]
            self._closed.append((charger_id, transaction_id))
            while len(self._closed) > KEEP_CLOSED:  # ended ones went to the sink as events; keep memory flat
                self._transactions.pop(self._closed.popleft(), None)
        self._event(
            EventKind.TRANSACTION_ENDED,
            charger_id,
            ts,
            transaction_id=transaction_id,
            energy_kwh=tx.energy_kwh,
            reason=reason,
        )
        return tx
