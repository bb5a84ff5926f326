"""Battery self-consumption per microgrid: store local surplus, cover local deficit.

For every level-1 microgrid the request is its net load behind the PCC (consumption − generation),
shared between the microgrid's batteries in proportion to their power rating; the safety layer clamps
the request to power and SOC limits.
"""

from __future__ import annotations

from gridmesh.control.controller import Request, Window
from gridmesh.control.site_balance import SiteBalance, share_by_rating


class SelfConsumption:
    name = "self-consumption"
    priority = 10

    def __init__(self) -> None:
        self._balance = SiteBalance()

    def plan(self, window: Window) -> Request:
        requests = window.nothing()
        for site in self._balance.sites(window):
            if site.batteries.size:
                requests[:, site.batteries] = site.net_load_kw[:, None] * share_by_rating(window, site.batteries)
        return Request(requests)
