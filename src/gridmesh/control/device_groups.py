"""Flexible loads and curtailable generators grouped per microgrid, for planners that work on aggregates.

A grid has thousands of loads and generators; the dispatch LP does not need each one: per microgrid
(and one group for the rest of the grid) the sum of what may be deferred or curtailed is what moves the
PCC flows and the substation import. :class:`DeviceGroups` aggregates the devices into those groups for
the LP and splits a group's decision back onto its devices in proportion to what each can do at that
moment, so the safety layer rarely has anything to clamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.control.controller import FloatArray, Window
from gridmesh.devices.flexible_load import FlexibleLoads

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DeviceGroups:
    """Which group (microgrid index, ``-1`` for the rest) each flexible load and curtailable generator is in.

    ``flex_group``/``gen_group`` map devices to group columns; ``flex_site``/``gen_site`` give each group
    column its site index (``-1``: outside every microgrid), as the dispatch LP wants them.
    """

    flex_group: IntArray  # (F,) group column of each flexible load
    flex_site: IntArray  # (Fg,)
    gen_columns: IntArray  # (Gc,) positions of the curtailable generators among the network's generators
    gen_group: IntArray  # (Gc,)
    gen_site: IntArray  # (Gg,)

    @classmethod
    def of(cls, window: Window, sites: list[str]) -> DeviceGroups:
        """Groups for the microgrids ``sites`` (in the planner's site order) and the rest of the grid."""
        net = window.network
        flexible = window.flexible or FlexibleLoads.of([])
        generators = list(net.generators.values())
        curtailable = np.array([i for i, g in enumerate(generators) if g.curtailable and g.in_service], dtype=np.int64)
        members = {s: window.sites[s].elements for s in sites}
        load_site = _site_of(flexible.ids, members, sites, "loads")
        gen_site = _site_of(tuple(generators[i].id for i in curtailable), members, sites, "generators")
        flex_site, flex_group = np.unique(load_site, return_inverse=True)
        gen_sites, gen_group = np.unique(gen_site, return_inverse=True)
        return cls(
            flex_group=flex_group.astype(np.int64),
            flex_site=flex_site.astype(np.int64),
            gen_columns=curtailable,
            gen_group=gen_group.astype(np.int64),
            gen_site=gen_sites.astype(np.int64),
        )

    def sum_flex(self, values: FloatArray) -> FloatArray:
        """Sum ``(..., F)`` per flexible group → ``(..., Fg)``."""
        return _group_sum(values, self.flex_group, self.flex_site.size)

    def sum_gen(self, generation_kw: FloatArray) -> FloatArray:
        """Available curtailable generation per group, ``(T, all generators)`` → ``(T, Gg)``."""
        available = np.maximum(generation_kw[..., self.gen_columns], 0.0)  # a generator drawing power has none
        return _group_sum(available, self.gen_group, self.gen_site.size)

    def split_flex(self, group_kw: FloatArray, defer_max: FloatArray, catch_up_max: FloatArray) -> FloatArray:
        """A group's shift per device, ``(Fg,)`` → ``(F,)``: deferral in proportion to what each may defer
        now, catch-up in proportion to what each may catch up now."""
        mine = group_kw[self.flex_group]
        weight = np.where(mine >= 0, defer_max, catch_up_max)
        total = _group_sum(weight, self.flex_group, self.flex_site.size)[self.flex_group]
        return np.where(total > 0, mine * weight / np.where(total > 0, total, 1.0), 0.0)

    def split_gen(self, group_kw: FloatArray, available_kw: FloatArray, n_generators: int) -> FloatArray:
        """A group's curtailment per generator in proportion to its available power: ``(T, Gg)`` → ``(T, G)``."""
        steps = group_kw.shape[0]
        available = np.maximum(available_kw[:, self.gen_columns], 0.0)
        total = _group_sum(available, self.gen_group, self.gen_site.size)[:, self.gen_group]
        share = np.where(total > 0, available / np.where(total > 0, total, 1.0), 0.0)
        out = np.zeros((steps, n_generators))
        out[:, self.gen_columns] = group_kw[:, self.gen_group] * share
        return out


def _site_of(
    ids: tuple[str, ...], members: Mapping[str, Mapping[str, frozenset[str]]], sites: list[str], table: str
) -> IntArray:
    """Site index of each element id (``-1``: in no microgrid)."""
    position = {e: i for i, e in enumerate(ids)}
    of = np.full(len(ids), -1, dtype=np.int64)
    for k, site in enumerate(sites):
        chosen = [position[e] for e in members[site][table] if e in position]
        of[chosen] = k
    return of


def _group_sum(values: FloatArray, group: IntArray, groups: int) -> FloatArray:
    """Sum the last axis of ``values`` by ``group`` (vectorised with one matrix product)."""
    indicator = np.zeros((group.size, groups))
    indicator[np.arange(group.size), group] = 1.0
    out: FloatArray = np.asarray(values, dtype=np.float64) @ indicator
    return out

