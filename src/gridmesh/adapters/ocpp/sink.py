"""Where the centre's OCPP data goes: meter readings and events, behind one small interface.

The centre calls the sink on its event-loop thread *before* it answers the station, so a reading the
station saw acknowledged is stored (a sink that raises makes the centre answer with a CALLERROR and the
station sends the reading again). Plug the historian in by implementing :class:`OcppSink`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MeterRow:
    """One sampled value: ``value`` in ``unit`` (``Wh``, ``W``, ``A``, ``V`` …) at ``ts`` (UTC)."""

    charger_id: str
    connector: int  # OCPP 2.0.1 EVSE id, OCPP 1.6 connector id
    transaction_id: str | None
    ts: datetime
    measurand: str
    value: float
    unit: str
    phase: str | None = None
    context: str | None = None


class EventKind(StrEnum):
    """What happened (string values, so a sink may compare with plain strings)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    BOOT = "boot"
    STATUS = "status"
    TRANSACTION_STARTED = "transaction_started"
    TRANSACTION_ENDED = "transaction_ended"
    AUTHORIZE = "authorize"


@dataclass(frozen=True, slots=True)
class OcppEvent:
    """Something that happened at a station; ``detail`` carries the kind's fields (status, id token …)."""

    kind: EventKind
    charger_id: str
    ts: datetime
    detail: Mapping[str, object] = field(default_factory=dict)


class OcppSink(Protocol):
    """What the centre writes to; called from one thread (the centre's loop), must not block for long."""

    def meter_values(self, rows: Sequence[MeterRow]) -> None: ...

    def event(self, event: OcppEvent) -> None: ...


class MemorySink:
    """Keeps everything in lists (tests, benchmarks); safe to read from other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[MeterRow] = []
        self._events: list[OcppEvent] = []

    def meter_values(self, rows: Sequence[MeterRow]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def event(self, event: OcppEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def rows(self) -> list[MeterRow]:
        with self._lock:
            return list(self._rows)

    @property
    def events(self) -> list[OcppEvent]:
        with self._lock:
            return list(self._events)

    def row_count(self) -> int:
        with self._lock:
            return len(self._rows)
