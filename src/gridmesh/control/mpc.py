"""Model predictive control of the batteries: a rolling-horizon LP (HiGHS) re-planned every step.

At every re-planning instant the controller builds a :class:`~gridmesh.optim.problem.DispatchProblem` over the
horizon from the window's look-ahead (perfect information in studies, forecasts live): substation and
microgrid net loads, the tariff's prices and demand charge, battery limits and the SOC it expects; solves it;
keeps the first step(s); and predicts the SOC with the battery model, as the safety layer will apply it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from gridmesh.control.controller import Request, Window
from gridmesh.control.site_balance import SiteBalance
from gridmesh.optim.dispatch import solve_dispatch
from gridmesh.optim.problem import DispatchProblem


@dataclass
class MpcStats:
    solves: int = 0
    seconds: float = 0.0
    not_optimal: int = 0
    last_reason: str = ""


class ModelPredictiveControl:
    """Peak shaving, arbitrage and microgrid peak charges in one objective; see the module docstring."""

    name = "mpc"
    priority = 30

    def __init__(
        self,
        *,
        horizon_steps: int = 96,
        replan_every: int = 1,
        degradation_eur_per_kwh: float = 0.02,
        site_demand_charge_eur_per_kw: float = 5.0,
    ) -> None:
        if horizon_steps < 1 or replan_every < 1:
            raise ValueError("horizon_steps and replan_every must be at least 1 step")
        self.horizon_steps = horizon_steps
        self.replan_every = replan_every
        self.degradation = degradation_eur_per_kwh
        self.site_charge = site_demand_charge_eur_per_kw
        self._balance = SiteBalance()
        self._peak = 0.0
        self._site_peaks: np.ndarray | None = None
        self.stats = MpcStats()

    def plan(self, window: Window) -> Request:
        if window.lookahead is None:
            raise ValueError("MPC needs a look-ahead (forecasts) on the window")
        future = window.lookahead(window.steps + self.horizon_steps)
        sites = self._balance.sites(future)
        fleet = copy.deepcopy(window.batteries)  # predicted state; the real fleet is the safety layer's
        n = len(fleet)
        site_of = np.full(n, -1, dtype=np.int64)
        for k, site in enumerate(sites):
            site_of[site.batteries] = k
        site_load = np.column_stack([s.net_load_kw for s in sites]) if sites else np.zeros((future.steps, 0))
        substation = future.load_p_kw.sum(axis=1) + future.ev_p_kw.sum(axis=1) - future.gen_p_kw.sum(axis=1)
        price_in = future.tariff.import_price(future.times)
        price_out = future.tariff.export_price(future.times)
        if self._site_peaks is None:
            self._site_peaks = np.zeros(len(sites))
        requests = window.nothing()
        for t in range(0, window.steps, self.replan_every):
            horizon = slice(t, min(t + self.horizon_steps, future.steps))
            problem = DispatchProblem(
                dt_h=window.dt_h,
                e_kwh=fleet.e_kwh,
                p_max_kw=fleet.p_kw,
                eta_charge=fleet.eta_charge,
                eta_discharge=fleet.eta_discharge,
                soc_min=fleet.soc_min,
                soc_max=fleet.soc_max,
                soc0=fleet.soc,
                degradation_eur_per_kwh=np.full(n, self.degradation),
                net_load_kw=substation[horizon],
                import_price=price_in[horizon],
                export_price=price_out[horizon],
                demand_charge_eur_per_kw=future.tariff.demand_charge_eur_per_kw,
                peak_so_far_kw=self._peak,
                site_net_load_kw=site_load[horizon],
                site_of_battery=site_of,
                site_demand_charge_eur_per_kw=np.full(len(sites), self.site_charge),
                site_peak_so_far_kw=self._site_peaks,
            )
            plan = solve_dispatch(problem)
            self.stats.solves += 1
            self.stats.seconds += plan.solve_seconds
            if plan.status != "optimal":
                self.stats.not_optimal += 1
                self.stats.last_reason = plan.reason
            keep = min(self.replan_every, window.steps - t)
            requests[t : t + keep] = plan.battery_kw[:keep]
            for j in range(keep):
                applied = fleet.step(plan.battery_kw[j], window.dt_h)
                grid = substation[t + j] - applied.sum()
                self._peak = max(self._peak, float(grid))
                for k, site in enumerate(sites):
                    own = site_load[t + j, k] - applied[site.batteries].sum()
                    self._site_peaks[k] = max(self._site_peaks[k], float(own))
        return Request(requests)
