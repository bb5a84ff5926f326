"""Model-predictive dispatch: one horizon of batteries, curtailment and flexible loads as a linear programme (HiGHS).

:func:`solve_dispatch` minimises energy cost (time-of-use or dynamic tariff), the peak demand charge at the
substation and at each microgrid PCC, the curtailment penalty and battery degradation, subject to SOC
dynamics and limits, power limits and, when given, linearised voltage and branch-flow limits. It never
raises for a problem without solution: the plan says "infeasible because …" and holds the safe fallback
(batteries idle, nothing curtailed), so a control cycle always has a dispatch to apply.

A rolling-horizon controller calls it each cycle with fresh forecasts, the measured SOC and the billing
peaks reached so far; :func:`perfect_foresight` is the same solve over a whole period with the actuals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from gridmesh.optim.feasibility import diagnose, precheck
from gridmesh.optim.formulation import build_lp, extract
from gridmesh.optim.lp import LpStatus, WarmStart, solve_lp
from gridmesh.optim.problem import DispatchProblem, FloatArray

__all__ = [
    "CostBreakdown",
    "DispatchPlan",
    "DispatchProblem",
    "PlanStatus",
    "dispatch_cost",
    "fallback_plan",
    "perfect_foresight",
    "solve_dispatch",
]

PlanStatus = Literal["optimal", "infeasible", "fallback"]
FALLBACK = "batteries idle, nothing curtailed, flexible loads catching up"


@dataclass(frozen=True)
class CostBreakdown:
    """Cost of a dispatch over the horizon, €.

    ``demand`` and ``site_demand`` are the demand charges on the billing peaks (the peak so far included).
    """

    energy: float
    demand: float
    site_demand: float
    degradation: float
    curtailment: float
    flexibility: float = 0.0  # discomfort of deferred consumption

    @property
    def total(self) -> float:
        return self.energy + self.demand + self.site_demand + self.degradation + self.curtailment + self.flexibility

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class DispatchPlan:
    """A dispatch for every step of the horizon and what it costs.

    Powers in kW; ``battery_kw`` in generator convention (discharge positive) equals
    ``discharge_kw − charge_kw``. Imports in load convention, negative for export. ``soc`` has T + 1 rows:
    the initial SOC, then the SOC after each step. ``monitored`` is the linear estimate of the network
    quantities (``None`` without a sensitivity); the full power flow has the last word.
    """

    battery_kw: FloatArray  # (T, B)
    charge_kw: FloatArray  # (T, B)
    discharge_kw: FloatArray  # (T, B)
    soc: FloatArray  # (T + 1, B)
    curtail_kw: FloatArray  # (T, G)
    flex_kw: FloatArray  # (T, F): consumption deferred (+) or caught up (−)
    grid_import_kw: FloatArray  # (T,)
    site_import_kw: FloatArray  # (T, S)
    peak_kw: float  # billing peak at the substation after this horizon
    site_peak_kw: FloatArray  # (S,)
    objective_eur: float
    breakdown: dict[str, float]
    status: PlanStatus
    reason: str  # empty when optimal; "infeasible because …" or why the fallback was taken
    solve_seconds: float
    monitored: FloatArray | None = None  # (T, M)


def _flows(
    p: DispatchProblem, net_battery: FloatArray, curtail: FloatArray, flex: FloatArray
) -> tuple[FloatArray, FloatArray]:
    grid = p.net_load_kw - net_battery.sum(axis=1) + curtail.sum(axis=1) - flex.sum(axis=1)
    site = p.site_net_load_kw.copy()
    for s in range(p.n_sites):
        site[:, s] += (
            -net_battery[:, p.site_of_battery == s].sum(axis=1)
            + curtail[:, p.site_of_gen == s].sum(axis=1)
            - flex[:, p.site_of_flex == s].sum(axis=1)
        )
    return grid, site


def dispatch_cost(
    p: DispatchProblem,
    *,
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    curtail_kw: FloatArray | None = None,
    flex_kw: FloatArray | None = None,
) -> CostBreakdown:
    """What a given dispatch costs under the problem's tariff (true import and export prices)."""
    curtail = np.zeros((p.steps, p.n_generators)) if curtail_kw is None else np.asarray(curtail_kw)
    flex = np.zeros((p.steps, p.n_flexible)) if flex_kw is None else np.asarray(flex_kw)
    charge, discharge = np.asarray(charge_kw), np.asarray(discharge_kw)
    grid, site = _flows(p, discharge - charge, curtail, flex)
    dt = p.dt_h
    energy = float(np.sum(p.import_price * np.maximum(grid, 0.0) + p.export_price * np.minimum(grid, 0.0)) * dt)
    peak = max(p.peak_so_far_kw, float(grid.max(initial=0.0)))
    site_peak = np.maximum(p.site_peak_so_far_kw, site.max(axis=0, initial=0.0))
    return CostBreakdown(
        energy=energy,
        demand=p.demand_charge_eur_per_kw * peak,
        site_demand=float(p.site_demand_charge_eur_per_kw @ site_peak),
        degradation=float(np.sum((charge + discharge) @ p.degradation_eur_per_kwh) * dt),
        curtailment=float(curtail.sum() * p.curtailment_penalty_eur_per_kwh * dt),
        flexibility=float(np.maximum(flex, 0.0).sum() * p.flex_penalty_eur_per_kwh * dt),
    )


def _plan(
    p: DispatchProblem,
    charge: FloatArray,
    discharge: FloatArray,
    curtail: FloatArray,
    flex: FloatArray,
    *,
    status: PlanStatus,
    reason: str,
    seconds: float,
) -> DispatchPlan:
    net = discharge - charge
    step_soc = (p.eta_charge * charge - discharge / p.eta_discharge) * p.dt_h / p.e_kwh
    soc = np.vstack([p.soc0[None, :], p.soc0 + np.cumsum(step_soc, axis=0)])
    grid, site = _flows(p, net, curtail, flex)
    cost = dispatch_cost(p, charge_kw=charge, discharge_kw=discharge, curtail_kw=curtail, flex_kw=flex)
    monitored = None
    if p.sensitivity is not None:
        monitored = p.sensitivity.predict(np.hstack([net, -curtail, flex]))
    return DispatchPlan(
        battery_kw=net,
        charge_kw=charge,
        discharge_kw=discharge,
        soc=soc,
        curtail_kw=curtail,
        flex_kw=flex,
        grid_import_kw=grid,
        site_import_kw=site,
        peak_kw=max(p.peak_so_far_kw, float(grid.max(initial=0.0))),
        site_peak_kw=np.maximum(p.site_peak_so_far_kw, site.max(axis=0, initial=0.0)),
        objective_eur=cost.total,
        breakdown=cost.as_dict(),
        status=status,
        reason=reason,
        solve_seconds=seconds,
        monitored=monitored,
    )


def _catch_up(p: DispatchProblem) -> FloatArray:
    """Flexible loads paying back what they owe as fast as they can: the fallback's load shift (≤ 0)."""
    owed = np.maximum(p.flex_backlog0_kwh[None, :] - p.flex_catch_up_kw * p.dt_h * np.arange(p.steps)[:, None], 0.0)
    return -np.minimum(p.flex_catch_up_kw, owed / p.dt_h)


def fallback_plan(p: DispatchProblem, *, status: PlanStatus = "fallback", reason: str = "") -> DispatchPlan:
    """The safe dispatch: every battery idle (SOC held), nothing curtailed, flexible loads catching up what
    they owe; evaluated under the tariff."""
    idle = np.zeros((p.steps, p.n_batteries))
    none = np.zeros((p.steps, p.n_generators))
    return _plan(p, idle, idle, none, _catch_up(p), status=status, reason=reason, seconds=0.0)


def _feasible(p: DispatchProblem, time_limit_s: float) -> bool:
    if precheck(p) is not None:
        return False
    lp, _ = build_lp(p)
    return lp.solve(time_limit_s=time_limit_s).status is LpStatus.OPTIMAL


def solve_dispatch(p: DispatchProblem, *, time_limit_s: float = 10.0, warm: WarmStart | None = None) -> DispatchPlan:
    """The cost-optimal dispatch of one horizon, or an explained fallback; never raises for bad luck.

    Args:
        p: the horizon: forecasts, tariffs, device limits, optional network sensitivities.
        time_limit_s: HiGHS's time limit; past it the plan is the fallback with status "fallback".
        warm: a rolling horizon's warm start (:class:`~gridmesh.optim.lp.WarmStart`), kept across calls.

    Returns:
        A plan with status "optimal"; "infeasible" (reason "infeasible because …", fallback dispatch);
        or "fallback" (the solver stopped without an optimum, fallback dispatch).
    """
    reason = precheck(p)
    if reason is not None:
        return fallback_plan(p, status="infeasible", reason=reason)
    lp, variables = build_lp(p)
    solution = solve_lp(lp, time_limit_s=time_limit_s, warm=warm)
    if solution.status is LpStatus.OPTIMAL:
        charge, discharge, curtail, flex = extract(p, variables, solution)
        return _plan(p, charge, discharge, curtail, flex, status="optimal", reason="", seconds=solution.seconds)
    if solution.status is LpStatus.INFEASIBLE:
        why = diagnose(p, lambda q: _feasible(q, time_limit_s), solution.message)
        plan = fallback_plan(p, status="infeasible", reason=why)
    else:
        why = f"no optimal dispatch because HiGHS stopped: {solution.message}; fallback: {FALLBACK}"
        plan = fallback_plan(p, status="fallback", reason=why)
    return replace(plan, solve_seconds=solution.seconds)


def perfect_foresight(p: DispatchProblem, *, time_limit_s: float = 120.0) -> DispatchPlan:
    """The dispatch of a whole period (e.g. a month) knowing every forecast exactly: one solve, no rolling.

    Its cost is a lower bound for any controller that must act on forecasts (given the same model), which
    makes it the yardstick for an MPC's regret. It is :func:`solve_dispatch` with a longer time limit.
    """
    return solve_dispatch(p, time_limit_s=time_limit_s)
