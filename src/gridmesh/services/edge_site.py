"""What an edge agent knows of the grid: its own microgrid, cut out of the scenario at the PCC.

The agent plans for its site only, so its control cycle runs on a network of the site's buses and
elements, the PCC branch and the bus beyond it, with an external grid there standing for the upstream
network: the PCC flow is this network's grid import, and the MPC's network limits are the site's own
lines. Its devices are the catalogue entries of the site (same ids as the field's and the centre's).
"""

from __future__ import annotations

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import Element, ExternalGrid
from gridmesh.model.kinds import SiteLevel, SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.sites import MEMBER_TABLES, resolve_sites
from gridmesh.telemetry.catalogue import Catalogue, catalogue_of


def check_microgrid(network: Network, site: str) -> None:
    """Raise :class:`ScenarioError` unless ``site`` is a microgrid (level 1) with a PCC."""
    micro = sorted(s.id for s in network.sites.values() if s.level is SiteLevel.MICROGRID and s.pcc)
    if site not in network.sites:
        raise ScenarioError([Issue(f"sites[{site}]", "id", "no such site", f"choose one of {micro}")])
    if site not in micro:
        level = int(network.sites[site].level)
        raise ScenarioError(
            [Issue(f"sites[{site}]", "level", f"level {level}, not a microgrid with a PCC", f"choose one of {micro}")]
        )


def _pcc_far_side(network: Network, site: str, inside: frozenset[str]) -> tuple[str, str]:
    """(the PCC branch's table, the bus at the PCC's far end) of a microgrid whose buses are ``inside``."""
    switch = network.switches[network.sites[site].pcc or ""]
    if switch.element_type is SwitchedElement.TRANSFORMER:
        t = network.transformers[switch.element]
        ends = (t.hv_bus, t.lv_bus)
    elif switch.element_type is SwitchedElement.LINE:
        line = network.lines[switch.element]
        ends = (line.from_bus, line.to_bus)
    else:
        ends = (switch.element, switch.bus)
    table = {SwitchedElement.TRANSFORMER: "transformers", SwitchedElement.LINE: "lines"}.get(switch.element_type, "")
    return table, ends[0] if ends[0] not in inside else ends[1]


def site_network(network: Network, site: str) -> Network:
    """The microgrid ``site`` alone (see the module docstring); raises :class:`ScenarioError` for a
    site that is not a microgrid."""
    check_microgrid(network, site)
    members = resolve_sites(network)[site]
    pcc = network.switches[network.sites[site].pcc or ""]
    table, upstream = _pcc_far_side(network, site, members.buses)
    kept_buses = members.buses | {upstream}
    lines = {
        k
        for k, x in network.lines.items()
        if {x.from_bus, x.to_bus} <= members.buses or (table, k) == ("lines", pcc.element)
    }
    trafos = {
        k
        for k, x in network.transformers.items()
        if {x.hv_bus, x.lv_bus} <= members.buses or (table, k) == ("transformers", pcc.element)
    }
    kept_branch = {SwitchedElement.LINE: lines, SwitchedElement.TRANSFORMER: trafos, SwitchedElement.BUS: kept_buses}
    elements: list[Element] = [b for k, b in network.buses.items() if k in kept_buses]
    elements += [network.lines[k] for k in network.lines if k in lines]
    elements += [network.transformers[k] for k in network.transformers if k in trafos]
    elements += [
        s for s in network.switches.values() if s.bus in kept_buses and s.element in kept_branch[s.element_type]
    ]
    elements.append(ExternalGrid(id=f"{site}-upstream", bus=upstream))
    for name in MEMBER_TABLES:
        elements += [e for k, e in network.table(name).items() if k in members.elements[name]]
    elements.append(network.sites[site])
    return Network.from_elements(elements, name=f"{network.name}:{site}")


def site_catalogue(network: Network, site: str) -> Catalogue:
    """The devices of ``site`` as the full scenario's catalogue names them."""
    return Catalogue({d.id: d for d in catalogue_of(network).of_site(site)})
