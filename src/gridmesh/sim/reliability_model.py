"""The failure-modes-and-effects table of a feeder study: what each fault does to whom, computed once.

For a fault in fine section *f* (see :mod:`gridmesh.sim.reliability_tree`):

1. **Protection.** The nearest breaker, recloser or fuse upstream of *f* trips; everything downstream of it
   is interrupted. Below a recloser a temporary fault is cleared by reclosing (a momentary interruption
   for all of them); a permanent one makes the nearest sectionaliser between recloser and fault open in
   the dead time, so those upstream of the sectionaliser see a momentary interruption only.
2. **Remote stage** (FLISR, or the dispatcher without it): the remote section holding *f* is isolated by
   remote switches; the part upstream is re-energised if the tripped device is remote; each cut-off part
   downstream is transferred through a remote normally open tie if a power flow accepts the transfer.
3. **Manual stage** (a crew): the same with every operable switch, isolating only the fine section *f*.
4. **Repair**: the rest waits for the failed element's repair.

Each affected customer is restored by the first stage that reaches it. The table holds, per failure mode
(a fault section and an element class), the customers and average load per stage and per reporting group
(system, feeders, microgrids); the Monte Carlo only multiplies it with sampled failure counts and times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from gridmesh.model.elements import Switch
from gridmesh.model.kinds import SiteLevel, SwitchedElement, SwitchKind, VoltageLevel
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites
from gridmesh.sim.reliability_capacity import TieCapacity
from gridmesh.sim.reliability_modes import Mode, build_modes
from gridmesh.sim.reliability_rates import ReliabilityRates
from gridmesh.sim.reliability_tree import SectionTree, section_tree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
PROTECTIVE = frozenset({SwitchKind.BREAKER, SwitchKind.RECLOSER, SwitchKind.FUSE})

__all__ = ["FeederModel", "Groups", "Mode", "ModeTable", "Restoration", "Stage"]


class Stage(IntEnum):
    """When an interrupted customer gets supply back."""

    PROTECTION = 0  # sectionaliser opened in the recloser's dead time: momentary
    REMOTE = 1  # remote switching (FLISR or dispatcher)
    MANUAL = 2  # crew switching
    REPAIR = 3  # after the repair


@dataclass(frozen=True)
class Groups:
    """Reporting groups: index 0 is the whole system, then feeders, then microgrids."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]  # "system", "feeder" or "microgrid"
    customers: FloatArray
    average_kw: FloatArray


@dataclass(frozen=True)
class ModeTable:
    """Everything the sampler needs, as plain arrays (cheap to send to worker processes).

    ``customers[m, stage, g]`` and ``kw[m, stage, g]``: customers and average load of group ``g`` restored
    at ``stage`` after a permanent failure of mode ``m``; ``temporary_customers[m, g]``: customers that see a
    momentary interruption when a temporary fault of mode ``m`` is cleared by reclosing.
    """

    permanent_per_year: FloatArray
    temporary_per_year: FloatArray
    repair_mean_h: FloatArray
    repair_cv: float
    customers: FloatArray
    kw: FloatArray
    temporary_customers: FloatArray


@dataclass(frozen=True)
class Restoration:
    """One row of the restoration table: the effect of a fault in one fine section (system customers)."""

    section: int
    protection: str | None
    sectionaliser: str | None
    customers: tuple[float, float, float, float]  # per Stage
    failures_per_year: float


@dataclass(frozen=True)
class FeederModel:
    """A network prepared for reliability studies: groups, failure modes and the restoration table."""

    name: str
    rates: ReliabilityRates
    groups: Groups
    modes: tuple[Mode, ...]
    table: ModeTable
    element_mode: Mapping[tuple[str, str], int]
    restoration: tuple[Restoration, ...]
    capacity_checks: int

    @classmethod
    def of(
        cls,
        network: Network,
        rates: ReliabilityRates | None = None,
        *,
        lv: bool = False,
        average_kw: Mapping[str, float] | None = None,
        check_capacity: bool = True,
    ) -> FeederModel:
        """Build the table: MV lines, MV/LV transformers and MV switches fail (``lv`` adds LV lines and
        switches). ``average_kw`` per load gives energy not supplied (default: each load's ``p_kw``);
        ``check_capacity=False`` accepts every tie transfer without a power flow."""
        rates = rates or ReliabilityRates()
        tree = section_tree(network, operable=lambda s: lv or _level(network, s) is not VoltageLevel.LV)
        groups, members = _groups(network, tree, average_kw)
        modes = build_modes(network, tree, rates, lv=lv, in_feeder=members.feeder >= 0)
        capacity = TieCapacity(network) if check_capacity and tree.open_switches else None
        effects = _Effects(network, tree, capacity)
        n_modes, n_groups = len(modes), len(groups.names)
        customers = np.zeros((n_modes, len(Stage), n_groups))
        kw = np.zeros_like(customers)
        temporary = np.zeros((n_modes, n_groups))
        permanent_rate, temporary_rate, repair = (np.zeros(n_modes) for _ in range(3))
        restoration: dict[int, Restoration] = {}
        cust_of, kw_of = members.customers, members.kw
        for m, mode in enumerate(modes):
            stages, protection, sectionaliser, recloses = effects.of(mode.section)
            for stage, sections in enumerate(stages):
                customers[m, stage] = members.sum(sections, cust_of)
                kw[m, stage] = members.sum(sections, kw_of)
            share = _temporary_share(rates, mode.element_class) * rates.reclose_success if recloses else 0.0
            temporary_rate[m] = mode.per_year * share
            permanent_rate[m] = mode.per_year - temporary_rate[m]
            if recloses:
                temporary[m] = members.sum(np.concatenate(stages), cust_of)
            repair[m] = _repair_h(rates, mode.element_class)
            previous = restoration.get(mode.section)
            total = mode.per_year + (previous.failures_per_year if previous else 0.0)
            restoration[mode.section] = Restoration(
                mode.section,
                protection,
                sectionaliser,
                _per_stage(customers[m, :, 0]),
                total,
            )
        table = ModeTable(permanent_rate, temporary_rate, repair, rates.repair_cv, customers, kw, temporary)
        element_mode = {(table_name, e): m for m, mode in enumerate(modes) for table_name, e in _split(mode.elements)}
        return cls(
            name=network.name,
            rates=rates,
            groups=groups,
            modes=tuple(modes),
            table=table,
            element_mode=element_mode,
            restoration=tuple(restoration[s] for s in sorted(restoration)),
            capacity_checks=0 if capacity is None else capacity.checks,
        )


def _per_stage(values: FloatArray) -> tuple[float, float, float, float]:
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])


def _split(elements: tuple[str, ...]) -> list[tuple[str, str]]:
    """Mode elements are stored as ``table:id``."""
    return [(e.split(":", 1)[0], e.split(":", 1)[1]) for e in elements]


def _level(network: Network, switch: Switch) -> VoltageLevel:
    return network.buses[switch.bus].voltage_level


def _temporary_share(rates: ReliabilityRates, element_class: str) -> float:
    return (
        rates.overhead_temporary_share
        if element_class == "overhead"
        else (rates.cable_temporary_share if element_class == "cable" else 0.0)
    )


def _repair_h(rates: ReliabilityRates, element_class: str) -> float:
    return {
        "overhead": rates.overhead_repair_h,
        "cable": rates.cable_repair_h,
        "transformer": rates.transformer_repair_h,
        "switch": rates.switch_repair_h,
        "lv_line": rates.lv_line_repair_h,
        "lv_switch": rates.switch_repair_h,
    }[element_class]


@dataclass(frozen=True)
class _Members:
    """Group membership of each fine section: its feeder and microgrid group index (−1: none)."""

    feeder: IntArray
    microgrid: IntArray
    n_groups: int
    customers: FloatArray  # per fine section
    kw: FloatArray  # average load per fine section

    def sum(self, sections: IntArray, values: FloatArray) -> FloatArray:
        out = np.zeros(self.n_groups)
        v = values[sections]
        out[0] = v.sum()
        for index in (self.feeder[sections], self.microgrid[sections]):
            keep = index >= 0
            out += np.bincount(index[keep], weights=v[keep], minlength=self.n_groups)
        return out


def _groups(network: Network, tree: SectionTree, average_kw: Mapping[str, float] | None) -> tuple[Groups, _Members]:
    """Feeders (the subtree from the first line on the way out of the substation) and microgrids."""
    n = len(tree.fine)
    feeder_names: list[str] = []
    feeder = np.full(n, -1, dtype=np.int64)
    for s in tree.order.tolist():
        p = int(tree.parent[s])
        if p >= 0 and feeder[p] >= 0:
            feeder[s] = feeder[p]
            continue
        head = tree.parent_switch[s]
        on_line = head is not None and network.switches[head].element_type is SwitchedElement.LINE
        lines = tree.fine.sections[s].lines
        if on_line or lines:
            feeder[s] = len(feeder_names)
            feeder_names.append(head if on_line and head is not None else min(lines))
    sites = {k: v for k, v in resolve_sites(network).items() if v.level is SiteLevel.MICROGRID}
    microgrid = np.full(n, -1, dtype=np.int64)
    for k, site in enumerate(sorted(sites)):
        for s, section in enumerate(tree.fine.sections):
            if section.buses & sites[site].buses:
                microgrid[s] = 1 + len(feeder_names) + k
    feeder[feeder >= 0] += 1
    names = ("system", *feeder_names, *sorted(sites))
    kinds = ("system", *["feeder"] * len(feeder_names), *["microgrid"] * len(sites))
    cust = np.array([tree.fine.customers(s) for s in range(n)], dtype=np.float64)
    load = np.array([tree.fine.load_kw(s, average_kw) for s in range(n)], dtype=np.float64)
    members = _Members(feeder, microgrid, len(names), cust, load)
    groups = Groups(names, kinds, members.sum(tree.order, cust), members.sum(tree.order, load))
    return groups, members


class _Effects:
    """Which sections each stage restores after a fault in a fine section (cached per section)."""

    def __init__(self, network: Network, tree: SectionTree, capacity: TieCapacity | None) -> None:
        self.network, self.tree, self.capacity = network, tree, capacity
        self._cache: dict[int, tuple[list[IntArray], str | None, str | None, bool]] = {}

    def of(self, fault: int) -> tuple[list[IntArray], str | None, str | None, bool]:
        """Sections per :class:`Stage`, the tripping device, the sectionaliser, whether it recloses."""
        if fault not in self._cache:
            self._cache[fault] = self._compute(fault)
        return self._cache[fault]

    def _compute(self, fault: int) -> tuple[list[IntArray], str | None, str | None, bool]:
        tree, switches = self.tree, self.network.switches
        path = list(tree.path_up(fault))
        trip = next(((c, s) for c, s in path if switches[s].kind in PROTECTIVE), None)
        recloses = trip is not None and switches[trip[1]].kind is SwitchKind.RECLOSER
        below = path[: path.index(trip)] if trip is not None else path
        sect = (
            next(((c, s) for c, s in below if switches[s].kind is SwitchKind.SECTIONALISER), None) if recloses else None
        )
        opened = sect or trip
        tripped = tree.subtree(trip[0]) if trip else tree.order
        out = tree.subtree(opened[0]) if opened else tree.order
        device = switches[opened[1]] if opened else None
        remote_region = np.flatnonzero(tree.remote == tree.remote[fault]).astype(np.int64)
        at_remote = self._stage(fault, remote_region, out, device is not None and device.remote, remote_only=True)
        at_manual = self._stage(fault, np.array([fault], dtype=np.int64), out, device is not None, remote_only=False)
        n = len(tree.parent)
        first = np.zeros(n, dtype=bool)
        first[out] = True
        remote_mask = first & at_remote
        manual_mask = first & at_manual & ~remote_mask
        repair_mask = first & ~remote_mask & ~manual_mask
        protection_mask = np.zeros(n, dtype=bool)
        protection_mask[tripped] = True
        protection_mask[out] = False
        stages = [np.flatnonzero(m).astype(np.int64) for m in (protection_mask, remote_mask, manual_mask, repair_mask)]
        return stages, trip[1] if trip else None, sect[1] if sect else None, recloses

    def _stage(self, fault: int, region: IntArray, out: IntArray, upstream_ok: bool, *, remote_only: bool) -> BoolArray:
        """Sections of ``out`` that the stage restores, isolating ``region`` around the fault."""
        tree, switches = self.tree, self.network.switches
        n = len(tree.parent)
        in_out = np.zeros(n, dtype=bool)
        in_out[out] = True
        region_mask = np.zeros(n, dtype=bool)
        region_mask[region] = True
        children = tree.children(region)
        dead_tops = children[in_out[children]]
        dead = np.zeros(n, dtype=bool)
        for c in dead_tops.tolist():
            dead[tree.subtree(c)] = True
        restored = np.zeros(n, dtype=bool)
        if upstream_ok:
            restored = in_out & ~region_mask & ~dead
        live = (~in_out | restored) & (tree.pre >= 0)
        tops = region[(tree.parent[region] < 0) | ~region_mask[np.maximum(tree.parent[region], 0)]]
        edges = (tree.parent_switch[int(s)] for s in (*tops.tolist(), *children.tolist()))
        isolation = {switch for switch in edges if switch is not None}
        for c in dead_tops.tolist():
            for tie in tree.open_switches:
                if remote_only and not switches[tie].remote:
                    continue
                a, b = tree.fine.sides(tie)
                inside = tree.within(c, np.array([a, b], dtype=np.int64)) & (tree.pre[[a, b]] >= 0)
                reaches = (inside[0] and live[b]) or (inside[1] and live[a])
                if reaches and (self.capacity is None or self.capacity.accepts(isolation, tie)):
                    restored[tree.subtree(c)] = True
                    live[tree.subtree(c)] = True
                    break
        return restored
