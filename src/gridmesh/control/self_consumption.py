"""Battery self-consumption per microgrid: store local surplus, cover local deficit.

For every level-1 microgrid the request is its net load behind the PCC (consumption − generation),
shared between the microgrid's batteries in proportion to their power rating; the battery model clamps
the request to power and SOC limits. The net load is computed for the whole window at once.
"""

from __future__ import annotations

import numpy as np

from gridmesh.control.controller import FloatArray, Window
from gridmesh.model.kinds import SiteLevel


def _columns(ids: tuple[str, ...], members: frozenset[str]) -> np.ndarray:
    return np.fromiter((i for i, x in enumerate(ids) if x in members), dtype=np.int64)


class SelfConsumption:
    name = "self-consumption"

    def __init__(self) -> None:
        self._columns: dict[str, tuple[np.ndarray, ...]] = {}

    def _site_columns(self, window: Window) -> dict[str, tuple[np.ndarray, ...]]:
        """Column positions per microgrid (batteries, loads, EVs, generators), resolved once per study."""
        if not self._columns:
            net = window.network
            for site, members in window.sites.items():
                if members.level is SiteLevel.MICROGRID:
                    self._columns[site] = (
                        _columns(window.batteries.ids, members.elements["batteries"]),
                        _columns(tuple(net.loads), members.elements["loads"]),
                        _columns(tuple(net.ev_chargers), members.elements["ev_chargers"]),
                        _columns(tuple(net.generators), members.elements["generators"]),
                    )
        return self._columns

    def battery_requests(self, window: Window) -> FloatArray:
        requests = np.full((window.steps, len(window.batteries)), np.nan)
        for bats, loads, evs, gens in self._site_columns(window).values():
            if bats.size == 0:
                continue
            net_load = (
                window.load_p_kw[:, loads].sum(axis=1)
                + window.ev_p_kw[:, evs].sum(axis=1)
                - window.gen_p_kw[:, gens].sum(axis=1)
            )
            share = window.batteries.p_kw[bats] / max(window.batteries.p_kw[bats].sum(), 1e-9)
            requests[:, bats] = net_load[:, None] * share[None, :]
        return requests
