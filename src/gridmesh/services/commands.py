"""Commands from the centre to field devices: checked against limits, signed, sent, acknowledged.

No command leaves the centre unchecked: the device must exist and be controllable, a power setpoint
must be within the device's rating, and only remote-controllable switches and the supply relays of
meters can be opened and closed. A refused
command raises :class:`CommandRefused` with the reason and is logged; an accepted one is signed with the
centre's key (devices verify it) and tracked until the device acknowledges it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import msgspec

from gridmesh.errors import CommandRefused
from gridmesh.model.network import Network
from gridmesh.security.keys import CentreKeyring
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import Bus, Message
from gridmesh.services.historian.base import StoredEvent
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Ack, Command, encode, parse_topic, topic
from gridmesh.units import W_PER_KW

SET_POWER, OPEN, CLOSE, RELEASE = "set-power", "open", "close", "release"
COMMAND_LIFETIME_NS = 60 * 1_000_000_000  # a command not executed within a minute is void
_KEEP = 1_000  # commands remembered for their acknowledgement


@dataclass(frozen=True)
class CommandRecord:
    """A command sent (status ``sent``), then ``done`` or ``refused`` by the device (with its reason)."""

    device: str
    seq: int
    action: str
    value: float
    user: str
    sent_ns: int
    status: str = "sent"
    reason: str = ""
    answered_ns: int = 0


def _power_limits_w(network: Network, spec: DeviceSpec) -> tuple[float, float]:
    """(min, max) setpoint in W, generator convention (a battery charging is negative)."""
    if spec.kind is DeviceKind.BATTERY:
        rating = network.batteries[spec.element].p_kw * W_PER_KW
        return -rating, rating
    if spec.kind is DeviceKind.EVSE:
        charger = network.ev_chargers[spec.element]
        return -charger.p_kw * charger.connectors * W_PER_KW, 0.0
    if spec.kind is DeviceKind.INVERTER:
        return 0.0, network.generators[spec.element].p_kw * W_PER_KW
    raise CommandRefused(f"{spec.id} is a {spec.kind.value}; only batteries, EV chargers and inverters take set-power")


class CommandService:
    """Checks, signs and publishes commands; matches the devices' signed acknowledgements."""

    def __init__(
        self,
        network: Network,
        catalogue: Catalogue,
        keyring: CentreKeyring,
        bus: Bus,
        *,
        clock: Callable[[], int] = time.time_ns,
        on_event: Callable[[Sequence[StoredEvent]], None] | None = None,
        on_done: Callable[[CommandRecord], None] | None = None,
    ) -> None:
        self.network, self.catalogue, self.keyring, self.bus = network, catalogue, keyring, bus
        self.clock = clock
        self.on_event = on_event
        self.on_done = on_done
        self._seq = itertools.count(time.time_ns() // 1_000)  # increasing across restarts of the centre
        self._records: OrderedDict[tuple[str, int], CommandRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._ack_decoder = msgspec.json.Decoder(Ack)

    def check(self, device: str, action: str, value: float) -> DeviceSpec:
        """The device spec if the command is acceptable; :class:`CommandRefused` with the reason if not."""
        spec = self.catalogue.devices.get(device)
        if spec is None:
            raise CommandRefused(f"unknown device {device!r}: list devices with GET /api/v1/devices")
        if not spec.controllable:
            raise CommandRefused(f"{device} is not remote-controllable")
        if spec.kind in (DeviceKind.SWITCH, DeviceKind.METER):  # a meter's supply relay opens and closes
            if action not in (OPEN, CLOSE):
                raise CommandRefused(f"a {spec.kind.value} takes 'open' or 'close', not {action!r}")
            return spec
        if action == RELEASE:
            return spec
        if action != SET_POWER:
            raise CommandRefused(f"{device} takes 'set-power' or 'release', not {action!r}")
        low, high = _power_limits_w(self.network, spec)
        if not low <= value <= high:
            raise CommandRefused(
                f"setpoint {value / W_PER_KW:.1f} kW for {device} is outside its limits "
                f"{low / W_PER_KW:.1f} … {high / W_PER_KW:.1f} kW (generator convention)"
            )
        return spec

    def send(self, device: str, action: str, value: float = 0.0, *, user: str) -> CommandRecord:
        """Check, sign and publish; the record is ``sent`` until the device acknowledges."""
        try:
            spec = self.check(device, action, value)
        except CommandRefused as refused:
            self._log("command-refused", device, str(refused), user=user, action=action, value=value)
            raise
        now = self.clock()
        command = Command(device, next(self._seq), now, action, float(value), now + COMMAND_LIFETIME_NS, "centre")
        signed = sign(command, self.keyring.command_secret)
        record = CommandRecord(device, command.seq, action, float(value), user, now)
        with self._lock:
            self._records[(device, command.seq)] = record
            while len(self._records) > _KEEP:
                self._records.popitem(last=False)
        self.bus.publish(topic(spec.site, device, "command"), encode(signed))
        self._log("command-sent", device, f"{action} {value:g}" if action == SET_POWER else action, user=user)
        return record

    def handle_acks(self, batch: Sequence[Message]) -> None:
        """Bus handler for ``gridmesh/v1/+/+/ack``: verify each ack and settle its command."""
        for message in batch:
            parsed = parse_topic(message.topic)
            try:
                ack = self._ack_decoder.decode(message.payload)
            except msgspec.DecodeError:
                continue
            credential = self.keyring.credentials.get(ack.device)
            if parsed is None or parsed[1] != ack.device or credential is None or not verify(ack, credential):
                self._log("ack-rejected", ack.device, "acknowledgement failed verification")
                continue
            with self._lock:
                record = self._records.get((ack.device, ack.command_seq))
                if record is None:
                    continue
                settled = replace(
                    record, status="done" if ack.ok else "refused", reason=ack.reason, answered_ns=ack.ts
                )
                self._records[(ack.device, ack.command_seq)] = settled
            text = "done" if ack.ok else f"refused by the device: {ack.reason}"
            self._log("command-ack", ack.device, f"{record.action}: {text}", ok=ack.ok)
            if ack.ok and self.on_done is not None:
                self.on_done(settled)

    def record(self, device: str, seq: int) -> CommandRecord | None:
        """The command sent to ``device`` with ``seq``, as it stands (None once forgotten)."""
        with self._lock:
            return self._records.get((device, seq))

    def recent(self, limit: int = 100) -> list[CommandRecord]:
        with self._lock:
            return list(self._records.values())[-limit:][::-1]

    def _log(self, kind: str, device: str, message: str, **data: object) -> None:
        if self.on_event is not None:
            severity = "warning" if kind in ("command-refused", "ack-rejected") else "info"
            self.on_event([StoredEvent(self.clock(), kind, device, message, severity, dict(data))])
