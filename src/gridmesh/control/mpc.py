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

from gridmesh.control.controller import FloatArray, Request, Window
from gridmesh.control.site_balance import IntArray, SiteBalance
from gridmesh.devices.battery import BatteryFleet
from gridmesh.optim.dispatch import solve_dispatch
from gridmesh.optim.problem import DispatchProblem


@dataclass(frozen=True)
class HorizonForecast:
    """What the optimiser needs to know about the future, as arrays over the look-ahead."""

    sites: list[IntArray]  # fleet positions of each microgrid's batteries
    site_of_battery: IntArray
    site_load_kw: FloatArray  # (T, S)
    substation_kw: FloatArray  # (T,)
    import_price: FloatArray
    export_price: FloatArray
    demand_charge_eur_per_kw: float
    dt_h: float


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
        self._site_peaks: FloatArray = np.zeros(0)
        self.stats = MpcStats()

    def forecast(self, view: Window) -> HorizonForecast:
        """Net loads (substation, each microgrid) and prices over a window, resolved once per plan."""
        sites = self._balance.sites(view)
        site_of = np.full(len(view.batteries), -1, dtype=np.int64)
        for k, site in enumerate(sites):
            site_of[site.batteries] = k
        return HorizonForecast(
            sites=[s.batteries for s in sites],
            site_of_battery=site_of,
            site_load_kw=np.column_stack([s.net_load_kw for s in sites]) if sites else np.zeros((view.steps, 0)),
            substation_kw=view.load_p_kw.sum(axis=1) + view.ev_p_kw.sum(axis=1) - view.gen_p_kw.sum(axis=1),
            import_price=view.tariff.import_price(view.times),
            export_price=view.tariff.export_price(view.times),
            demand_charge_eur_per_kw=view.tariff.demand_charge_eur_per_kw,
            dt_h=view.dt_h,
        )

    def problem(self, f: HorizonForecast, fleet: BatteryFleet, horizon: slice) -> DispatchProblem:
        """The LP of one horizon, from the predicted fleet state and the billing peaks reached so far."""
        n, s = len(fleet), len(f.sites)
        if self._site_peaks.size != s:
            self._site_peaks = np.zeros(s)
        return DispatchProblem(
            dt_h=f.dt_h,
            e_kwh=fleet.e_kwh,
            p_max_kw=fleet.p_kw,
            eta_charge=fleet.eta_charge,
            eta_discharge=fleet.eta_discharge,
            soc_min=fleet.soc_min,
            soc_max=fleet.soc_max,
            soc0=np.clip(fleet.soc, fleet.soc_min, fleet.soc_max),
            degradation_eur_per_kwh=np.full(n, self.degradation),
            net_load_kw=f.substation_kw[horizon],
            import_price=f.import_price[horizon],
            export_price=f.export_price[horizon],
            demand_charge_eur_per_kw=f.demand_charge_eur_per_kw,
            peak_so_far_kw=self._peak,
            site_net_load_kw=f.site_load_kw[horizon],
            site_of_battery=f.site_of_battery,
            site_demand_charge_eur_per_kw=np.full(s, self.site_charge),
            site_peak_so_far_kw=self._site_peaks,
        )

    def plan(self, window: Window) -> Request:
        if window.lookahead is None:
            raise ValueError("MPC needs a look-ahead (forecasts) on the window")
        f = self.forecast(window.lookahead(window.steps + self.horizon_steps))
        fleet = copy.deepcopy(window.batteries)  # predicted state; the real fleet is the safety layer's
        requests = window.nothing()
        for t in range(0, window.steps, self.replan_every):
            plan = solve_dispatch(self.problem(f, fleet, slice(t, min(t + self.horizon_steps, len(f.substation_kw)))))
            self.stats.solves += 1
            self.stats.seconds += plan.solve_seconds
            if plan.status != "optimal":
                self.stats.not_optimal += 1
                self.stats.last_reason = plan.reason
            keep = min(self.replan_every, window.steps - t)
            requests[t : t + keep] = plan.battery_kw[:keep]
            for j in range(keep):
                applied = fleet.step(plan.battery_kw[j], window.dt_h)
                self._peak = max(self._peak, float(f.substation_kw[t + j] - applied.sum()))
                for k, batteries in enumerate(f.sites):
                    own = f.site_load_kw[t + j, k] - applied[batteries].sum()
                    self._site_peaks[k] = max(self._site_peaks[k], float(own))
        return Request(requests)
