"""Net load behind each microgrid's PCC, computed for a whole window at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.control.controller import FloatArray, Window
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.sites import member_positions

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SiteLoad:
    """One microgrid in a window: its batteries (fleet positions) and its net load (consumption − generation)."""

    site: str
    batteries: IntArray
    net_load_kw: FloatArray


class SiteBalance:
    """Column positions per microgrid resolved once (the network is fixed during a study)."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[IntArray, IntArray, IntArray, IntArray]] = {}

    def _site_columns(self, window: Window) -> dict[str, tuple[IntArray, IntArray, IntArray, IntArray]]:
        if not self._columns:
            net = window.network
            for site, members in window.sites.items():
                if members.level is SiteLevel.MICROGRID:
                    self._columns[site] = (
                        member_positions(window.batteries.ids, members.elements["batteries"]),
                        member_positions(tuple(net.loads), members.elements["loads"]),
                        member_positions(tuple(net.ev_chargers), members.elements["ev_chargers"]),
                        member_positions(tuple(net.generators), members.elements["generators"]),
                    )
        return self._columns

    def sites(self, window: Window) -> list[SiteLoad]:
        """Every microgrid with its batteries and its net load over the window (kW, import positive)."""
        out = []
        for site, (bats, loads, evs, gens) in self._site_columns(window).items():
            net_load = (
                window.load_p_kw[:, loads].sum(axis=1)
                + window.ev_p_kw[:, evs].sum(axis=1)
                - window.gen_p_kw[:, gens].sum(axis=1)
            )
            out.append(SiteLoad(site, bats, net_load))
        return out


def share_by_rating(window: Window, batteries: IntArray) -> FloatArray:
    """How a site's request is split between its batteries: in proportion to their power ratings."""
    ratings = window.batteries.p_kw[batteries]
    return ratings / max(float(ratings.sum()), 1e-9)
