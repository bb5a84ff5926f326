"""Switch-bounded sections: the pieces of a grid that switching can separate.

A section is what remains connected when every *boundary* switch (by default: every remote-controllable
switch) is taken out, whatever its state. Other switches stay as they are: closed ones connect, open ones
separate. Fault isolation, restoration planning and reliability studies all reason on this coarse graph
(a few hundred sections) instead of thousands of buses.

Lines and transformers are graph nodes too, so a branch with a boundary switch at both ends (an MV/LV
transformer between its HV and LV breakers) is a section of its own, with no buses: a fault on it is
isolated by exactly those two switches. scipy's connected components do the work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmesh.errors import GridmeshError
from gridmesh.model.elements import Switch
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network

BUS_TABLES = ("loads", "generators", "batteries", "ev_chargers", "external_grids")


class UnknownElement(GridmeshError, LookupError):
    """An element id that the network (or its sections) does not know."""


@dataclass(frozen=True)
class Section:
    """One switch-bounded section.

    ``switches`` are the boundary switches with a terminal in this section (sorted); ``lines`` and
    ``transformers`` are the branches lying inside it, ``loads`` the loads at its buses.
    """

    id: int
    buses: frozenset[str]
    switches: tuple[str, ...]
    lines: frozenset[str] = frozenset()
    transformers: frozenset[str] = frozenset()
    loads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sections:
    """All sections of a network, and which section each bus, branch and boundary switch belongs to."""

    sections: tuple[Section, ...]
    section_of_bus: Mapping[str, int]
    section_of_branch: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (table, id) → section
    switch_sides: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # (bus side, far side)
    source_sections: frozenset[int] = frozenset()  # sections holding an in-service external grid
    _customers: tuple[int, ...] = ()
    _critical: tuple[bool, ...] = ()
    _rated_kw: Mapping[str, float] = field(default_factory=dict)
    _bus_of: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sections)

    def of_element(self, table: str, element_id: str) -> int | tuple[int, int]:
        """The section of an element: a bus (or anything at a bus) or a branch → one section; a boundary
        switch → the two sections it joins (bus side first)."""
        if table == "buses" and element_id in self.section_of_bus:
            return self.section_of_bus[element_id]
        if table in ("lines", "transformers") and (table, element_id) in self.section_of_branch:
            return self.section_of_branch[table, element_id]
        if table == "switches" and element_id in self.switch_sides:
            return self.switch_sides[element_id]
        if (table, element_id) in self._bus_of:
            return self.section_of_bus[self._bus_of[table, element_id]]
        what = "boundary switch" if table == "switches" else f"element of table {table!r}"
        raise UnknownElement(f"no {what} {element_id!r} in these sections; check the id against the network")

    def sides(self, switch_id: str) -> tuple[int, int]:
        """The two sections a boundary switch joins: (its bus's section, the far terminal's section)."""
        if switch_id not in self.switch_sides:
            raise UnknownElement(f"{switch_id!r} is not a boundary switch of these sections")
        return self.switch_sides[switch_id]

    def customers(self, section: int) -> int:
        """Customers connected at the section's buses (in-service loads)."""
        return self._customers[section]

    def critical(self, section: int) -> bool:
        """Whether the section supplies at least one critical load."""
        return self._critical[section]

    def load_kw(self, section: int, p_kw_by_load: Mapping[str, float] | None = None) -> float:
        """Load of the section, kW: from ``p_kw_by_load`` (a snapshot) or else the loads' rated ``p_kw``."""
        values = self._rated_kw if p_kw_by_load is None else p_kw_by_load
        return float(sum(values.get(load, self._rated_kw[load]) for load in self.sections[section].loads))

    def neighbours(self, section: int) -> dict[str, int]:
        """Boundary switch → the section on its other side, for every boundary switch of ``section``."""
        out: dict[str, int] = {}
        for sw in self.sections[section].switches:
            a, b = self.switch_sides[sw]
            out[sw] = b if a == section else a
        return out


def _end_switches(network: Network) -> dict[tuple[str, str], list[Switch]]:
    """Switches at each branch end, keyed by (branch id, bus id)."""
    ends: dict[tuple[str, str], list[Switch]] = {}
    for sw in network.switches.values():
        if sw.element_type is not SwitchedElement.BUS:
            ends.setdefault((sw.element, sw.bus), []).append(sw)
    return ends


def sections_of(network: Network, *, boundary: Callable[[Switch], bool] = lambda s: s.remote) -> Sections:
    """Split the network into sections at every in-service switch that ``boundary`` accepts.

    Switches out of service are treated as open, like the power flow does.
    """
    bus_ids = tuple(network.buses)
    line_ids, trafo_ids = tuple(network.lines), tuple(network.transformers)
    nb, nl = len(bus_ids), len(line_ids)
    node = {b: i for i, b in enumerate(bus_ids)}
    branch_node = {("lines", x): nb + k for k, x in enumerate(line_ids)}
    branch_node.update({("transformers", x): nb + nl + k for k, x in enumerate(trafo_ids)})
    n = nb + nl + len(trafo_ids)
    is_boundary = {sw.id: sw.in_service and boundary(sw) for sw in network.switches.values()}
    ends = _end_switches(network)

    def end_connected(branch: str, bus: str) -> bool:
        return all(not is_boundary[s.id] and s.in_service and s.is_closed for s in ends.get((branch, bus), ()))

    edges: list[tuple[int, int]] = []
    terminals = [("lines", x.id, x.in_service, (x.from_bus, x.to_bus)) for x in network.lines.values()]
    terminals += [("transformers", x.id, x.in_service, (x.hv_bus, x.lv_bus)) for x in network.transformers.values()]
    for table, bid, in_service, ends_of in terminals:
        if in_service:
            edges.extend((branch_node[table, bid], node[bus]) for bus in ends_of if end_connected(bid, bus))
    for sw in network.switches.values():
        if sw.element_type is SwitchedElement.BUS and not is_boundary[sw.id] and sw.in_service and sw.is_closed:
            edges.append((node[sw.bus], node[sw.element]))
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)

    def far_node(sw: Switch) -> int:
        if sw.element_type is SwitchedElement.BUS:
            return node[sw.element]
        table = "lines" if sw.element_type is SwitchedElement.LINE else "transformers"
        return branch_node[table, sw.element]

    sides = {
        sw.id: (int(labels[node[sw.bus]]), int(labels[far_node(sw)]))
        for sw in network.switches.values()
        if is_boundary[sw.id]
    }
    return _assemble(network, int(count), labels, bus_ids, branch_node, sides)


def _assemble(
    network: Network,
    count: int,
    labels: npt.NDArray[np.int32],
    bus_ids: tuple[str, ...],
    branch_node: dict[tuple[str, str], int],
    sides: dict[str, tuple[int, int]],
) -> Sections:
    """Group buses, branches, loads and boundary switches by section label."""
    nb = len(bus_ids)
    buses: list[list[str]] = [[] for _ in range(count)]
    for bus, label in zip(bus_ids, labels[:nb].tolist(), strict=True):
        buses[label].append(bus)
    branches: list[dict[str, list[str]]] = [{"lines": [], "transformers": []} for _ in range(count)]
    for (table, bid), k in branch_node.items():
        branches[int(labels[k])][table].append(bid)
    switches: list[list[str]] = [[] for _ in range(count)]
    for sw, (a, b) in sides.items():
        switches[a].append(sw)
        if b != a:
            switches[b].append(sw)
    section_of_bus = {bus: int(label) for bus, label in zip(bus_ids, labels[:nb].tolist(), strict=True)}
    loads: list[list[str]] = [[] for _ in range(count)]
    customers, critical = [0] * count, [False] * count
    for load in network.loads.values():
        s = section_of_bus[load.bus]
        loads[s].append(load.id)
        if load.in_service:
            customers[s] += load.customers
            critical[s] = critical[s] or load.critical
    sections = tuple(
        Section(
            id=s,
            buses=frozenset(buses[s]),
            switches=tuple(sorted(switches[s])),
            lines=frozenset(branches[s]["lines"]),
            transformers=frozenset(branches[s]["transformers"]),
            loads=tuple(loads[s]),
        )
        for s in range(count)
    )
    bus_of = {
        (table, e.id): e.bus  # type: ignore[attr-defined]
        for table in BUS_TABLES
        for e in network.table(table).values()
    }
    return Sections(
        sections=sections,
        section_of_bus=MappingProxyType(section_of_bus),
        section_of_branch=MappingProxyType({key: int(labels[k]) for key, k in branch_node.items()}),
        switch_sides=MappingProxyType(sides),
        source_sections=frozenset(section_of_bus[g.bus] for g in network.external_grids.values() if g.in_service),
        _customers=tuple(customers),
        _critical=tuple(critical),
        _rated_kw=MappingProxyType({ld.id: ld.p_kw * ld.in_service for ld in network.loads.values()}),
        _bus_of=MappingProxyType(bus_of),
    )
