"""Connectivity of a network as a sparse graph over its buses.

Pure topology (no electrical values): which buses are connected given the present switch states,
which parts are islanded from every external grid, and which buses lie behind a microgrid's PCC.
scipy's connected components do the work; nothing here loops over buses in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Connectivity:
    """Connected components of the bus graph: ``labels[i]`` is the component of bus ``bus_ids[i]``."""

    bus_ids: tuple[str, ...]
    labels: IntArray
    energized: npt.NDArray[np.bool_]

    def component_of(self, bus: str) -> set[str]:
        label = self.labels[self.bus_ids.index(bus)]
        return {b for b, lab in zip(self.bus_ids, self.labels, strict=True) if lab == label}

    def islands(self) -> list[list[str]]:
        """Groups of buses with no path to an external grid (each a list of bus ids)."""
        groups: dict[int, list[str]] = {}
        for bus, label, live in zip(self.bus_ids, self.labels, self.energized, strict=True):
            if not live:
                groups.setdefault(int(label), []).append(bus)
        return list(groups.values())


def branch_end_open(network: Network, overrides: Mapping[str, bool] | None = None) -> set[tuple[str, str]]:
    """(element id, bus id) pairs where a line or transformer is disconnected by an open switch."""
    states = overrides or {}
    opened: set[tuple[str, str]] = set()
    for sw in network.switches.values():
        closed = states.get(sw.id, sw.is_closed)
        if sw.element_type is not SwitchedElement.BUS and (not closed or not sw.in_service):
            opened.add((sw.element, sw.bus))
    return opened


def connectivity(network: Network, *, switch_states: Mapping[str, bool] | None = None) -> Connectivity:
    """Components of the bus graph with the present (or overridden) switch states."""
    states = switch_states or {}
    bus_ids = tuple(network.buses)
    index = {bus: i for i, bus in enumerate(bus_ids)}
    opened = branch_end_open(network, states)
    edges: list[tuple[int, int]] = []
    for line in network.lines.values():
        if line.in_service and (line.id, line.from_bus) not in opened and (line.id, line.to_bus) not in opened:
            edges.append((index[line.from_bus], index[line.to_bus]))
    for trafo in network.transformers.values():
        if trafo.in_service and (trafo.id, trafo.hv_bus) not in opened and (trafo.id, trafo.lv_bus) not in opened:
            edges.append((index[trafo.hv_bus], index[trafo.lv_bus]))
    for sw in network.switches.values():
        if sw.element_type is SwitchedElement.BUS and sw.in_service and states.get(sw.id, sw.is_closed):
            edges.append((index[sw.bus], index[sw.element]))
    n = len(bus_ids)
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    adjacency = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, components = connected_components(adjacency, directed=False)
    labels: IntArray = components.astype(np.int64)
    source_labels = {labels[index[g.bus]] for g in network.external_grids.values() if g.in_service}
    energized = np.isin(labels, np.fromiter(source_labels, dtype=np.int64, count=len(source_labels)))
    return Connectivity(bus_ids=bus_ids, labels=labels, energized=energized)


def far_side_buses(network: Network, switch_id: str) -> tuple[str, ...]:
    """The bus(es) on the far side of a switch: the other bus, or the far end of the switched branch."""
    sw = network.switches[switch_id]
    if sw.element_type is SwitchedElement.BUS:
        return (sw.element,)
    if sw.element_type is SwitchedElement.LINE:
        line = network.lines[sw.element]
        return (line.to_bus if line.from_bus == sw.bus else line.from_bus,)
    trafo = network.transformers[sw.element]
    return (trafo.lv_bus if trafo.hv_bus == sw.bus else trafo.hv_bus,)


def buses_behind(network: Network, pcc: str) -> tuple[str, ...] | None:
    """Buses that opening ``pcc`` separates from every external grid, or None if it separates nothing.

    This is how a level-1 microgrid's buses are derived when the scenario does not list them.
    """
    base = connectivity(network)
    cut = connectivity(network, switch_states={pcc: False})
    sw = network.switches[pcc]
    for side in (sw.bus, *far_side_buses(network, pcc)):
        i = cut.bus_ids.index(side)
        if not cut.energized[i] and base.energized[i]:
            label = cut.labels[i]
            mask = cut.labels == label
            return tuple(b for b, m in zip(cut.bus_ids, mask, strict=True) if m)
    return None


def bus_positions(network: Network, buses: Sequence[str]) -> IntArray:
    """Positions of bus ids in ``network.buses`` order (for numpy indexing of results)."""
    index = {bus: i for i, bus in enumerate(network.buses)}
    return np.fromiter((index[b] for b in buses), dtype=np.int64, count=len(buses))
