"""Faults in the live twin: the faults present, their protection sequences on the simulated clock, FPI latches.

A fault put into the twin is solved at once on the PRESENT topology (IEC 60909 currents,
:func:`~gridmesh.physics.protection.protection_response`): the fault passage indicators that saw it latch
at inception and the sequence of the device that trips (trip, reclose…, success or lockout) is scheduled
in simulated nanoseconds. :meth:`FaultBook.advance` applies every step due by a tick's instant, in time
order, so several steps that fall into one tick at high speed are all applied, and the power flow of the
tick sees the end state (an outage shorter than a tick is not seen by the meters, as a meter that filters
momentary interruptions would not report it).

Rules the switch commands meet (:meth:`FaultBook.refuse`, called by the command desk):

* a switch whose reclose sequence runs takes no command until the sequence ends;
* a switch locked out by a permanent fault refuses ``close`` while closing it would re-energise that fault
  (:data:`LOCKED_OUT`); once the fault is repaired, or isolated by opening a switch between them (what a
  FLISR plan does before it recloses the tripped device), the close is accepted and resets the lockout;
* any accepted close that re-energises a permanent fault still present makes the nearest upstream
  protective device trip at once and lock out (no reclosing onto a known fault), so a wrong restoration
  plan shows as a new trip.

A temporary fault is gone at its first reclose, or when a device that does not reclose has cleared it;
a blown fuse is replaced by the repair. FPIs stay latched (``FltInd`` 1) until the fault is repaired.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from gridmesh.model.graph import branch_end_open, connectivity
from gridmesh.model.kinds import SwitchKind
from gridmesh.physics.protection import (
    Action,
    ProtectionEvent,
    ProtectionResponse,
    ProtectionSettings,
    protection_response,
)
from gridmesh.physics.short_circuit import Fault, FaultError, ShortCircuit
from gridmesh.services.field_grid import FieldGrid

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
LOCKED_OUT = "locked out after a permanent fault; repair the fault first"
EVENT_KIND: Mapping[Action, str] = {
    Action.TRIP: "trip",
    Action.RECLOSE: "reclose",
    Action.SUCCESS: "reclose-success",
    Action.LOCKOUT: "lockout",
    Action.FPI: "fault-passage",
}
"""The kind of the signed ``Event`` a switch device publishes for each protection step."""

Detail = dict[str, str | float | int | bool]


@dataclass(frozen=True)
class Notice:
    """A protection step for the switch's device to publish as a signed event at ``ts_ns``."""

    ts_ns: int
    switch: str
    kind: str
    detail: Detail


@dataclass
class ActiveFault:
    """A fault in the twin. ``present``: still on the network (a temporary fault goes when cleared)."""

    fault_id: str
    fault: Fault
    inception_ns: int
    present: bool = True


@dataclass(frozen=True, order=True)
class _Step:
    at_ns: int
    order: int
    fault_id: str = field(compare=False)
    event: ProtectionEvent = field(compare=False)


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


class FaultBook:
    """The faults of one simulator's grid and what protection does about them (call under the tick lock)."""

    def __init__(self, grid: FieldGrid, *, settings: ProtectionSettings | None = None) -> None:
        self.grid = grid
        self.settings = settings or ProtectionSettings()
        self._faults: dict[str, ActiveFault] = {}
        self._steps: list[_Step] = []  # a heap on (time, order of scheduling)
        self._order = itertools.count()
        self._busy: dict[str, str] = {}  # switch → fault whose sequence runs on it
        self._locked: dict[str, str] = {}  # switch → fault it locked out on
        self._latched: dict[str, set[str]] = {}  # switch → faults its FPI indicated
        self._notices: list[Notice] = []
        self._model: ShortCircuit | None = None

    # -- state --------------------------------------------------------------------------------------
    @property
    def faults(self) -> dict[str, ActiveFault]:
        """The faults in the twin by id (a copy), until repaired."""
        return dict(self._faults)

    @property
    def locked_out(self) -> dict[str, str]:
        """Switch → id of the fault it is locked out on."""
        return dict(self._locked)

    @property
    def indicated(self) -> frozenset[str]:
        """Switches whose fault passage indicator is latched (``FltInd`` 1)."""
        return frozenset(s for s, faults in self._latched.items() if faults)

    def take_notices(self) -> list[Notice]:
        """The protection steps applied since the last call, in the order they happened."""
        notices, self._notices = self._notices, []
        return notices

    # -- faults -------------------------------------------------------------------------------------
    def inject(self, fault_id: str, fault: Fault, now_ns: int) -> ProtectionResponse:
        """Put ``fault`` into the twin at ``now_ns``: latch FPIs, schedule the protection sequence.

        Raises:
            FaultError: the id is empty or in use, the element is unknown, or the tripping device is
                already running a sequence for another fault.
        """
        if not fault_id:
            raise FaultError(fault.element, "fault_id", "is empty", "name the fault so that it can be repaired")
        if fault_id in self._faults:
            raise FaultError(fault.element, "fault_id", f"{fault_id!r} is already in the twin", "repair it first")
        response = self._respond(fault)
        if response.tripped in self._busy:
            other = self._busy[response.tripped]
            raise FaultError(
                fault.element,
                "fault",
                f"{response.tripped} is running its reclose sequence for fault {other!r}",
                "inject after that sequence ends",
            )
        self._faults[fault_id] = ActiveFault(fault_id, fault, now_ns)
        self._faults_changed()
        self._latch(fault_id, response, now_ns)
        if response.tripped is not None:
            self._busy[response.tripped] = fault_id
        for event in response.events:
            if event.action is not Action.FPI:
                heapq.heappush(self._steps, _Step(now_ns + _ns(event.t_s), next(self._order), fault_id, event))
        log.info("fault %s on %s (%s): %s", fault_id, fault.element, fault.fault_type.value, response.note)
        return response

    def repair(self, fault_id: str) -> None:
        """Take a fault out of the twin: its pending steps are dropped, lockouts and FPIs reset, blown fuses
        replaced. Opened switches stay open: closing them is the operator's (or FLISR's) decision."""
        if fault_id not in self._faults:
            known = ", ".join(sorted(self._faults)) or "none"
            raise FaultError(fault_id, "fault_id", "is not in the twin", f"repair one of the faults present ({known})")
        del self._faults[fault_id]
        self._faults_changed()
        self._steps = [s for s in self._steps if s.fault_id != fault_id]
        heapq.heapify(self._steps)
        self._busy = {s: f for s, f in self._busy.items() if f != fault_id}
        for switch in [s for s, f in self._locked.items() if f == fault_id]:
            del self._locked[switch]
            if self.grid.network.switches[switch].kind is SwitchKind.FUSE:
                self.grid.set_switch(switch, True)
        for faults in self._latched.values():
            faults.discard(fault_id)
        log.info("fault %s repaired", fault_id)

    def advance(self, now_ns: int) -> None:
        """Apply every protection step due by ``now_ns``, in time order."""
        while self._steps and self._steps[0].at_ns <= now_ns:
            step = heapq.heappop(self._steps)
            self._apply(step)

    def _apply(self, step: _Step) -> None:
        event, active = step.event, self._faults[step.fault_id]
        switch = event.switch
        if event.action is Action.TRIP:
            self.grid.set_switch(switch, False)
        elif event.action is Action.RECLOSE:
            self.grid.set_switch(switch, True)
        elif event.action is Action.SUCCESS:
            active.present = False
            self._faults_changed()
            self._busy.pop(switch, None)
        elif event.action is Action.LOCKOUT:
            self._busy.pop(switch, None)
            if active.fault.permanent or self.grid.network.switches[switch].kind is SwitchKind.FUSE:
                self._locked[switch] = step.fault_id
            if not active.fault.permanent:
                active.present = False  # cleared by a device that does not reclose: gone while dead
                self._faults_changed()
        self._notice(step.at_ns, switch, event, step.fault_id)

    def _faults_changed(self) -> None:
        self.grid.set_faults(a.fault for a in self._faults.values() if a.present)

    # -- switch commands ----------------------------------------------------------------------------
    def refuse(self, switch: str, close: bool) -> str:
        """Why a command to ``switch`` must be refused now, or ``""``."""
        if switch in self._busy:
            return f"reclose sequence in progress after fault {self._busy[switch]}; wait for it to succeed or lock out"
        if close and switch in self._locked:
            active = self._faults[self._locked[switch]]
            if active.present and self._live(active.fault, {switch: True}):
                return LOCKED_OUT
        return ""

    def operated(self, switch: str, closed: bool, now_ns: int) -> None:
        """A command changed ``switch``: a close resets its lockout (the fault was isolated) and trips the
        nearest protection again if it re-energised a fault still present."""
        if not closed:
            return
        self._locked.pop(switch, None)
        for fault_id, active in list(self._faults.items()):
            if not (active.present and active.fault.permanent) or fault_id in self._busy.values():
                continue
            if self._live(active.fault) and not self._live(active.fault, {switch: False}):
                self._closed_onto(fault_id, active.fault, switch, now_ns)

    def _closed_onto(self, fault_id: str, fault: Fault, closed: str, now_ns: int) -> None:
        """Closing ``closed`` re-energised ``fault``: the device that picks up trips at once and locks out."""
        response = self._respond(fault)
        self._latch(fault_id, response, now_ns)
        if response.tripped is None:
            log.warning("closing %s re-energised fault %s and nothing trips: %s", closed, fault_id, response.note)
            return
        trip_s = self.settings.recloser.trip_time_s
        self.grid.set_switch(response.tripped, False)
        self._locked[response.tripped] = fault_id
        why = f"closing {closed} re-energised a permanent fault"
        for action in (Action.TRIP, Action.LOCKOUT):
            event = ProtectionEvent(trip_s, response.tripped, action, why)
            self._notice(now_ns + _ns(trip_s), response.tripped, event, fault_id)

    # -- helpers ------------------------------------------------------------------------------------
    def _respond(self, fault: Fault) -> ProtectionResponse:
        """Currents and protection response on the present topology (the short-circuit model is rebuilt
        only after the topology changed)."""
        network = self.grid.network
        if self._model is None or self._model.network is not network:
            self._model = ShortCircuit(network)
        return protection_response(network, fault, self._model.currents([fault]), settings=self.settings)

    def _live(self, fault: Fault, switch_states: Mapping[str, bool] | None = None) -> bool:
        """Whether a source reaches the fault location with the present (or overridden) switch states."""
        network = self.grid.network
        conn = connectivity(network, switch_states=switch_states)
        live = dict(zip(conn.bus_ids, conn.energized.tolist(), strict=True))
        if fault.table == "buses":
            return bool(live[fault.element])
        line = network.lines[fault.element]
        opened = branch_end_open(network, switch_states)
        return any(live[end] and (line.id, end) not in opened for end in (line.from_bus, line.to_bus))

    def _latch(self, fault_id: str, response: ProtectionResponse, now_ns: int) -> None:
        for event in response.events:
            if event.action is Action.FPI and fault_id not in self._latched.setdefault(event.switch, set()):
                self._latched[event.switch].add(fault_id)
                self._notice(now_ns, event.switch, event, fault_id)

    def _notice(self, ts_ns: int, switch: str, event: ProtectionEvent, fault_id: str) -> None:
        detail: Detail = {"fault_id": fault_id, "note": event.detail}
        self._notices.append(Notice(ts_ns, switch, EVENT_KIND[event.action], detail))
