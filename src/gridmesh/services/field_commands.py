"""How a simulated device judges a command from the centre: authentic, in time, meaningful, within rating.

A device trusts nothing it receives: the command must carry the centre's signature, must not be past its
``expires`` instant (compared with the simulator's clock), must name an action the device has and a
value within its rating. The centre's safety layer should never send a setpoint beyond rating, so such a
command is refused with the reason rather than clamped: clamping would hide a fault in the centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gridmesh.security.keys import DeviceCredential
from gridmesh.security.signing import verify
from gridmesh.services.field_grid import FieldGrid
from gridmesh.telemetry.catalogue import DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Command
from gridmesh.units import W_PER_KW

SET_POWER, RELEASE, OPEN, CLOSE = "set-power", "release", "open", "close"
_ACTIONS: Mapping[DeviceKind, tuple[str, ...]] = {
    DeviceKind.BATTERY: (SET_POWER, RELEASE),
    DeviceKind.EVSE: (SET_POWER, RELEASE),
    DeviceKind.INVERTER: (SET_POWER, RELEASE),
    DeviceKind.SWITCH: (OPEN, CLOSE),
}


def _kw(watts: float) -> str:
    return f"{watts / W_PER_KW:g} kW"


class CommandDesk:
    """Checks commands for the devices of one simulator and applies the accepted ones to its grid."""

    def __init__(self, grid: FieldGrid, devices: Mapping[str, DeviceSpec], centre: DeviceCredential) -> None:
        self.grid = grid
        self.devices = devices
        self.centre = centre
        index = grid.engine.index
        self._position = {
            DeviceKind.BATTERY: {e: i for i, e in enumerate(index.batteries)},
            DeviceKind.EVSE: {e: i for i, e in enumerate(index.ev_chargers)},
            DeviceKind.INVERTER: {e: i for i, e in enumerate(index.generators)},
        }

    def execute(self, command: Command, addressed_to: str, now_ns: int) -> str:
        """Apply ``command`` if acceptable; returns the refusal reason, or ``""`` when done.

        ``addressed_to`` is the device named by the topic it arrived on; ``now_ns`` the simulated time.
        """
        if command.device != addressed_to:
            return f"command for {command.device} arrived on the topic of {addressed_to}"
        if not verify(command, self.centre):
            return "bad signature"
        if command.expires and command.expires < now_ns:
            return "expired"
        spec = self.devices[addressed_to]
        actions = _ACTIONS.get(spec.kind, ())
        if not actions or not spec.controllable:
            return f"{spec.id} ({spec.kind.value}) takes no commands"
        if command.action not in actions:
            return f"unknown action {command.action!r}; a {spec.kind.value} takes {' or '.join(actions)}"
        if spec.kind is DeviceKind.SWITCH:
            self.grid.set_switch(spec.element, command.action == CLOSE)
            return ""
        position = self._position[spec.kind][spec.element]
        if command.action == RELEASE:
            self._apply(spec.kind, position, None)
            return ""
        reason = self._out_of_range(spec.kind, position, command.value)
        if not reason:
            self._apply(spec.kind, position, command.value / W_PER_KW)
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
