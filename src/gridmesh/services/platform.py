"""Assemble the live platform: data folder, keys, tokens, historian, bus, centre, field simulator.

``gridmesh run`` puts everything in one process on the in-process bus and the embedded historian (no
server needed); ``gridmesh centre`` and ``gridmesh field`` build one side each over an MQTT broker. The
assembly is shared here so that every mode wires the parts the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gridmesh.adapters.modbus.gateway import SunSpecGateway, sunspec_devices
from gridmesh.adapters.mqtt.bus import MqttBus
from gridmesh.control.controller import Controller
from gridmesh.model.scenario import Scenario
from gridmesh.security.keys import CentreKeyring, FieldKeyring, ensure_keyrings
from gridmesh.services.bus import Bus, InProcessBus
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.clock import SimClock
from gridmesh.services.field import GATEWAY, FieldSimulator
from gridmesh.services.historian.base import Historian
from gridmesh.services.historian.open import open_historian
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of

HMAC_KINDS = frozenset({DeviceKind.METER})  # constrained devices sign with a per-device HMAC key


def keyrings(data: Path, scenario: Scenario, keys: Path | None = None) -> tuple[FieldKeyring, CentreKeyring]:
    """The scenario's device keys in ``keys`` (default ``<data>/keys``), provisioned on first start.

    Separate machines share the keyrings that ``gridmesh keys provision`` wrote: the field side needs
    ``field-keys.json``, the centre ``centre-keys.json``.
    """
    catalogue = catalogue_of(scenario.network)
    hmac = [d.id for d in catalogue.devices.values() if d.kind in HMAC_KINDS]
    folder = keys or data / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    # The field gateway signs its answers to fault orders (simulation control) like a device.
    return ensure_keyrings(folder, [*catalogue.devices, GATEWAY], hmac_devices=hmac)


def mqtt_bus(url: str, *, client_id: str, data: Path, will: tuple[str, bytes] | None = None) -> Bus:
    """An MQTT bus with an on-disk store-and-forward buffer under the data folder."""
    return MqttBus(url, client_id=client_id, buffer_path=data / f"{client_id}-outbox.sqlite", will=will)


@dataclass
class Platform:
    """The running parts; :meth:`stop` shuts them down in the order that loses nothing."""

    bus: Bus
    historian: Historian | None = None
    centre: ControlCentre | None = None
    field: FieldSimulator | None = None
    sunspec: SunSpecGateway | None = None

    def stop(self) -> None:
        if self.sunspec is not None:
            self.sunspec.stop()
        if self.field is not None:
            self.field.stop()
        if isinstance(self.bus, InProcessBus):
            self.bus.drain(timeout=10)
        if self.centre is not None:
            self.centre.stop()
        self.bus.close()
        if self.historian is not None:
            self.historian.close()


def start_centre(
    scenario: Scenario,
    data: Path,
    bus: Bus,
    *,
    clock: SimClock,
    historian_url: str | None = None,
    settings: CentreSettings | None = None,
    keys: Path | None = None,
    controllers: Sequence[Controller] = (),
) -> tuple[ControlCentre, Historian]:
    historian = open_historian(historian_url or data / "historian.duckdb")
    _, centre_ring = keyrings(data, scenario, keys)
    centre = ControlCentre(
        scenario, historian, bus, centre_ring, clock=clock, settings=settings, controllers=controllers
    )
    centre.start()
    return centre, historian


def start_field(
    scenario: Scenario,
    data: Path,
    bus: Bus,
    *,
    clock: SimClock,
    keys: Path | None = None,
    sunspec: Sequence[str] = (),
) -> tuple[FieldSimulator, SunSpecGateway | None]:
    """The field simulator, and a SunSpec gateway for the devices that ``sunspec`` options put on real
    (or simulated) Modbus hardware (``DEVICE=HOST[:PORT][/UNIT]``); those are not simulated."""
    field_ring, _ = keyrings(data, scenario, keys)
    real = sunspec_devices(catalogue_of(scenario.network), sunspec)
    start = clock.now().replace(tzinfo=None)
    simulator = FieldSimulator(
        scenario,
        bus,
        field_ring,
        speed=clock.speed,
        start=start,
        data_dir=data,
        exclude={d.spec.id for d in real},
    )
    simulator.start()
    gateway = None
    if real:
        gateway = SunSpecGateway(real, bus, field_ring, data_dir=data / "sunspec")
        gateway.start()
    return simulator, gateway
