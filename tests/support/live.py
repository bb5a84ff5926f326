"""Helpers for tests of the live platform on the in-process bus: a recorder of everything published, and a
centre clock that follows a stepped field simulator (as ``SimClock`` follows the wall clock live)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.centre_views import utc
from gridmesh.services.field import FieldSimulator
from gridmesh.telemetry.envelope import Ack, Envelope, Event, parse_topic


class Recorder:
    """Everything published on the bus, decoded per channel."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus
        self.messages: list[Message] = []
        bus.subscribe("gridmesh/v1/#", self.messages.extend)

    def channel(self, name: str) -> list[Message]:
        self.bus.drain()
        return [m for m in self.messages if (parse_topic(m.topic) or ("", "", ""))[2] == name]

    def telemetry(self) -> list[Envelope]:
        return [msgspec.json.decode(m.payload, type=Envelope) for m in self.channel("telemetry")]

    def events(self) -> list[Event]:
        return [msgspec.json.decode(m.payload, type=Event) for m in self.channel("event")]

    def acks(self) -> list[Ack]:
        return [msgspec.json.decode(m.payload, type=Ack) for m in self.channel("ack")]

    def last_readings(self, device: str) -> dict[str, float]:
        """The readings of ``device``'s latest telemetry message, by quantity."""
        return {r.q: r.v for r in [e for e in self.telemetry() if e.device == device][-1].readings}

    def clear(self) -> None:
        self.bus.drain()
        self.messages.clear()


class FieldClock:
    """The centre's clock, following a field simulator stepped by the test."""

    def __init__(self, field: FieldSimulator) -> None:
        self.field = field

    def now_ns(self) -> int:
        return self.field.now_ns()

    def now(self) -> datetime:
        return utc(self.now_ns())
