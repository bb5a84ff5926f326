"""Disaggregation: an aggregate VPP award split over the assets at least cost, within every limit.

The award is first brought inside the envelope (:func:`gridmesh.optim.vpp_envelope.fit_award`: clipped, the
shortfall reported per interval with its reason); the target is then allocated by the dispatch LP of
:mod:`gridmesh.optim.formulation` (battery SOC dynamics and ratings, curtailment within the forecast,
degradation and curtailment costs) with two additions: the assets' sum equals the target in every interval,
and the network limits of :func:`gridmesh.optim.vpp.network_rows` hold. The envelope's guarantee makes this
LP feasible for every target it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmesh.optim.formulation import DispatchVars, build_lp
from gridmesh.optim.lp import LpStatus, SparseLp
from gridmesh.optim.problem import DispatchProblem
from gridmesh.optim.vpp import FloatArray, VppFleet, network_rows
from gridmesh.optim.vpp_envelope import Envelope, Fit, fit_award, vpp_envelope


@dataclass(frozen=True)
class Allocation:
    """Per-asset dispatch of an award: battery power ``(T, B)`` (generator convention), curtailment
    ``(T, G)``, SOC after each step ``(T, B)``; NaN unless ``status`` is optimal."""

    fit: Fit
    status: LpStatus
    message: str
    battery_kw: FloatArray
    curtail_kw: FloatArray
    soc: FloatArray
    cost_eur: float

    @property
    def target_kw(self) -> FloatArray:
        return self.fit.target_kw


def disaggregate(fleet: VppFleet, award_kw: FloatArray, *, envelope: Envelope | None = None) -> Allocation:
    """Allocate ``award_kw`` (``(T,)`` kW, ``> 0`` up) to the fleet; never raises for an infeasible LP."""
    fit = fit_award(envelope or vpp_envelope(fleet), award_kw)
    return allocate(fleet, fit)


def allocate(fleet: VppFleet, fit: Fit) -> Allocation:
    """The least-cost allocation of ``fit.target_kw`` (already inside the envelope)."""
    t = fleet.steps
    problem = DispatchProblem(
        dt_h=fleet.dt_h,
        e_kwh=fleet.e_kwh,
        p_max_kw=fleet.p_max_kw,
        eta_charge=fleet.eta_charge,
        eta_discharge=fleet.eta_discharge,
        soc_min=fleet.soc_min,
        soc_max=fleet.soc_max,
        soc0=fleet.soc0,
        degradation_eur_per_kwh=fleet.degradation_eur_per_kwh,
        net_load_kw=np.zeros(t),  # no grid tariff: the VPP's own costs only
        import_price=np.zeros(t),
        export_price=np.zeros(t),
        gen_available_kw=fleet.gen_available_kw,
        site_of_gen=np.full(fleet.n_generators, -1),
        curtailment_penalty_eur_per_kwh=fleet.curtailment_eur_per_kwh,
    )
    lp, v = build_lp(problem)
    target = lp.rows(t, lower=fit.target_kw, upper=fit.target_kw)
    lp.terms(target[:, None], v.discharge, 1.0)
    lp.terms(target[:, None], v.charge, -1.0)
    lp.terms(target[:, None], v.curtail, -1.0)
    _network(lp, fleet, v)
    solution = lp.solve()
    nan_b, nan_g = np.full((t, fleet.n_batteries), np.nan), np.full((t, fleet.n_generators), np.nan)
    if solution.status is not LpStatus.OPTIMAL:
        return Allocation(fit, solution.status, solution.message, nan_b, nan_g, nan_b, np.nan)
    x = solution.x  # clipped to the bounds: solver noise
    charge, discharge = np.clip(x[v.charge], 0.0, fleet.p_max_kw), np.clip(x[v.discharge], 0.0, fleet.p_max_kw)
    curtail = np.clip(x[v.curtail], 0.0, fleet.gen_available_kw)
    return Allocation(
        fit=fit,
        status=solution.status,
        message=solution.message,
        battery_kw=discharge - charge,
        curtail_kw=curtail,
        soc=solution.x[v.soc],
        cost_eur=float(solution.objective),
    )


def _network(lp: SparseLp, fleet: VppFleet, v: DispatchVars) -> None:
    """``lower[t] ≤ D_bat·(d − c) − D_gen·u ≤ upper[t]``: per-step headroom, unlike the dispatch LP's."""
    rows = network_rows(fleet)
    if not rows.size:
        return
    b = fleet.n_batteries
    block = lp.rows(rows.lower.shape, lower=rows.lower, upper=rows.upper)  # (T, M)
    d_bat, d_gen = rows.d_dp[:, :b], rows.d_dp[:, b:]
    lp.terms(block[:, :, None], v.discharge[:, None, :], d_bat[None])
    lp.terms(block[:, :, None], v.charge[:, None, :], -d_bat[None])
    lp.terms(block[:, :, None], v.curtail[:, None, :], -d_gen[None])
