"""The device catalogue: which field devices a scenario has, where they sit and what they report.

Every load has a smart meter (whose supply relay can be opened to disconnect the load), every generator
an inverter, every battery and EV charger its controller, every transformer a monitor on its LV side,
every external grid a substation meter, every remote-controllable switch an RTU reporting its position
(and fault passage for reclosers and sectionalisers). The field simulator publishes, and the centre
expects, exactly this catalogue; state estimation maps each reading back to the element through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gridmesh.model.kinds import SiteLevel, SwitchKind
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites

GRID_SITE = "grid"  # topic segment of devices outside every microgrid
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class DeviceKind(StrEnum):
    METER = "meter"
    INVERTER = "inverter"
    BATTERY = "battery"
    EVSE = "evse"
    TRANSFORMER_MONITOR = "trafo"
    SUBSTATION = "substation"
    SWITCH = "switch"


# What each kind reports every cycle (quantity names of :mod:`gridmesh.telemetry.quantities`).
REPORTS: Mapping[DeviceKind, tuple[str, ...]] = {
    DeviceKind.METER: ("TotW", "TotVAr", "PhV"),
    DeviceKind.INVERTER: ("TotW", "TotVAr", "PhV"),
    DeviceKind.BATTERY: ("TotW", "TotVAr", "PhV", "SocPct", "WSpt", "Hz"),
    DeviceKind.EVSE: ("TotW", "WSpt"),
    DeviceKind.TRANSFORMER_MONITOR: ("TotW", "TotVAr", "PhV", "A"),
    DeviceKind.SUBSTATION: ("TotW", "TotVAr", "PhV", "Hz"),
    DeviceKind.SWITCH: ("Pos",),
}

# The network table each kind measures.
TABLE_OF: Mapping[DeviceKind, str] = {
    DeviceKind.METER: "loads",
    DeviceKind.INVERTER: "generators",
    DeviceKind.BATTERY: "batteries",
    DeviceKind.EVSE: "ev_chargers",
    DeviceKind.TRANSFORMER_MONITOR: "transformers",
    DeviceKind.SUBSTATION: "external_grids",
    DeviceKind.SWITCH: "switches",
}

_FAULT_INDICATING = {SwitchKind.RECLOSER, SwitchKind.SECTIONALISER, SwitchKind.BREAKER}


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One field device. ``bus`` is where its voltage is measured; ``controllable`` devices take commands."""

    id: str
    kind: DeviceKind
    element: str
    bus: str
    site: str
    reports: tuple[str, ...]
    controllable: bool


def device_id(kind: DeviceKind, element: str) -> str:
    """A topic-safe device id: ``{kind}-{element}`` with anything but letters, digits, ``_.-`` as ``_``."""
    return f"{kind.value}-{_UNSAFE.sub('_', element)}"


@dataclass(frozen=True)
class Catalogue:
    """Every device of a scenario, by id, with lookups the services need on their hot paths."""

    devices: Mapping[str, DeviceSpec]

    def by_element(self, kind: DeviceKind) -> dict[str, DeviceSpec]:
        return {d.element: d for d in self.devices.values() if d.kind is kind}

    def of_site(self, site: str) -> list[DeviceSpec]:
        return [d for d in self.devices.values() if d.site == site]

    def __len__(self) -> int:
        return len(self.devices)


def catalogue_of(network: Network) -> Catalogue:
    """The devices of a network (ids are unique; a clash of sanitised names gets a numeric suffix)."""
    site_of_bus = {
        bus: sid
        for sid, members in resolve_sites(network).items()
        if members.level is SiteLevel.MICROGRID
        for bus in members.buses
    }
    devices: dict[str, DeviceSpec] = {}

    def add(kind: DeviceKind, element: str, bus: str, *, controllable: bool, reports: tuple[str, ...] = ()) -> None:
        base = device_id(kind, element)
        did, n = base, 1
        while did in devices:
            n += 1
            did = f"{base}-{n}"
        site = site_of_bus.get(bus, GRID_SITE)
        devices[did] = DeviceSpec(did, kind, element, bus, site, reports or REPORTS[kind], controllable)

    for g in network.external_grids.values():
        add(DeviceKind.SUBSTATION, g.id, g.bus, controllable=False)
    for t in network.transformers.values():
        add(DeviceKind.TRANSFORMER_MONITOR, t.id, t.lv_bus, controllable=False)
    for s in network.switches.values():
        if s.remote:
            reports = ("Pos", "FltInd") if s.kind in _FAULT_INDICATING else ("Pos",)
            add(DeviceKind.SWITCH, s.id, s.bus, controllable=True, reports=reports)
    for b in network.batteries.values():
        add(DeviceKind.BATTERY, b.id, b.bus, controllable=True)
    for e in network.ev_chargers.values():
        add(DeviceKind.EVSE, e.id, e.bus, controllable=True)
    for gen in network.generators.values():
        add(DeviceKind.INVERTER, gen.id, gen.bus, controllable=gen.curtailable)
    for load in network.loads.values():
        add(DeviceKind.METER, load.id, load.bus, controllable=True)  # its supply relay opens and closes
    return Catalogue(devices)
