"""Faults in the live twin, on an operator's order: inject, remember, repair.

In ``gridmesh run`` the field is a simulator, and engineers test the self-healing by putting a fault
into it. The order is checked here (the element exists, the fault type is one IEC 60909 knows), signed
with the centre's key like a command and sent to the field gateway. The fault passage indicators that
devices report are latched here until the repair; the repair order also opens a FLISR case that puts
the grid back into its normal configuration.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gridmesh.errors import CentreError, NotFound
from gridmesh.model.network import Network
from gridmesh.physics.short_circuit import FaultType
from gridmesh.security.keys import CentreKeyring
from gridmesh.security.signing import sign
from gridmesh.services.bus import Bus
from gridmesh.services.field import GATEWAY
from gridmesh.services.historian.base import StoredEvent
from gridmesh.telemetry.catalogue import GRID_SITE
from gridmesh.telemetry.envelope import FaultOrder, encode, topic

TABLES = ("buses", "lines")


@dataclass(frozen=True)
class FaultRecord:
    id: str
    element: str
    table: str
    fault_type: str
    permanent: bool
    position: float | None
    injected_ns: int
    injected_by: str
    repaired_ns: int | None = None
    repaired_by: str | None = None


class FaultDesk:
    """Checks, signs and sends fault orders; latches fault passage indications until the repair."""

    def __init__(
        self,
        network: Network,
        keyring: CentreKeyring,
        bus: Bus,
        *,
        clock: Callable[[], int],
        on_event: Callable[[Sequence[StoredEvent]], None],
    ) -> None:
        self.network, self.keyring, self.bus, self.clock, self.on_event = network, keyring, bus, clock, on_event
        self._seq = itertools.count(time.time_ns() // 1_000)
        self._faults: dict[str, FaultRecord] = {}
        self._passages: set[str] = set()
        self._lock = threading.Lock()

    def inject(
        self, element: str, table: str, fault_type: str, *, permanent: bool, position: float | None, user: str
    ) -> FaultRecord:
        if table not in TABLES:
            raise CentreError(f"faults go on buses or lines, not {table!r}", f"use one of {', '.join(TABLES)}")
        if element not in self.network.table(table):
            raise NotFound(f"no {table[:-1]} {element!r} in {self.network.name}", "list them with GET /api/v1/network")
        if fault_type not in {t.value for t in FaultType}:
            raise CentreError(
                f"impossible fault type {fault_type!r}", f"use one of {', '.join(t.value for t in FaultType)}"
            )
        if position is not None and (table != "lines" or not (math.isfinite(position) and 0 <= position <= 1)):
            raise CentreError(f"position {position} is not a fraction 0…1 along a line", "omit it for a bus fault")
        now = self.clock()
        record = FaultRecord(f"F{next(self._seq)}", element, table, fault_type, permanent, position, now, user)
        self._send(
            FaultOrder(
                GATEWAY, next(self._seq), now, "inject", record.id, element, table, fault_type, position, permanent
            )
        )
        with self._lock:
            self._faults[record.id] = record
        kind = "permanent" if permanent else "temporary"
        self._log(record, f"{kind} {fault_type} fault injected on {table[:-1]} {element} by {user}")
        return record

    def repair(self, fault_id: str, user: str) -> FaultRecord:
        with self._lock:
            record = self._faults.get(fault_id)
        if record is None:
            raise NotFound(f"unknown fault {fault_id!r}", "list faults with GET /api/v1/faults")
        if record.repaired_ns is not None:
            raise CentreError(f"fault {fault_id} was already repaired", "nothing to do")
        now = self.clock()
        self._send(FaultOrder(GATEWAY, next(self._seq), now, "repair", fault_id, record.element, record.table))
        repaired = replace(record, repaired_ns=now, repaired_by=user)
        with self._lock:
            self._faults[fault_id] = repaired
            self._passages.clear()
        self._log(repaired, f"fault {fault_id} on {record.element} repaired ({user})")
        return repaired

    def passage(self, switch: str) -> None:
        with self._lock:
            self._passages.add(switch)

    def indications(self) -> set[str]:
        with self._lock:
            return set(self._passages)

    def faults(self) -> list[FaultRecord]:
        with self._lock:
            return sorted(self._faults.values(), key=lambda f: f.injected_ns, reverse=True)

    def _send(self, order: FaultOrder) -> None:
        signed = sign(order, self.keyring.command_secret)
        self.bus.publish(topic(GRID_SITE, GATEWAY, "command"), encode(signed))

    def _log(self, record: FaultRecord, message: str) -> None:
        data = {"fault": record.id, "element": record.element, "table": record.table, "type": record.fault_type}
        self.on_event([StoredEvent(self.clock(), "fault", record.element, message, "major", data)])
