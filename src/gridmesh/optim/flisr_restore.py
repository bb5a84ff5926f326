"""Restoration candidates: which switches to open and close to bring de-energised sections back.

Work is on the section graph. The *fault zone* is the faulted sections plus whatever a closed switch
that cannot be operated (not remote, or stuck) ties to them. With the zone cut out, every dead component
(an *area*) may be fed by closing one of its *feeds*: a tripped device or a normally-open tie whose other
side is live. Inside an area, opening switches on the paths between feeds splits it so that each piece
takes another feed (transfer); opening other switches drops the part without a feed (shedding). Each
piece gets at most one feed and every feed joins a dead piece to a live one, so no candidate can close a
loop; the zone keeps its closed switches only towards sections that stay dead, so it is never energised.

Candidates are ranked before any power flow by what they restore (critical customers, then kW, then
customers, then fewer operations, then fewer ties used); the checker then walks down that ranking.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from gridmesh.model.network import Network
from gridmesh.model.sections import Sections

EXHAUSTIVE_SHED = 10  # up to this many sheddable switches per area, try every subset; beyond, greedy orders
MAX_SPLITS = 10  # skeleton switches whose every subset is tried as a transfer split
MAX_OPTIONS = 4096  # options kept per area


class _Union:
    def __init__(self, items: Iterable[int]) -> None:
        self.up = {i: i for i in items}

    def find(self, i: int) -> int:
        while self.up[i] != i:
            self.up[i] = self.up[self.up[i]]
            i = self.up[i]
        return i

    def join(self, a: int, b: int) -> None:
        self.up[self.find(a)] = self.find(b)


@dataclass(frozen=True)
class Grid:
    """The section graph in the state to restore from: zone, live sections, dead areas and their feeds."""

    network: Network
    sections: Sections
    zone: frozenset[int]
    live: frozenset[int]
    areas: tuple[frozenset[int], ...]
    feeds: Mapping[str, tuple[int, int]]  # feed switch → (area section, live section)
    closed: frozenset[str]  # boundary switches closed now
    operable: frozenset[str]

    def internal(self, area: frozenset[int]) -> list[tuple[str, int, int]]:
        """Closed boundary switches with both terminals in ``area`` (different sections)."""
        return [
            (sw, a, b)
            for sw, (a, b) in self.sections.switch_sides.items()
            if sw in self.closed and a != b and a in area and b in area
        ]


def grid_state(
    network: Network, sections: Sections, faulted: Iterable[int], trips: Iterable[str], stuck: Iterable[str]
) -> Grid:
    """Fault zone, live part and dead areas of the network as it is now, with ``stuck`` switches frozen."""
    frozen = set(stuck)
    operable = frozenset(
        sw
        for sw in sections.switch_sides
        if network.switches[sw].remote and network.switches[sw].in_service and sw not in frozen
    )
    closed = frozenset(
        sw for sw in sections.switch_sides if network.switches[sw].is_closed and network.switches[sw].in_service
    )
    zone = set(faulted)
    grown = True
    while grown:
        grown = False
        for sw, (a, b) in sections.switch_sides.items():
            if sw in closed and sw not in operable and (a in zone) != (b in zone):
                zone.update((a, b))
                grown = True
    union = _Union(range(len(sections)))
    for sw, (a, b) in sections.switch_sides.items():
        if sw in closed and a not in zone and b not in zone:
            union.join(a, b)
    live_roots = {union.find(s) for s in sections.source_sections if s not in zone}
    live = frozenset(s for s in range(len(sections)) if s not in zone and union.find(s) in live_roots)
    groups: dict[int, set[int]] = {}
    for s in range(len(sections)):
        if s not in zone and s not in live:
            groups.setdefault(union.find(s), set()).add(s)
    feeders = set(trips)
    feeds: dict[str, tuple[int, int]] = {}
    for sw, (a, b) in sections.switch_sides.items():
        usable = sw in operable and sw not in closed and (sw in feeders or not network.switches[sw].normally_closed)
        if usable and (a in live) != (b in live) and a not in zone and b not in zone:
            feeds[sw] = (b, a) if a in live else (a, b)
    return Grid(
        network=network,
        sections=sections,
        zone=frozenset(zone),
        live=live,
        areas=tuple(frozenset(g) for g in sorted(groups.values(), key=min)),
        feeds=feeds,
        closed=closed,
        operable=operable,
    )


@dataclass(frozen=True)
class AreaOption:
    """One way to treat one area: feeds closed, switches opened inside it, and the sections energised."""

    closes: frozenset[str]
    opens: frozenset[str]
    energised: frozenset[int]


def area_options(grid: Grid, area: frozenset[int], priority: Callable[[frozenset[int]], float]) -> list[AreaOption]:
    """Every transfer split of ``area`` with each piece's choice of feed, and shedding within the pieces.

    ``priority`` values a group of sections (higher: keep longer); greedy shedding drops low values first.
    """
    feeds = {sw: sec for sw, (sec, _) in grid.feeds.items() if sec in area}
    nothing = AreaOption(frozenset(), frozenset(), frozenset())
    if not feeds:
        return [nothing]
    union = _Union(area)
    cuttable: list[tuple[str, int, int]] = []
    for sw, a, b in grid.internal(area):
        if sw in grid.operable:
            cuttable.append((sw, a, b))
        else:
            union.join(a, b)
    skeleton, spurs = _split_edges(area, cuttable, union, set(feeds.values()))
    options: dict[tuple[frozenset[int], frozenset[str]], AreaOption] = {(frozenset(), frozenset()): nothing}
    for cut in _subsets([e[0] for e in skeleton], MAX_SPLITS):
        pieces = _pieces(area, cuttable, union, cut)
        choices = [[(sw, piece) for sw, sec in feeds.items() if sec in piece] + [None] for piece in pieces]
        for combo in itertools.product(*choices):
            chosen = [c for c in combo if c is not None]
            fed = frozenset().union(*(piece for _, piece in chosen))
            base = AreaOption(frozenset(sw for sw, _ in chosen), frozenset(cut), fed)
            inside = [spur for spur in spurs if spur[1] <= fed]
            for option in _shed(base, inside, priority):
                key = (option.energised, option.closes)
                kept = options.get(key)
                if kept is None or _ops(option) < _ops(kept):
                    options[key] = option
    return sorted(options.values(), key=lambda o: (-len(o.energised), _ops(o)))[:MAX_OPTIONS]


def _ops(option: AreaOption) -> int:
    return len(option.closes) + len(option.opens)


def _split_edges(
    area: frozenset[int], cuttable: list[tuple[str, int, int]], blocks: _Union, entries: set[int]
) -> tuple[list[tuple[str, int, int]], list[tuple[str, frozenset[int]]]]:
    """Cuttable switches on paths between feeds (skeleton), and the others with the sections they drop."""
    skeleton: list[tuple[str, int, int]] = []
    spurs: list[tuple[str, frozenset[int]]] = []
    for edge in cuttable:
        sides = _pieces(area, cuttable, blocks, [edge[0]])
        if len(sides) == 1:
            continue  # a switch inside a closed loop separates nothing
        with_entry = [side for side in sides if side & entries]
        if len(with_entry) == 2:
            skeleton.append(edge)
        else:
            spurs.append((edge[0], next(side for side in sides if not side & entries)))
    return skeleton, spurs


def _pieces(
    area: frozenset[int], cuttable: Sequence[tuple[str, int, int]], blocks: _Union, cut: Iterable[str]
) -> list[frozenset[int]]:
    opened = set(cut)
    union = _Union(area)
    for s in area:
        union.join(s, blocks.find(s))
    for sw, a, b in cuttable:
        if sw not in opened:
            union.join(a, b)
    groups: dict[int, set[int]] = {}
    for s in area:
        groups.setdefault(union.find(s), set()).add(s)
    return [frozenset(g) for g in sorted(groups.values(), key=min)]


def _subsets(items: Sequence[str], limit: int) -> Iterator[tuple[str, ...]]:
    """All subsets while few; beyond ``limit`` items, the subsets of up to two."""
    largest = len(items) if len(items) <= limit else 2
    for size in range(largest + 1):
        yield from itertools.combinations(sorted(items), size)


def _shed(
    base: AreaOption, spurs: list[tuple[str, frozenset[int]]], priority: Callable[[frozenset[int]], float]
) -> Iterator[AreaOption]:
    """``base`` and the variants that drop spurs: every subset when few, else nested orders by priority."""
    yield base
    if not spurs:
        return
    if len(spurs) <= EXHAUSTIVE_SHED:
        orders: Iterable[tuple[tuple[str, frozenset[int]], ...]] = (
            combo for size in range(1, len(spurs) + 1) for combo in itertools.combinations(spurs, size)
        )
    else:
        lowest = sorted(spurs, key=lambda s: (priority(s[1]), s[0]))
        orders = (
            *(tuple(lowest[: k + 1]) for k in range(len(lowest))),
            *((spur,) for spur in spurs),
        )
    for dropped in orders:
        gone = frozenset().union(*(d for _, d in dropped))
        needed = [sw for sw, d in dropped if not any(d < other for _, other in dropped)]
        yield AreaOption(base.closes, base.opens | frozenset(needed), base.energised - gone)
