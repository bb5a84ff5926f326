"""Model predictive control of batteries, flexible loads and curtailment: a rolling-horizon LP (HiGHS).

At every re-planning instant the controller builds a :class:`~gridmesh.optim.problem.DispatchProblem` over the
horizon from the window's look-ahead (perfect information in studies, forecasts live): substation and
microgrid net loads, the tariff's prices and demand charge, battery limits and the SOC it expects, the
flexible loads (per microgrid and for the rest of the grid: what may be deferred, what is owed) and the
curtailable generation per group; solves it; keeps the first step(s); splits each group's decision onto its
devices (:mod:`gridmesh.control.device_groups`); and predicts the SOC and the backlog with the device models,
as the safety layer will apply them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from gridmesh.control.controller import FloatArray, Request, Window
from gridmesh.control.device_groups import DeviceGroups
from gridmesh.control.site_balance import IntArray, SiteBalance
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.errors import GridmeshError
from gridmesh.model.kinds import SiteLevel
from gridmesh.optim.dispatch import solve_dispatch
from gridmesh.optim.lp import WarmStart
from gridmesh.optim.problem import DispatchProblem
from gridmesh.physics.powerflow import STUDY_OUTPUTS, Injections, PowerFlow
from gridmesh.physics.sensitivity import Sensitivity, voltage_sensitivity


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
    groups: DeviceGroups
    gen_kw: FloatArray  # (T, generators): available generation, for splitting a group's curtailment
    gen_available_kw: FloatArray  # (T, Gg) curtailable generation per group
    flex_defer_kw: FloatArray  # (T, F) most each flexible load may defer (backlog aside)
    flex_defer_max_kw: FloatArray  # (T, Fg) the same per group
    flex_catch_up_kw: FloatArray  # (Fg,)
    flex_backlog_max_kwh: FloatArray  # (Fg,)


@dataclass
class MpcStats:
    solves: int = 0
    seconds: float = 0.0
    not_optimal: int = 0
    last_reason: str = ""


class ModelPredictiveControl:
    """Peak shaving, arbitrage, microgrid peak charges, load shifting and curtailment in one objective; see
    the module docstring."""

    name = "mpc"
    priority = 30

    def __init__(
        self,
        *,
        horizon_steps: int = 96,
        replan_every: int = 1,
        degradation_eur_per_kwh: float = 0.02,
        site_demand_charge_eur_per_kw: float = 5.0,
        network_aware: bool = True,
        monitored_per_site: int = 4,
        prune_limits: bool = True,
        curtailment_penalty_eur_per_kwh: float = 0.25,
        flex_penalty_eur_per_kwh: float = 0.03,
    ) -> None:
        if horizon_steps < 1 or replan_every < 1:
            raise ValueError("horizon_steps and replan_every must be at least 1 step")
        self.horizon_steps = horizon_steps
        self.replan_every = replan_every
        self.degradation = degradation_eur_per_kwh
        self.site_charge = site_demand_charge_eur_per_kw
        self.curtailment_penalty = curtailment_penalty_eur_per_kwh
        self.flex_penalty = flex_penalty_eur_per_kwh
        self._balance = SiteBalance()
        self._peak = 0.0
        self._site_peaks: FloatArray = np.zeros(0)
        self.stats = MpcStats()
        self._warm = WarmStart()  # consecutive horizons share their structure
        self.network_aware = network_aware
        self.monitored_per_site = monitored_per_site
        self.prune_limits = prune_limits
        self._engine: PowerFlow | None = None
        self._site_buses: list[IntArray] = []

    def network_limits(self, view: Window, f: HorizonForecast) -> Sensitivity | None:
        """Linear voltage limits for the look-ahead: per microgrid the buses nearest their bounds.

        Limits are never tighter than what idle batteries achieve (``no new violations``), so the LP
        stays feasible when the grid is already outside its band for reasons batteries cannot fix.
        """
        if not self.network_aware or view.load_q_kvar is None or view.gen_q_kvar is None:
            return None
        net = view.network
        if self._engine is None:
            self._engine = PowerFlow(net, method="iterative_current", outputs=STUDY_OUTPUTS)
            position = {b: i for i, b in enumerate(self._engine.index.buses)}
            self._site_buses = [
                np.array(sorted(position[b] for b in m.buses), dtype=np.int64)
                for m in view.sites.values()
                if m.level is SiteLevel.MICROGRID and m.elements["batteries"]
            ]
        if not self._site_buses:
            return None
        candidates = np.concatenate(self._site_buses)
        injections = Injections(
            view.load_p_kw,
            view.load_q_kvar,
            view.gen_p_kw,
            view.gen_q_kvar,
            view.ev_p_kw,
            np.zeros((view.steps, len(view.batteries))),
        )
        groups = f.groups
        gen_weights = np.zeros((groups.gen_site.size, len(net.generators)))
        gen_weights[groups.gen_group, groups.gen_columns] = f.gen_kw[:, groups.gen_columns].mean(axis=0)
        flex_columns = view.flexible.columns if view.flexible is not None else np.zeros(0, dtype=np.int64)
        load_weights = np.zeros((groups.flex_site.size, len(net.loads)))
        load_weights[groups.flex_group, flex_columns] = f.flex_defer_kw.mean(axis=0)
        gen_weights /= np.maximum(gen_weights.sum(axis=1, keepdims=True), 1e-9)
        load_weights /= np.maximum(load_weights.sum(axis=1, keepdims=True), 1e-9)
        try:
            sens = voltage_sensitivity(
                self._engine,
                net,
                injections,
                buses=candidates.tolist(),
                generators=[],
                generator_groups=gen_weights,
                load_groups=load_weights,
            )
        except (GridmeshError, ValueError) as exc:  # no network limits rather than no plan
            self.stats.last_reason = f"network limits skipped: {exc}"
            return None
        rows: list[int] = []
        start, k = 0, self.monitored_per_site
        for buses in self._site_buses:
            block = sens.base[:, start : start + buses.size]
            high = np.argsort(-block.max(axis=0))[:k]
            low = np.argsort(block.min(axis=0))[:k]
            rows.extend((start + np.unique(np.concatenate([high, low]))).tolist())
            start += buses.size
        chosen = np.array(rows, dtype=np.int64)
        base = sens.base[:, chosen]
        lower = np.minimum(sens.lower[chosen], base.min(axis=0))
        upper = np.maximum(sens.upper[chosen], base.max(axis=0))
        if self.prune_limits:
            # A limit that no dispatch within the batteries' ratings can reach cannot bind: leave it out of
            # the LP (same optimum, smaller problem).
            swing = np.concatenate(
                [
                    view.batteries.p_kw,
                    f.gen_available_kw.max(axis=0, initial=0.0),
                    np.maximum(f.flex_defer_max_kw.max(axis=0, initial=0.0), f.flex_catch_up_kw),
                ]
            )
            reach = np.abs(sens.d_dp[chosen]) @ swing
            can_bind = (base.max(axis=0) + reach > upper) | (base.min(axis=0) - reach < lower)
            chosen, base, lower, upper = chosen[can_bind], base[:, can_bind], lower[can_bind], upper[can_bind]
            if not chosen.size:
                return None
        return Sensitivity(
            base=base,
            d_dp=sens.d_dp[chosen],
            lower=lower,
            upper=upper,
            names=tuple(sens.names[i] for i in chosen),
        )

    def forecast(self, view: Window) -> HorizonForecast:
        """Net loads (substation, each microgrid) and prices over a window, resolved once per plan."""
        sites = self._balance.sites(view)
        site_of = np.full(len(view.batteries), -1, dtype=np.int64)
        for k, site in enumerate(sites):
            site_of[site.batteries] = k
        groups = DeviceGroups.of(view, [s.site for s in sites])
        flexible = view.flexible or FlexibleLoads.of([])
        defer = flexible.defer_max_kw(view.load_p_kw[:, flexible.columns])
        return HorizonForecast(
            sites=[s.batteries for s in sites],
            site_of_battery=site_of,
            site_load_kw=np.column_stack([s.net_load_kw for s in sites]) if sites else np.zeros((view.steps, 0)),
            substation_kw=view.load_p_kw.sum(axis=1) + view.ev_p_kw.sum(axis=1) - view.gen_p_kw.sum(axis=1),
            import_price=view.tariff.import_price(view.times),
            export_price=view.tariff.export_price(view.times),
            demand_charge_eur_per_kw=view.tariff.demand_charge_eur_per_kw,
            dt_h=view.dt_h,
            groups=groups,
            gen_kw=view.gen_p_kw,
            gen_available_kw=groups.sum_gen(view.gen_p_kw),
            flex_defer_kw=defer,
            flex_defer_max_kw=groups.sum_flex(defer),
            flex_catch_up_kw=groups.sum_flex(flexible.catch_up_kw),
            flex_backlog_max_kwh=groups.sum_flex(flexible.backlog_max_kwh),
        )

    def problem(
        self,
        f: HorizonForecast,
        fleet: BatteryFleet,
        horizon: slice,
        limits: Sensitivity | None = None,
        *,
        flexible: FlexibleLoads | None = None,
    ) -> DispatchProblem:
        """The LP of one horizon, from the predicted device state and the billing peaks reached so far."""
        owed = f.groups.sum_flex(flexible.backlog_kwh) if flexible is not None else np.zeros(f.groups.flex_site.size)
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
            gen_available_kw=f.gen_available_kw[horizon],
            site_of_gen=f.groups.gen_site,
            curtailment_penalty_eur_per_kwh=self.curtailment_penalty,
            flex_defer_max_kw=f.flex_defer_max_kw[horizon],
            flex_catch_up_kw=f.flex_catch_up_kw,
            flex_backlog_max_kwh=f.flex_backlog_max_kwh,
            flex_backlog0_kwh=np.minimum(owed, f.flex_backlog_max_kwh),
            site_of_flex=f.groups.flex_site,
            flex_penalty_eur_per_kwh=self.flex_penalty,
            sensitivity=None
            if limits is None
            else Sensitivity(limits.base[horizon], limits.d_dp, limits.lower, limits.upper, limits.names),
        )

    def plan(self, window: Window) -> Request:
        if window.lookahead is None:
            raise ValueError("MPC needs a look-ahead (forecasts) on the window")
        view = window.lookahead(window.steps + self.horizon_steps)
        f = self.forecast(view)
        limits = self.network_limits(view, f)
        # predicted device states; the real ones are the safety layer's
        fleet = copy.deepcopy(window.batteries)
        flexible = copy.deepcopy(window.flexible) if window.flexible is not None else FlexibleLoads.of([])
        requests = window.nothing()
        curtail = np.zeros((window.steps, f.gen_kw.shape[1]))
        shift = np.zeros((window.steps, len(flexible)))
        for t in range(0, window.steps, self.replan_every):
            horizon = slice(t, min(t + self.horizon_steps, len(f.substation_kw)))
            plan = solve_dispatch(self.problem(f, fleet, horizon, limits, flexible=flexible), warm=self._warm)
            self.stats.solves += 1
            self.stats.seconds += plan.solve_seconds
            if plan.status != "optimal":
                self.stats.not_optimal += 1
                self.stats.last_reason = plan.reason
            keep = min(self.replan_every, window.steps - t)
            requests[t : t + keep] = plan.battery_kw[:keep]
            curtail[t : t + keep] = f.groups.split_gen(plan.curtail_kw[:keep], f.gen_kw[t : t + keep], curtail.shape[1])
            for j in range(keep):
                applied = fleet.step(plan.battery_kw[j], window.dt_h)
                load = window.load_p_kw[t + j, flexible.columns]
                defer_max, catch_up_max = flexible.limits_kw(load, window.dt_h)
                shift[t + j] = flexible.step(
                    f.groups.split_flex(plan.flex_kw[j], defer_max, catch_up_max), load, window.dt_h
                )
                self._track_peaks(f, t + j, applied, plan.curtail_kw[j], plan.flex_kw[j])
        return Request(requests, curtail_kw=curtail, flex_kw=shift)

    def _track_peaks(
        self, f: HorizonForecast, t: int, battery_kw: FloatArray, curtail_kw: FloatArray, flex_kw: FloatArray
    ) -> None:
        """The billing peaks after step ``t`` as dispatched (groups' curtailment and shifts included)."""
        self._peak = max(self._peak, float(f.substation_kw[t] - battery_kw.sum() + curtail_kw.sum() - flex_kw.sum()))
        groups = f.groups
        for k, batteries in enumerate(f.sites):
            own = (
                f.site_load_kw[t, k]
                - battery_kw[batteries].sum()
                + curtail_kw[groups.gen_site == k].sum()
                - flex_kw[groups.flex_site == k].sum()
            )
            self._site_peaks[k] = max(self._site_peaks[k], float(own))
