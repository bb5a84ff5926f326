"""How a simulated device judges a command from the centre: authentic, in time, meaningful, within rating.

A device trusts nothing it receives: the command must carry the centre's signature, or that of the edge
agent of the device's own microgrid (``agents``: site → the agent's public key, from
:mod:`gridmesh.security.edge_keys`; another site's agent is refused by name), must not be past its
``expires`` instant (compared with the simulator's clock), must name an action the device has and a
value within its rating. The centre's safety layer should never send a setpoint beyond rating, so such a
command is refused with the reason rather than clamped: clamping would hide a fault in the centre.
Switching also passes the protection's interlock (:class:`SwitchInterlock`): a recloser in its sequence
or locked out on a fault refuses, and a close is reported to it so that closing onto a fault trips.

The gateway judges fault orders (:class:`FaultOrder`) the same way (:class:`FaultOrderDesk`): the
centre's signature, then a fault the twin can place. Its answer is an :class:`Ack` of the gateway,
signed with the gateway's key where the field keyring holds one, else unsigned (``alg``
:data:`UNSIGNED`): it is advice for whoever sent the order, never data or control.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import msgspec

from gridmesh.physics.short_circuit import Fault, FaultError, FaultType
from gridmesh.security.edge_keys import AGENT_PREFIX
from gridmesh.security.keys import DeviceCredential, DeviceSecret
from gridmesh.security.signing import sign, verify
from gridmesh.services.field_faults import FaultBook
from gridmesh.services.field_grid import FieldGrid
from gridmesh.telemetry.catalogue import DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Ack, Command, FaultOrder, encode
from gridmesh.units import W_PER_KW

log = logging.getLogger(__name__)

SET_POWER, RELEASE, OPEN, CLOSE = "set-power", "release", "open", "close"
INJECT, REPAIR = "inject", "repair"
UNSIGNED = "none"  # ``alg`` of a gateway answer when the field keyring holds no key for the gateway
_ACTIONS: Mapping[DeviceKind, tuple[str, ...]] = {
    DeviceKind.BATTERY: (SET_POWER, RELEASE),
    DeviceKind.EVSE: (SET_POWER, RELEASE),
    DeviceKind.INVERTER: (SET_POWER, RELEASE),
    DeviceKind.SWITCH: (OPEN, CLOSE),
    DeviceKind.METER: (OPEN, CLOSE),  # the meter's supply relay: open disconnects the load
}


class SwitchInterlock(Protocol):
    """What protection says about switching (:class:`~gridmesh.services.field_faults.FaultBook`)."""

    def refuse(self, switch: str, close: bool) -> str:
        """Why operating ``switch`` must be refused now, or ``""``."""
        ...

    def operated(self, switch: str, closed: bool, now_ns: int) -> None:
        """``switch`` was just opened or closed by a command at ``now_ns``."""
        ...


def _kw(watts: float) -> str:
    return f"{watts / W_PER_KW:g} kW"


class CommandDesk:
    """Checks commands for the devices of one simulator and applies the accepted ones to its grid."""

    def __init__(
        self,
        grid: FieldGrid,
        devices: Mapping[str, DeviceSpec],
        centre: DeviceCredential,
        interlock: SwitchInterlock | None = None,
        agents: Mapping[str, DeviceCredential] | None = None,
    ) -> None:
        self.grid = grid
        self.devices = devices
        self.centre = centre
        self.interlock = interlock
        self.agents: Mapping[str, DeviceCredential] = agents or {}
        index = grid.engine.index
        self._position = {
            DeviceKind.BATTERY: {e: i for i, e in enumerate(index.batteries)},
            DeviceKind.EVSE: {e: i for i, e in enumerate(index.ev_chargers)},
            DeviceKind.INVERTER: {e: i for i, e in enumerate(index.generators)},
            DeviceKind.METER: {e: i for i, e in enumerate(index.loads)},
        }

    def execute(self, command: Command, addressed_to: str, now_ns: int) -> str:
        """Apply ``command`` if acceptable; returns the refusal reason, or ``""`` when done.

        ``addressed_to`` is the device named by the topic it arrived on; ``now_ns`` the simulated time.
        """
        if command.device != addressed_to:
            return f"command for {command.device} arrived on the topic of {addressed_to}"
        spec = self.devices[addressed_to]
        refused = self._unauthentic(command, spec.site)
        if refused:
            return refused
        if command.expires and command.expires < now_ns:
            return "expired"
        actions = _ACTIONS.get(spec.kind, ())
        if not actions or not spec.controllable:
            return f"{spec.id} ({spec.kind.value}) takes no commands"
        if command.action not in actions:
            return f"unknown action {command.action!r}; a {spec.kind.value} takes {' or '.join(actions)}"
        if spec.kind is DeviceKind.SWITCH:
            return self._switch(spec.element, command.action == CLOSE, now_ns)
        if spec.kind is DeviceKind.METER:
            self.grid.set_supply(self._position[spec.kind][spec.element], command.action == CLOSE)
            return ""
        position = self._position[spec.kind][spec.element]
        if command.action == RELEASE:
            self._apply(spec.kind, position, None)
            return ""
        reason = self._out_of_range(spec.kind, position, command.value)
        if not reason:
            self._apply(spec.kind, position, command.value / W_PER_KW)
        return reason

    def _unauthentic(self, command: Command, site: str) -> str:
        """Why ``command`` is not from the centre or from ``site``'s own agent, or ``""``."""
        if verify(command, self.centre):
            return ""
        agent = self.agents.get(site)
        if agent is not None and verify(command, agent):
            return ""
        issuer = command.issuer
        if issuer.startswith(AGENT_PREFIX) and (agent is None or issuer != agent.device):
            return f"bad signature: {issuer} is not the agent of site {site} and may not command its devices"
        return "bad signature"

    def _switch(self, switch: str, close: bool, now_ns: int) -> str:
        """Operate ``switch`` unless the interlock refuses; tell it about a change."""
        if self.interlock is None:
            self.grid.set_switch(switch, close)
            return ""
        reason = self.interlock.refuse(switch, close)
        if not reason and self.grid.set_switch(switch, close):
            self.interlock.operated(switch, close, now_ns)
        return reason

    def _out_of_range(self, kind: DeviceKind, position: int, value_w: float) -> str:
        """Why a set-power value (W, generator convention) is not acceptable, or ``""``."""
        if not math.isfinite(value_w):
            return f"setpoint {value_w} is not a finite number of watts"
        grid = self.grid
        if kind is DeviceKind.BATTERY:
            rating = float(grid.battery_rating_kw[position]) * W_PER_KW
            if abs(value_w) > rating:
                return f"setpoint {_kw(value_w)} exceeds rating {_kw(rating)}"
        elif kind is DeviceKind.EVSE:
            rating = float(grid.ev_rating_kw[position]) * W_PER_KW
            if value_w > 0:
                return f"setpoint {_kw(value_w)}: an EV charger cannot discharge (charging is ≤ 0 W)"
            if -value_w > rating:
                return f"setpoint {_kw(value_w)} exceeds rating {_kw(rating)}"
        else:
            rating = float(grid.gen_rating_kw[position]) * W_PER_KW
            if value_w < 0:
                return f"setpoint {_kw(value_w)}: an inverter cannot consume (limits are ≥ 0 W)"
            if value_w > rating:
                return f"setpoint {_kw(value_w)} exceeds rating {_kw(rating)}"
        return ""

    def _apply(self, kind: DeviceKind, position: int, kw: float | None) -> None:
        """Set (kW, generator convention) or release (None) the device's setpoint in the grid."""
        if kind is DeviceKind.BATTERY:
            self.grid.set_battery(position, kw)
        elif kind is DeviceKind.EVSE:
            self.grid.set_ev_cap(position, None if kw is None else -kw)
        else:
            self.grid.set_gen_cap(position, kw)


class FaultOrderDesk:
    """The gateway's side of fault orders: queued as they arrive, carried out and answered at the tick."""

    def __init__(self, book: FaultBook, gateway: str, centre: DeviceCredential, secret: DeviceSecret | None) -> None:
        self.book, self.gateway, self.centre, self.secret = book, gateway, centre, secret
        self._queue: list[tuple[FaultOrder | None, str]] = []
        self._lock = threading.Lock()
        self._decoder = msgspec.json.Decoder(FaultOrder)

    def receive(self, payload: bytes) -> None:
        """Queue one order (from the bus thread); a malformed one is answered with the decoding error."""
        try:
            item: tuple[FaultOrder | None, str] = (self._decoder.decode(payload), "")
        except msgspec.DecodeError as exc:
            item = (None, f"malformed fault order: {exc}")
        with self._lock:
            self._queue.append(item)

    def execute(self, now_ns: int, next_seq: Callable[[], int]) -> list[bytes]:
        """Carry out the queued orders in arrival order at ``now_ns``; the encoded answer to each."""
        with self._lock:
            queued, self._queue = self._queue, []
        answers = []
        for order, problem in queued:
            reason = problem if order is None else self._carry_out(order, now_ns)
            if reason:
                log.warning("fault order refused: %s", reason)
            ack = Ack(self.gateway, next_seq(), now_ns, order.seq if order else 0, ok=not reason, reason=reason)
            signed = sign(ack, self.secret) if self.secret else msgspec.structs.replace(ack, alg=UNSIGNED)
            answers.append(encode(signed))
        return answers

    def _carry_out(self, order: FaultOrder, now_ns: int) -> str:
        """Apply an authentic, meaningful order; the refusal reason, or ``""``."""
        if order.device != self.gateway:
            return f"fault order for {order.device} arrived on the topic of {self.gateway}"
        if not verify(order, self.centre):
            return "bad signature"
        try:
            if order.action == INJECT:
                self.book.inject(order.fault_id, fault_of(order), now_ns)
            elif order.action == REPAIR:
                self.book.repair(order.fault_id)
            else:
                return f"unknown action {order.action!r}; a fault order is {INJECT} or {REPAIR}"
        except FaultError as exc:
            return str(exc)
        return ""


def fault_of(order: FaultOrder) -> Fault:
    """The :class:`Fault` an inject order describes (raises :class:`FaultError` for a bad table or type)."""
    if order.table not in ("buses", "lines"):
        raise FaultError(order.element, "table", f"{order.table!r} cannot carry a fault", "use 'buses' or 'lines'")
    try:
        fault_type = FaultType(order.fault_type)
    except ValueError:
        known = ", ".join(t.value for t in FaultType)
        raise FaultError(
            order.element, "fault_type", f"{order.fault_type!r} is not a fault type", f"use one of {known}"
        ) from None
    table: Literal["buses", "lines"] = "buses" if order.table == "buses" else "lines"
    return Fault(order.element, table, fault_type, position=order.position, permanent=order.permanent)
