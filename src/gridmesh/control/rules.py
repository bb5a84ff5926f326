"""Rule-based battery controllers: the baselines every optimiser must beat, and its fallbacks."""

from __future__ import annotations

import numpy as np

from gridmesh.control.controller import Request, Window
from gridmesh.control.site_balance import SiteBalance, share_by_rating


class PeakShaving:
    """Per microgrid: discharge above a threshold, recharge below it (valley filling), never above it.

    The threshold is ``fraction`` × the highest net load seen in earlier windows (the first window
    uses its own first day), so the rule is causal: it never looks at peaks it has not yet seen.
    """

    name = "peak-shaving"
    priority = 20

    def __init__(self, fraction: float = 0.7) -> None:
        if not 0 < fraction <= 1:
            raise ValueError("fraction must lie in (0, 1]: the threshold is that share of the seen peak")
        self.fraction = fraction
        self._balance = SiteBalance()
        self._seen_peak: dict[str, float] = {}

    def plan(self, window: Window) -> Request:
        requests = window.nothing()
        day = max(round(24 / window.dt_h), 1)
        for site in self._balance.sites(window):
            seen = self._seen_peak.get(site.site, float(np.max(site.net_load_kw[:day], initial=0.0)))
            threshold = self.fraction * seen
            if site.batteries.size:
                excess = site.net_load_kw - threshold  # > 0: shave, < 0: room to recharge
                requests[:, site.batteries] = excess[:, None] * share_by_rating(window, site.batteries)
            self._seen_peak[site.site] = max(seen, float(np.max(site.net_load_kw, initial=0.0)))
        return Request(requests)


class TimeOfUseArbitrage:
    """Charge at full power in the off-peak band; in the peak band cover the microgrid's own load.

    Discharge is limited to the site's net load: exporting stored energy at the feed-in price loses money.
    """

    name = "tou"
    priority = 10

    def __init__(self) -> None:
        self._balance = SiteBalance()

    def plan(self, window: Window) -> Request:
        requests = window.nothing()
        price = window.tariff.import_price(window.times)
        cheap = price <= price.min() + 1e-9
        dear = price >= price.max() - 1e-9
        for site in self._balance.sites(window):
            if not site.batteries.size:
                continue
            share = share_by_rating(window, site.batteries)
            p_max = window.batteries.p_kw[site.batteries]
            requests[np.ix_(cheap, site.batteries)] = -p_max
            cover = np.clip(site.net_load_kw[:, None], 0, None) * share
            requests[np.ix_(dear, site.batteries)] = cover[dear]
        return Request(requests)
