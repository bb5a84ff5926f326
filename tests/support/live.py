"""Helpers for tests of the live platform on the in-process bus: a recorder of everything published, a
centre clock that follows a stepped field simulator (as ``SimClock`` follows the wall clock live), and the
stepped field and centre most service tests start from."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from gridmesh.model.scenario import Scenario
from gridmesh.security.keys import provision_keyrings
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.centre import ControlCentre
from gridmesh.services.centre_views import utc
from gridmesh.services.field import FieldSimulator
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.telemetry.catalogue import catalogue_of
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


class FieldAndCentre:
    """A stepped field simulator (noise off) and a centre on one in-process bus, with fresh keys and an
    embedded historian under ``folder``; the centre's clock follows the field. The field has made its
    first step (one minute) and the centre has ingested it."""

    def __init__(self, scenario: Scenario, folder: Path, *, start: datetime, **field_options: Any) -> None:
        field_ring, centre_ring = provision_keyrings(catalogue_of(scenario.network).devices)
        self.bus = InProcessBus()
        self.historian = EmbeddedHistorian(folder / "historian.duckdb")
        self.field = FieldSimulator(
            scenario, self.bus, field_ring, noise=0.0, data_dir=folder, start=start, **field_options
        )
        self.clock = FieldClock(self.field)
        self.centre = ControlCentre(scenario, self.historian, self.bus, centre_ring, clock=self.clock)
        self.field.step(60)
        assert self.bus.drain()

    def close(self) -> None:
        self.bus.close()
        self.historian.close()
