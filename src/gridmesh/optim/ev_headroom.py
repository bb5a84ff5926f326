"""Which constraint groups each EV charger sits behind, and how much power they leave for EVs.

A group is a branch whose opening would cut the charger off from every external grid (in the present switch
states): every in-service transformer, and the line of each microgrid PCC that sits on a line. In the radial
operation of distribution grids these nest: an LV charger is behind its MV/LV transformer and the HV/MV
substation transformer. Branches inside a meshed part cut nothing off and form no group.

Headroom is linear and conservative. With the apparent power ``S₀`` a branch carries without EVs (its
power-flow loading times its rating), extra active power ``ΔP`` gives ``|S₀ + ΔP| ≤ |S₀| + ΔP``, so
``ΔP ≤ limit · rating − |S₀|`` keeps the loading within ``limit`` whatever the reactive power and the
direction of the base flow. ``limit`` below 1 leaves room for the extra losses and voltage drop that the
linear bound ignores; the study checks its plans with the full power flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmesh.model.elements import EvCharger
from gridmesh.model.graph import branch_end_open
from gridmesh.model.kinds import SiteLevel, SwitchedElement
from gridmesh.model.network import Network
from gridmesh.optim.lp import FloatArray, IntArray
from gridmesh.physics.powerflow import PowerFlowResult

BoolArray = npt.NDArray[np.bool_]

__all__ = ["ChargerGroups", "charger_groups", "headroom_from_loading", "headroom_kw"]


@dataclass(frozen=True)
class ChargerGroups:
    """Constraint groups over a list of chargers.

    Attributes:
        names: branch id of each group.
        kinds: ``"transformer"`` or ``"line"`` per group.
        position: column of each group's branch in the power-flow result's transformer or line arrays.
        rating_kva: ``(G,)`` branch rating (transformer kVA × parallel units; line √3·kV·A).
        members: ``(G, C)`` True where charger ``c`` is behind group ``g``.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    position: IntArray
    rating_kva: FloatArray
    members: BoolArray

    def __len__(self) -> int:
        return len(self.names)

    def loading(self, trafo_loading: FloatArray, line_loading: FloatArray) -> FloatArray:
        """``(T, G)`` loading of each group's branch, picked out of a power flow's ``(T, n)`` arrays."""
        out = np.empty((trafo_loading.shape[0], len(self)))
        is_trafo = np.array([k == "transformer" for k in self.kinds], dtype=bool)
        out[:, is_trafo] = trafo_loading[:, self.position[is_trafo]]
        out[:, ~is_trafo] = line_loading[:, self.position[~is_trafo]]
        return out


def charger_groups(network: Network, chargers: Sequence[EvCharger]) -> ChargerGroups:
    """Every transformer (and PCC line) with at least one of ``chargers`` behind it."""
    bus_ids = tuple(network.buses)
    index = {b: i for i, b in enumerate(bus_ids)}
    opened = branch_end_open(network)
    # (kind, id, position, from, to, rating) of every closed branch, then the bus-bus switches: the graph
    # module's connectivity() merges them into one matrix, but here each branch must be removable on its own.
    branches: list[tuple[str, str, int, int, int, float]] = []
    for k, t in enumerate(network.transformers.values()):
        if t.in_service and (t.id, t.hv_bus) not in opened and (t.id, t.lv_bus) not in opened:
            branches.append(("transformer", t.id, k, index[t.hv_bus], index[t.lv_bus], t.sn_kva * t.parallel))
    pcc_lines = _pcc_lines(network)
    for k, line in enumerate(network.lines.values()):
        if line.in_service and (line.id, line.from_bus) not in opened and (line.id, line.to_bus) not in opened:
            kva = float(np.sqrt(3) * network.buses[line.from_bus].vn_kv * line.max_i_a * line.parallel)
            kind = "pcc_line" if line.id in pcc_lines else "line"
            branches.append((kind, line.id, k, index[line.from_bus], index[line.to_bus], kva))
    ties = [
        (index[sw.bus], index[sw.element])
        for sw in network.switches.values()
        if sw.element_type is SwitchedElement.BUS and sw.in_service and sw.is_closed
    ]
    ends = np.array([(b[3], b[4]) for b in branches] + ties, dtype=np.int64).reshape(-1, 2)
    sources = np.array([index[g.bus] for g in network.external_grids.values() if g.in_service], dtype=np.int64)
    charger_bus = np.array([index[c.bus] for c in chargers], dtype=np.int64)
    n = len(bus_ids)
    names: list[str] = []
    kinds: list[str] = []
    position: list[int] = []
    rating: list[float] = []
    members: list[BoolArray] = []
    for k, (kind, name, pos, a, b, kva) in enumerate(branches):
        if kind == "line":
            continue
        keep = np.ones(len(ends), dtype=bool)
        keep[k] = False
        labels = _components(ends[keep], n)
        if labels[a] == labels[b]:
            continue  # meshed: opening it cuts nothing off
        fed = np.isin(labels, labels[sources])
        downstream = b if fed[a] else a
        behind = labels[charger_bus] == labels[downstream]
        if behind.any():
            names.append(name)
            kinds.append("transformer" if kind == "transformer" else "line")
            position.append(pos)
            rating.append(kva)
            members.append(behind)
    return ChargerGroups(
        names=tuple(names),
        kinds=tuple(kinds),
        position=np.array(position, dtype=np.int64),
        rating_kva=np.array(rating, dtype=np.float64),
        members=np.array(members, dtype=bool).reshape(len(names), len(chargers)),
    )


def headroom_kw(
    groups: ChargerGroups, result: PowerFlowResult, *, limit: float = 0.97, fallback: float = 0.0
) -> FloatArray:
    """``(T, G)`` kW the EVs behind each group may draw: ``limit · rating − |S₀|`` from a power flow without EVs.

    Steps where the power flow failed (NaN loading) get ``fallback`` kW (no charging by default).
    """
    loading = groups.loading(result.trafo_loading, result.line_loading)
    return headroom_from_loading(groups, loading, limit=limit, fallback=fallback)


def headroom_from_loading(
    groups: ChargerGroups, loading: FloatArray, *, limit: float = 0.97, fallback: float = 0.0
) -> FloatArray:
    """:func:`headroom_kw` from the groups' ``(T, G)`` loadings without EVs (for runs split into windows)."""
    if not limit > 0:
        raise ValueError(f"limit must be positive (a fraction of the rating), got {limit}")
    room = (limit - loading) * groups.rating_kva
    return np.where(np.isnan(room), fallback, room)


def _pcc_lines(network: Network) -> set[str]:
    switches = [network.switches.get(s.pcc or "") for s in network.sites.values() if s.level is SiteLevel.MICROGRID]
    return {sw.element for sw in switches if sw is not None and sw.element_type is SwitchedElement.LINE}


def _components(ends: IntArray, n: int) -> IntArray:
    adjacency = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(n, n))
    labels: IntArray = connected_components(adjacency, directed=False)[1].astype(np.int64)
    return labels
