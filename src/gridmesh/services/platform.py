"""Assemble the live platform: data folder, keys, tokens, historian, bus, centre, field simulator, and
(``gridmesh run --edge-agents``) one edge agent per microgrid.

``gridmesh run`` puts everything in one process on the in-process bus and the embedded historian (no
server needed); ``gridmesh centre`` and ``gridmesh field`` build one side each over an MQTT broker. The
assembly is shared here so that every mode wires the parts the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gridmesh.adapters.modbus.gateway import SunSpecGateway, sunspec_devices
from gridmesh.adapters.mqtt.bus import MqttBus
from gridmesh.adapters.ocpp import FleetThread, SecurityProfile
from gridmesh.adapters.openadr import VenFleet
from gridmesh.control.controller import Controller
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.scenario import Scenario
from gridmesh.security.edge_keys import EdgeKeyring, agent_credentials, provision_edge_keys
from gridmesh.security.keys import CentreKeyring, FieldKeyring, ensure_keyrings
from gridmesh.services.bus import Bus, InProcessBus
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.clock import SimClock
from gridmesh.services.dr_service import DrService, DrSettings, start_vens
from gridmesh.services.edge_agent import EdgeAgent
from gridmesh.services.ev_service import EvService, EvSettings, start_stations, station_power
from gridmesh.services.field import GATEWAY, FieldSimulator
from gridmesh.services.historian.base import Historian
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.open import open_historian
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of

log = logging.getLogger(__name__)
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
    stations: FleetThread | None = None
    vens: VenFleet | None = None
    agents: list[EdgeAgent] = dataclasses.field(default_factory=list)
    agent_stores: list[Historian] = dataclasses.field(default_factory=list)  # each agent's local historian
    problems: list[str] = dataclasses.field(default_factory=list)  # services that could not start, with the reason

    def stop(self) -> None:
        if self.vens is not None:
            self.vens.stop()
        if self.stations is not None:
            self.stations.stop(drain_timeout_s=5)
        if self.sunspec is not None:
            self.sunspec.stop()
        if self.field is not None:
            self.field.stop()
        for agent in self.agents:
            agent.stop()
        if isinstance(self.bus, InProcessBus):
            self.bus.drain(timeout=10)
        if self.centre is not None:
            self.centre.stop()
        self.bus.close()
        if self.historian is not None:
            self.historian.close()
        for store in self.agent_stores:
            store.close()


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
    ev: EvSettings | None = None,
    dr: DrSettings | None = None,
    problems: list[str] | None = None,
) -> tuple[ControlCentre, Historian]:
    """The centre; with ``ev`` its OCPP central system and smart charging, with ``dr`` its OpenADR VTN.

    An EV or DR service that cannot start (a port in use…) is left off with the reason appended to
    ``problems`` (and logged): the rest of the centre runs without it."""
    historian = open_historian(historian_url or data / "historian.duckdb")
    _, centre_ring = keyrings(data, scenario, keys)
    folder = keys or data / "keys"
    centre = ControlCentre(
        scenario,
        historian,
        bus,
        centre_ring,
        clock=clock,
        settings=settings,
        controllers=controllers,
        agents=agent_credentials(folder),
    )
    notes = problems if problems is not None else []
    if ev is not None and scenario.network.ev_chargers:
        try:
            service = EvService(
                scenario, historian, folder, clock=clock, speed=clock.speed, loading=centre.branch_loading, settings=ev
            )
            centre.ev = service.start()
        except Exception as exc:
            notes.append(f"OCPP central system not started: {exc}")
    if dr is not None and scenario.network.sites:
        try:
            centre.dr = DrService(scenario, folder, clock=clock, speed=clock.speed, settings=dr).start()
        except Exception as exc:
            notes.append(f"OpenADR VTN not started: {exc}")
    for note in notes:
        log.warning(note)
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
        agents=agent_credentials(keys or data / "keys"),
    )
    simulator.start()
    gateway = None
    if real:
        gateway = SunSpecGateway(real, bus, field_ring, data_dir=data / "sunspec")
        gateway.start()
    return simulator, gateway


def agent_sites(scenario: Scenario) -> list[str]:
    """The microgrids an edge agent can run: level-1 sites with a point of common coupling."""
    return sorted(s.id for s in scenario.network.sites.values() if s.level is SiteLevel.MICROGRID and s.pcc)


def provision_agents(scenario: Scenario, data: Path, keys: Path | None = None) -> dict[str, EdgeKeyring]:
    """The device keys (first start) and an agent keyring per microgrid, before the centre and the field
    start: both read the agents' public keys (``edge-public.json``) when they are built."""
    keyrings(data, scenario, keys)
    return provision_edge_keys(keys or data / "keys", catalogue_of(scenario.network), agent_sites(scenario))


def start_edge_agents(
    platform: Platform,
    scenario: Scenario,
    data: Path,
    bus: Bus,
    rings: dict[str, EdgeKeyring],
    *,
    clock: SimClock,
) -> None:
    """One edge agent per microgrid of ``rings`` on ``bus``, each with its local historian
    ``<data>/edge-<site>.duckdb``; added to ``platform`` (which stops them)."""
    for site, ring in rings.items():
        store = EmbeddedHistorian(data / f"edge-{site}.duckdb")
        platform.agent_stores.append(store)
        agent = EdgeAgent(scenario, site, bus, ring, clock, store)
        agent.start()
        platform.agents.append(agent)


def start_field_protocols(
    platform: Platform,
    scenario: Scenario,
    data: Path,
    *,
    clock: SimClock,
    keys: Path | None = None,
    ocpp_url: str | None = None,
    ocpp_profile: SecurityProfile = SecurityProfile.BASIC,
    vtn_url: str | None = None,
    report_interval: timedelta | None = None,
) -> None:
    """The field's OCPP stations (one per charger, clients of ``ocpp_url``) and VENs (one per microgrid,
    clients of ``vtn_url``); either is skipped when its URL is None. Failures are noted in
    ``platform.problems``, not raised: the field simulator runs on without them."""
    assert platform.field is not None
    folder = keys or data / "keys"
    if ocpp_url is not None and scenario.network.ev_chargers:
        try:
            platform.stations = start_stations(
                scenario, ocpp_url, folder, speed=clock.speed, start=clock.now(), profile=ocpp_profile
            )
            chargers = platform.field.grid.engine.index.ev_chargers
            platform.field.grid.ev_power = station_power(platform.stations, chargers)
        except Exception as exc:
            platform.problems.append(f"OCPP stations not started: {exc}")
    if vtn_url is not None and scenario.network.sites:
        interval = report_interval or timedelta(seconds=max(1.0, 60.0 / clock.speed))
        try:
            platform.vens, _ = start_vens(scenario, platform.field, vtn_url, folder, report_interval=interval)
        except Exception as exc:
            platform.problems.append(f"OpenADR VENs not started: {exc}")
    for note in platform.problems:
        log.warning(note)
