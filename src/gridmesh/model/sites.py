"""Resolve the site hierarchy: which buses and elements each microgrid, group and VPP contains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.graph import buses_behind
from gridmesh.model.kinds import SiteLevel, SwitchedElement
from gridmesh.model.network import Network

MEMBER_TABLES = ("loads", "generators", "batteries", "ev_chargers")


@dataclass(frozen=True)
class SiteMembers:
    """The buses and the element ids (per table) that belong to a site, members' included."""

    site: str
    level: SiteLevel
    buses: frozenset[str]
    elements: Mapping[str, frozenset[str]]


def resolve_sites(network: Network) -> dict[str, SiteMembers]:
    """Members of every site; level-1 buses come from the scenario or from the PCC's far side."""
    out: dict[str, SiteMembers] = {}
    for site in sorted(network.sites.values(), key=lambda s: int(s.level)):
        if site.level is SiteLevel.MICROGRID:
            buses = frozenset(site.buses) if site.buses else frozenset(buses_behind(network, site.pcc or "") or ())
            if not buses:
                raise ScenarioError([Issue(f"sites[{site.id}]", "pcc", "no buses behind the PCC", "list its buses")])
            elements = {
                table: frozenset(e.id for e in network.table(table).values() if e.bus in buses)  # type: ignore[attr-defined]
                for table in MEMBER_TABLES
            }
        else:
            members = [out[m] for m in site.members if m in out]
            buses = frozenset().union(*(m.buses for m in members))
            elements = {
                table: frozenset().union(*(m.elements[table] for m in members))
                | frozenset(a for a in site.assets if a in network.table(table))
                for table in MEMBER_TABLES
            }
        out[site.id] = SiteMembers(site.id, site.level, buses, elements)
    return out


def pcc_rating_kva(network: Network, switch_id: str) -> float | None:
    """Rating of the branch a PCC switch sits on (transformer kVA, or line ampacity × √3 × kV); None for
    a bus-bus switch with no rating of its own."""
    sw = network.switches[switch_id]
    if sw.element_type is SwitchedElement.TRANSFORMER:
        trafo = network.transformers[sw.element]
        return trafo.sn_kva * trafo.parallel
    if sw.element_type is SwitchedElement.LINE:
        line = network.lines[sw.element]
        return float(np.sqrt(3) * network.buses[sw.bus].vn_kv * line.max_i_a * line.parallel)
    return None if sw.rated_i_a is None else float(np.sqrt(3) * network.buses[sw.bus].vn_kv * sw.rated_i_a)


def member_positions(ids: Sequence[str], members: frozenset[str]) -> npt.NDArray[np.int64]:
    """Positions of a site's members in a table's id order (for numpy column selection)."""
    return np.fromiter((i for i, x in enumerate(ids) if x in members), dtype=np.int64)


def pcc_limits_kw(network: Network, sites: Mapping[str, SiteMembers]) -> dict[str, float]:
    """The PCC rating of every microgrid whose PCC branch has one: what the safety layer keeps flows within."""
    ratings = {
        s: pcc_rating_kva(network, network.sites[s].pcc or "")
        for s, m in sites.items()
        if m.level is SiteLevel.MICROGRID
    }
    return {s: v for s, v in ratings.items() if v is not None}
