"""Fault location from protection trips and fault passage indicators (FPIs).

Before the trip, each feeder is a tree of sections hanging from the substation. A fault in section F
drives fault current through every switch on the path from the source to F and through no other switch
of the feeder, so each candidate F predicts every indicator. We score each candidate below the tripped
device by the number of readings it contradicts and keep the best: a missing reading leaves a tie (all
tied sections are isolated, at lower confidence); a wrong reading shows up as the one conflicting
indicator. A second fault below the same trip is accepted only when at least two readings support it,
because one reading alone is as well explained by a faulty indicator.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from gridmesh.model.network import Network
from gridmesh.model.sections import Sections, UnknownElement
from gridmesh.optim.flisr_types import Location, PlanRefused

EXTRA_FAULT_EVIDENCE = 1.5  # readings an extra fault must explain beyond the first (between one and two)


@dataclass(frozen=True)
class FeederTree:
    """Sections reached from the sources over closed boundary switches: parent switch and children."""

    parent: Mapping[int, str]  # section → boundary switch that feeds it
    upper: Mapping[int, int]  # section → the section feeding it
    children: Mapping[int, tuple[tuple[str, int], ...]]  # section → (switch, child section)
    roots: frozenset[int]

    def below(self, section: int) -> set[int]:
        """The section and everything fed through it."""
        out, stack = {section}, [section]
        while stack:
            for _, child in self.children.get(stack.pop(), ()):
                out.add(child)
                stack.append(child)
        return out

    def path(self, section: int) -> list[str]:
        """Switches from the source down to ``section``."""
        switches: list[str] = []
        while section in self.parent:
            switches.append(self.parent[section])
            section = self.upper[section]
        return switches[::-1]


def feeder_tree(network: Network, sections: Sections, *, closed: Collection[str] = ()) -> FeederTree:
    """Breadth-first tree from the source sections, with the switches in ``closed`` taken as closed."""
    adjacency: dict[int, list[tuple[str, int]]] = {}
    for sw_id, (a, b) in sections.switch_sides.items():
        sw = network.switches[sw_id]
        if a != b and (sw_id in closed or sw.is_closed):
            adjacency.setdefault(a, []).append((sw_id, b))
            adjacency.setdefault(b, []).append((sw_id, a))
    parent: dict[int, str] = {}
    upper: dict[int, int] = {}
    children: dict[int, list[tuple[str, int]]] = {}
    seen = set(sections.source_sections)
    frontier = sorted(seen)
    while frontier:
        nxt: list[int] = []
        for s in frontier:
            for sw_id, other in sorted(adjacency.get(s, ())):
                if other not in seen:
                    seen.add(other)
                    parent[other] = sw_id
                    upper[other] = s
                    children.setdefault(s, []).append((sw_id, other))
                    nxt.append(other)
        frontier = nxt
    return FeederTree(
        parent=parent, upper=upper, children={k: tuple(v) for k, v in children.items()}, roots=sections.source_sections
    )


def locate(network: Network, sections: Sections, trips: Collection[str], indications: Mapping[str, bool]) -> Location:
    """The faulted section(s) given the tripped devices and the FPI readings (switch id → saw fault current)."""
    if not trips:
        raise PlanRefused("no trip to locate a fault from", fix="pass the protection devices that tripped")
    for sw in (*trips, *indications):
        if sw not in network.switches:
            raise PlanRefused(f"unknown switch {sw!r}", fix="check the switch id against the network")
        if sw not in sections.switch_sides:
            raise PlanRefused(f"switch {sw!r} bounds no section", fix="FPIs and trips count only at section boundaries")
    for trip in trips:
        device = network.switches[trip]
        if not device.normally_closed or device.is_closed:
            state = "closed" if device.is_closed else "normally open"
            raise PlanRefused(
                f"{trip!r} cannot have tripped: it is {state}",
                fix="report only devices that protection opened and that are open now",
            )
    tree = feeder_tree(network, sections, closed=trips)
    faulted: set[int] = set()
    conflicting: set[str] = set()
    missing: set[str] = set()
    confidence = 1.0
    for trip in sorted(trips):
        child = next((s for s in sections.switch_sides[trip] if tree.parent.get(s) == trip), None)
        if child is None:
            raise PlanRefused(f"{trip!r} does not feed any section", fix="a trip must be on a supplied feeder path")
        found = _locate_below(tree, trip, child, indications)
        faulted |= found.faulted
        conflicting |= set(found.conflicting)
        missing |= set(found.missing)
        confidence = min(confidence, found.confidence)
    return Location(
        faulted=frozenset(faulted),
        trips=tuple(sorted(trips)),
        confidence=confidence,
        conflicting=tuple(sorted(conflicting)),
        missing=tuple(sorted(missing)),
    )


def _locate_below(tree: FeederTree, trip: str, child: int, indications: Mapping[str, bool]) -> Location:
    candidates = sorted(tree.below(child))
    upstream = set(tree.path(child))  # expected to have seen current for any fault below the trip
    paths = {f: set(tree.path(f)) for f in candidates}
    scope = upstream | {tree.parent[s] for s in candidates if s in tree.parent}
    observed = {sw: seen for sw, seen in indications.items() if sw in scope}

    def mismatches(faults: Iterable[int]) -> int:
        hot = set(upstream).union(*(paths[f] for f in faults))
        return sum((sw in hot) != seen for sw, seen in observed.items())

    cost = {f: mismatches([f]) for f in candidates}
    best = min(cost.values())
    tied = [f for f in candidates if cost[f] == best]
    chosen = set(tied)
    if len(tied) == 1:
        chosen = _add_faults(tied[0], candidates, mismatches)
    hot = set(upstream).union(*(paths[f] for f in chosen))
    conflicting = tuple(sorted(sw for sw, seen in observed.items() if (sw in hot) != seen))
    tied_paths = [paths[f] for f in tied]
    decisive = set[str]().union(*tied_paths) - set[str](tied_paths[0]).intersection(*tied_paths[1:])
    consistent = 1.0 - len(conflicting) / max(1, len(observed))
    return Location(
        faulted=frozenset(chosen),
        trips=(trip,),
        confidence=consistent / len(tied),
        conflicting=conflicting,
        missing=tuple(sorted(decisive - set(observed))),
    )


def _add_faults(first: int, candidates: list[int], mismatches: Callable[[Iterable[int]], int]) -> set[int]:
    """Greedily add further faults while each explains enough readings to outweigh a faulty indicator."""
    chosen = {first}
    current = mismatches(chosen)
    while True:
        gains = {f: current - mismatches(chosen | {f}) for f in candidates if f not in chosen}
        best = max(gains, key=lambda f: (gains[f], -f), default=None)
        if best is None or gains[best] <= EXTRA_FAULT_EVIDENCE:
            return chosen
        chosen.add(best)
        current -= gains[best]


def fault_at(sections: Sections, elements: Iterable[tuple[str, str]], trips: Collection[str]) -> Location:
    """A location known from elsewhere (a study, an inspection): the sections of the given elements."""
    faulted: set[int] = set()
    for table, element in elements:
        try:
            where = sections.of_element(table, element)
        except UnknownElement as exc:
            raise PlanRefused(str(exc), fix="name an existing bus, line, transformer or load") from exc
        faulted.update(where if isinstance(where, tuple) else (where,))
    if not faulted:
        raise PlanRefused("no faulted element given", fix="name at least one faulted element")
    return Location(faulted=frozenset(faulted), trips=tuple(sorted(trips)))
