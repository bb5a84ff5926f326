"""Which chargers exist and where they sit in the grid: one binding per EV charger of a scenario.

The charger's element id is its OCPP identity (the last path segment of ``ws://host:port/ocpp/<id>``),
so a connection, a meter value or a charging limit maps straight onto a bus and onto the microgrids,
groups and VPPs that contain it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites

# OCPP 2.0.1 part 4 §3.1: the identity is at most 48 characters; a few characters would break the URL.
MAX_IDENTITY = 48
_FORBIDDEN = frozenset("/?#%: ")


@dataclass(frozen=True, slots=True)
class ChargerBinding:
    """A charger as the centre knows it: its grid bus, rating (kW per connector) and sites, innermost first."""

    charger_id: str
    bus: str
    p_kw: float
    connectors: int
    sites: tuple[str, ...] = ()


def identity_problem(charger_id: str) -> str | None:
    """Why ``charger_id`` cannot be an OCPP station identity, or None when it can."""
    if not charger_id or len(charger_id) > MAX_IDENTITY:
        return f"must have 1 to {MAX_IDENTITY} characters"
    bad = sorted(set(charger_id) & _FORBIDDEN)
    if bad or not charger_id.isascii():
        return f"must be ASCII without {''.join(sorted(_FORBIDDEN))!r} (found {bad or 'non-ASCII'})"
    return None


class ChargerRegistry(Mapping[str, ChargerBinding]):
    """Chargers by identity (read-only)."""

    def __init__(self, bindings: Iterable[ChargerBinding]) -> None:
        table: dict[str, ChargerBinding] = {}
        for binding in bindings:
            problem = identity_problem(binding.charger_id)
            if problem:
                raise ValueError(f"ev_chargers[{binding.charger_id}].id: an OCPP identity {problem}")
            if binding.charger_id in table:
                raise ValueError(f"ev_chargers[{binding.charger_id}].id: listed twice")
            table[binding.charger_id] = binding
        self._table = MappingProxyType(table)

    def __getitem__(self, charger_id: str) -> ChargerBinding:
        return self._table[charger_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def at_site(self, site: str) -> list[str]:
        """Identities of the chargers inside ``site`` (a microgrid, group or VPP)."""
        return [c for c, b in self._table.items() if site in b.sites]


def registry_from_network(network: Network) -> ChargerRegistry:
    """A binding for every in-service EV charger; sites come from the resolved site hierarchy."""
    members = resolve_sites(network) if network.sites else {}
    sites_of: dict[str, list[str]] = {}
    # resolve_sites orders sites by level, so each charger lists its microgrid before its group and VPP.
    for site_id, site in members.items():
        for charger_id in site.elements["ev_chargers"]:
            sites_of.setdefault(charger_id, []).append(site_id)
    return ChargerRegistry(
        ChargerBinding(c.id, c.bus, c.p_kw, c.connectors, tuple(sites_of.get(c.id, ())))
        for c in network.ev_chargers.values()
        if c.in_service
    )
