"""The radial tree of switch-bounded sections that a reliability study walks up and down.

Sections come from :func:`gridmesh.model.sections.sections_of` twice: *fine* sections, bounded by every
switch a crew may operate, and *remote* sections, bounded by the remote-controlled switches only (what
FLISR or a dispatcher can isolate). Every remote switch is also a fine boundary, so each fine section lies
in exactly one remote section. The fine sections form a tree from the source along normally closed
switches; a depth-first preorder makes every subtree (everything downstream of a switch) one contiguous
slice, so "who is cut off" is an index range, not a search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import depth_first_order

from gridmesh.errors import GridmeshError
from gridmesh.model.elements import Switch
from gridmesh.model.network import Network
from gridmesh.model.sections import Sections, sections_of

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SectionTree:
    """Fine sections as a tree rooted at the sources (``parent`` −1 at a root or outside the tree)."""

    fine: Sections
    remote: IntArray  # remote-section label of each fine section
    parent: IntArray
    parent_switch: tuple[str | None, ...]  # the switch joining a section to its parent
    order: IntArray  # fine sections in depth-first preorder (energised ones only)
    pre: IntArray  # position of each section in ``order`` (−1 when not energised)
    size: IntArray  # sections in each subtree, itself included
    open_switches: tuple[str, ...]  # normally open boundary switches: the candidate ties

    def subtree(self, section: int) -> IntArray:
        """Fine sections downstream of ``section``, itself first."""
        start = int(self.pre[section])
        return self.order[start : start + int(self.size[section])]

    def within(self, top: int, sections: IntArray) -> BoolArray:
        """Which of ``sections`` lie in the subtree of ``top``."""
        start, pos = int(self.pre[top]), self.pre[sections]
        mask: BoolArray = (pos >= start) & (pos < start + int(self.size[top]))
        return mask

    def path_up(self, section: int) -> Iterator[tuple[int, str]]:
        """(child section, switch) for each switch between ``section`` and the source, nearest first."""
        child = section
        while self.parent[child] >= 0:
            switch = self.parent_switch[child]
            if switch is not None:
                yield child, switch
            child = int(self.parent[child])

    def children(self, sections: IntArray) -> IntArray:
        """Sections whose parent is in ``sections`` but which are not themselves in it."""
        inside = np.zeros(len(self.parent), dtype=bool)
        inside[sections] = True
        has_parent = self.parent >= 0
        mask = has_parent & ~inside
        mask[has_parent] &= inside[self.parent[has_parent]]
        return np.flatnonzero(mask).astype(np.int64)


def section_tree(network: Network, *, operable: Callable[[Switch], bool]) -> SectionTree:
    """The tree of sections bounded by the ``operable`` switches (plus every remote switch)."""
    fine = sections_of(network, boundary=lambda s: s.remote or operable(s))
    coarse = sections_of(network)
    remote = np.fromiter((_remote_label(fine, coarse, s) for s in range(len(fine))), dtype=np.int64, count=len(fine))
    n = len(fine)
    edge_switch: dict[tuple[int, int], str] = {}
    ties: list[str] = []
    for switch_id in sorted(fine.switch_sides):
        sw = network.switches[switch_id]
        a, b = fine.sides(switch_id)
        if a == b or not sw.in_service:
            continue
        if sw.normally_closed:
            edge_switch.setdefault((min(a, b), max(a, b)), switch_id)
        else:
            ties.append(switch_id)
    if not fine.source_sections:
        raise GridmeshError(f"{network.name} has no external grid in service; a reliability study needs a source")
    pairs = [*edge_switch, *((n, s) for s in sorted(fine.source_sections))]
    rows = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(rows)), (rows[:, 0], rows[:, 1])), shape=(n + 1, n + 1)).tocsr()
    visit, pred = depth_first_order(graph, n, directed=False, return_predecessors=True)
    order = np.asarray(visit[1:], dtype=np.int64)
    parent = np.where((pred[:n] >= 0) & (pred[:n] < n), pred[:n], -1).astype(np.int64)
    pre = np.full(n, -1, dtype=np.int64)
    pre[order] = np.arange(len(order))
    size = np.ones(n, dtype=np.int64)
    for s in order[::-1]:
        if parent[s] >= 0:
            size[parent[s]] += size[s]
    parent_switch = tuple(
        edge_switch.get((min(s, int(p)), max(s, int(p)))) if p >= 0 else None for s, p in enumerate(parent.tolist())
    )
    return SectionTree(fine, remote, parent, parent_switch, order, pre, size, tuple(ties))


def _remote_label(fine: Sections, coarse: Sections, section: int) -> int:
    """The remote section holding a fine section (found through any of its buses or branches)."""
    sec = fine.sections[section]
    if sec.buses:
        return coarse.section_of_bus[min(sec.buses)]
    table, branch = ("lines", min(sec.lines)) if sec.lines else ("transformers", min(sec.transformers))
    found = coarse.of_element(table, branch)
    return found if isinstance(found, int) else found[0]
