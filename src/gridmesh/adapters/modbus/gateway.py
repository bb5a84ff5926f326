"""An edge gateway for SunSpec devices: poll them, publish signed telemetry, carry out signed commands.

It stands where the field simulator stands for simulated devices, with the same contract on the bus:
``gridmesh/v1/{site}/{device}/telemetry`` envelopes signed with the device's key, ``command`` messages
judged as a device would (the centre's signature, not expired, addressed to this device) and answered with
a signed ``ack``, and a retained ``state`` presence that turns offline (with the error) while a device does
not answer and online again when it does. Sequence numbers come from :class:`SeqStore` (saved before
publishing, so a restart never reuses one).

The Modbus side is asyncio; :meth:`SunSpecGateway.start` runs it on its own thread for the threaded
services, while tests drive :meth:`SunSpecGateway.poll` directly. Commands arriving from the bus are
queued and carried out at the start of the next round, which they start early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from gridmesh.adapters.modbus.bridge import SunSpecDevice
from gridmesh.adapters.modbus.client import SunSpecClient, SunSpecEndpoint, SunSpecError
from gridmesh.security.keys import FieldKeyring
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import Bus, Message
from gridmesh.services.field_seq import SeqStore
from gridmesh.telemetry.catalogue import Catalogue
from gridmesh.telemetry.envelope import TOPIC_ROOT, Ack, Command, Envelope, Presence, encode, parse_topic, topic

log = logging.getLogger(__name__)


def sunspec_devices(catalogue: Catalogue, options: Sequence[str], *, timeout_s: float = 2.0) -> list[SunSpecDevice]:
    """Devices from ``DEVICE=HOST[:PORT][/UNIT]`` options (``inverter-PV_1=192.0.2.10:502/1``).

    Raises ValueError naming the option when the device is not in the catalogue, is not an inverter or
    a battery, is not controllable, or the endpoint does not parse.
    """
    devices = []
    for option in options:
        device, sep, where = option.partition("=")
        if not sep:
            raise ValueError(f"--sunspec {option!r}: expected DEVICE=HOST[:PORT][/UNIT]")
        spec = catalogue.devices.get(device)
        if spec is None:
            raise ValueError(f"--sunspec {option!r}: no device {device!r} in the scenario's catalogue")
        if not spec.controllable:
            raise ValueError(f"--sunspec {option!r}: {device} is not controllable in the scenario")
        devices.append(SunSpecDevice(spec, SunSpecClient(SunSpecEndpoint.parse(where, timeout_s=timeout_s))))
    return devices


@dataclass
class RoundReport:
    """What one polling round did."""

    telemetry: int = 0
    offline: int = 0
    acks: int = 0


class SunSpecGateway:
    """Serves SunSpec devices on the gridmesh bus under their catalogue ids."""

    def __init__(
        self,
        devices: Sequence[SunSpecDevice],
        bus: Bus,
        keyring: FieldKeyring,
        *,
        period_s: float = 5.0,
        data_dir: Path | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"the polling period must be positive seconds, got {period_s}")
        missing = [d.spec.id for d in devices if d.spec.id not in keyring.secrets]
        if missing:
            raise ValueError(f"the field keyring has no key for {missing}; provision keys before starting")
        self.devices = {d.spec.id: d for d in devices}
        self.bus, self.keyring, self.period_s, self.clock = bus, keyring, period_s, clock
        self._row = {device: i for i, device in enumerate(self.devices)}
        self._seqs = SeqStore(list(self.devices), data_dir)
        self._online: dict[str, bool | None] = dict.fromkeys(self.devices)
        self._pending: list[tuple[str, Command | None, str]] = []
        self._lock = threading.Lock()
        self._decoder = msgspec.json.Decoder(Command)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        bus.subscribe(f"{TOPIC_ROOT}/+/+/command", self._on_commands)

    def _topic(self, device: str, channel: str) -> str:
        return topic(self.devices[device].spec.site, device, channel)

    def _next_seq(self, device: str) -> int:
        return int(self._seqs.take(np.array([self._row[device]], dtype=np.int64))[0])

    # -- commands ------------------------------------------------------------------------------------
    def _on_commands(self, batch: Sequence[Message]) -> None:
        """Bus handler: queue commands for our devices and wake the polling loop."""
        received: list[tuple[str, Command | None, str]] = []
        for message in batch:
            parsed = parse_topic(message.topic)
            if parsed is None or parsed[1] not in self.devices:
                continue
            try:
                received.append((parsed[1], self._decoder.decode(message.payload), ""))
            except msgspec.DecodeError as exc:
                received.append((parsed[1], None, f"malformed command: {exc}"))
        if not received:
            return
        with self._lock:
            self._pending.extend(received)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def _judge(self, device: str, command: Command, now_ns: int) -> str:
        if command.device != device:
            return f"command for {command.device} arrived on the topic of {device}"
        if not verify(command, self.keyring.centre_credential):
            return "bad signature"
        if command.expires and command.expires < now_ns:
            return "expired"
        return ""

    async def _execute_commands(self) -> list[tuple[str, Ack]]:
        with self._lock:
            pending, self._pending = self._pending, []
        acks = []
        for device, command, problem in pending:
            now = self.clock()
            reason = problem or (self._judge(device, command, now) if command else "")
            if command is not None and not reason:
                reason = await self.devices[device].execute(command.action, command.value)
            if reason:
                log.info("command to %s refused: %s", device, reason)
            acks.append((device, Ack(device, 0, now, command.seq if command else 0, ok=not reason, reason=reason)))
        return acks

    # -- polling -------------------------------------------------------------------------------------
    async def poll(self) -> RoundReport:
        """One round: queued commands, then every device read; signed messages published after seqs are saved."""
        report = RoundReport()
        outbox: list[tuple[str, str, Ack | Envelope]] = []
        for target, ack in await self._execute_commands():
            outbox.append((target, "ack", msgspec.structs.replace(ack, seq=self._next_seq(target))))
        report.acks = len(outbox)
        states: list[tuple[str, bool, str]] = []
        for device_id, device in self.devices.items():
            try:
                readings = await device.poll()
            except SunSpecError as exc:
                report.offline += 1
                if self._online[device_id] is not False:
                    log.warning("%s offline: %s", device_id, exc)
                    states.append((device_id, False, str(exc)))
                continue
            if self._online[device_id] is not True:
                states.append((device_id, True, ""))
            envelope = Envelope(device_id, self._next_seq(device_id), self.clock(), readings)
            outbox.append((device_id, "telemetry", envelope))
            report.telemetry += 1
        self._seqs.save()
        for device_id, channel, message in outbox:
            self.bus.publish(self._topic(device_id, channel), encode(sign(message, self.keyring.secrets[device_id])))
        for device_id, online, reason in states:
            self._online[device_id] = online
            presence = Presence(device_id, online, self.clock(), reason)
            self.bus.publish(self._topic(device_id, "state"), msgspec.json.encode(presence), retain=True)
        return report

    async def run(self) -> None:
        """Poll every ``period_s`` (sooner when a command arrives) until :meth:`stop`."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while not self._stopping:
                await self.poll()
                with contextlib.suppress(TimeoutError):  # the period ended without a command
                    await asyncio.wait_for(self._wake.wait(), self.period_s)
                self._wake.clear()
        finally:
            for device in self.devices.values():
                device.client.close()
            self._loop = self._wake = None

    def start(self) -> None:
        """Run :meth:`run` on a thread of its own."""
        self._stopping = False
        self._thread = threading.Thread(target=asyncio.run, args=(self.run(),), name="sunspec-gateway", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
