"""A centre plan inside an edge agent's control cycle: a PCC-following controller and the plan's prices.

:class:`PccFollower` is the high-priority controller that holds the microgrid's PCC flow at the centre's
schedule: the site's batteries together are asked for ``net load − target`` (kW, generator convention:
import = consumption − generation − battery discharge), shared by rating; steps the schedule does not
cover get no opinion, so the local controllers decide there. The safety layer still clamps the result
to power, SOC and PCC limits. :class:`PlanTariff` is the local tariff with the plan's prices put in for
the steps they cover, so the MPC plans on the centre's prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmesh.control.controller import FloatArray, Request, Window
from gridmesh.control.site_balance import SiteBalance, share_by_rating
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.services.edge_link import AgentPlan

NS_PER_S = 1_000_000_000
FOLLOWER_PRIORITY = 90  # above every local controller (the MPC is 30)


def plan_values(plan: AgentPlan, values: list[float], times: pd.DatetimeIndex) -> FloatArray:
    """``values`` of ``plan`` at each of ``times`` (naive UTC step starts); NaN where the plan has none."""
    step_ns = round(plan.step_s * NS_PER_S)
    index = (np.asarray(times.asi8, dtype=np.int64) - plan.start) // step_ns
    inside = (index >= 0) & (index < len(values))
    out = np.full(len(times), np.nan)
    out[inside] = np.asarray(values, dtype=np.float64)[index[inside]]
    return out


class PccFollower:
    """Holds the PCC at the centre's schedule while a plan with one is in force (``schedule``)."""

    name = "centre-plan"
    priority = FOLLOWER_PRIORITY

    def __init__(self) -> None:
        self.schedule: AgentPlan | None = None
        self._balance = SiteBalance()

    def plan(self, window: Window) -> Request:
        request = window.nothing()
        schedule = self.schedule
        if schedule is None or not schedule.pcc_kw:
            return Request(request)
        target = plan_values(schedule, schedule.pcc_kw, window.times)
        for site in self._balance.sites(window):
            if site.batteries.size:
                wanted = site.net_load_kw - target  # NaN where the schedule is silent
                request[:, site.batteries] = wanted[:, None] * share_by_rating(window, site.batteries)
        return Request(request)


@dataclass(frozen=True, eq=False)
class PlanTariff(TimeOfUseTariff):
    """The local tariff, with the centre's prices (EUR/kWh) wherever its plan has them."""

    plan: AgentPlan | None = None

    def import_price(self, times: pd.DatetimeIndex) -> FloatArray:
        return self._overlay(super().import_price(times), "import_price", times)

    def export_price(self, times: pd.DatetimeIndex) -> FloatArray:
        return self._overlay(super().export_price(times), "export_price", times)

    def _overlay(self, local: FloatArray, field: str, times: pd.DatetimeIndex) -> FloatArray:
        if self.plan is None:
            return local
        central = plan_values(self.plan, getattr(self.plan, field), times)
        return np.where(np.isnan(central), local, central)
