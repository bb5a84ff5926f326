"""The dispatch problem as a linear programme (variables, rows, costs), built block by block.

Variables per step t: battery charge ``c`` and discharge ``d`` (kW, ≥ 0), SOC after the step, curtailment
``u`` (kW), grid import and export (kW, ≥ 0); one substation peak and one peak per site with a demand
charge. Rows: SOC dynamics, ``c + d ≤ p_max`` (so a step that both charges and discharges is realisable by
alternating within the step), power balance at the substation, peak ≥ import, site peak ≥ site import,
and the linearised network limits.

Prices: with ``export_price ≤ import_price`` importing and exporting at once never pays. Where the export
price is higher, the LP prices export at the import price (a convex, conservative surrogate: the true
tariff would make the problem non-convex); the reported cost uses the true tariff. Charging and
discharging at once loses energy, so with non-negative prices and a positive degradation cost it never
pays either; with negative prices it may, to burn surplus energy as losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmesh.optim.lp import IntArray, LpSolution, SparseLp
from gridmesh.optim.problem import DispatchProblem, FloatArray


@dataclass(frozen=True)
class DispatchVars:
    """Indices of the LP's variables, shaped like the quantities they stand for."""

    charge: IntArray  # (T, B)
    discharge: IntArray  # (T, B)
    soc: IntArray  # (T, B): SOC after each step
    curtail: IntArray  # (T, G)
    grid_import: IntArray  # (T,)
    grid_export: IntArray  # (T,)


def build_lp(p: DispatchProblem) -> tuple[SparseLp, DispatchVars]:
    """The LP of ``p`` with the indices of its variables."""
    lp = SparseLp()
    dt = p.dt_h
    t, b = p.steps, p.n_batteries
    charge = lp.variables((t, b), upper=p.p_max_kw, cost=p.degradation_eur_per_kwh * dt)
    discharge = lp.variables((t, b), upper=p.p_max_kw, cost=p.degradation_eur_per_kwh * dt)
    soc_lower = np.repeat(p.soc_min[None, :], t, axis=0)
    if p.soc_terminal is not None and t:
        soc_lower[-1] = np.fmax(soc_lower[-1], p.soc_terminal)  # NaN targets leave soc_min
    soc = lp.variables((t, b), lower=soc_lower, upper=p.soc_max)
    curtail = lp.variables((t, p.n_generators), upper=p.gen_available_kw, cost=p.curtailment_penalty_eur_per_kwh * dt)
    grid_import = lp.variables(t, cost=p.import_price * dt)
    grid_export = lp.variables(t, cost=-np.minimum(p.export_price, p.import_price) * dt)
    v = DispatchVars(charge, discharge, soc, curtail, grid_import, grid_export)

    _soc_dynamics(lp, p, v)
    both = lp.rows((t, b), upper=p.p_max_kw)
    lp.terms(both, charge)
    lp.terms(both, discharge)
    _balance(lp, p, v)
    _peaks(lp, p, v)
    _network(lp, p, v)
    return lp, v


def _soc_dynamics(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``soc[t] − soc[t−1] − η_c·dt/E·c[t] + dt/(η_d·E)·d[t] = 0``, with ``soc[−1] = soc0`` on the right."""
    rhs = np.zeros((p.steps, p.n_batteries))
    if p.steps:
        rhs[0] = p.soc0
    rows = lp.rows(v.soc.shape, lower=rhs, upper=rhs)
    lp.terms(rows, v.soc, 1.0)
    lp.terms(rows[1:], v.soc[:-1], -1.0)
    lp.terms(rows, v.charge, -p.eta_charge * p.dt_h / p.e_kwh)
    lp.terms(rows, v.discharge, p.dt_h / (p.eta_discharge * p.e_kwh))


def _balance(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``import − export + Σd − Σc − Σu = net_load`` at the substation."""
    rows = lp.rows(p.steps, lower=p.net_load_kw, upper=p.net_load_kw)
    lp.terms(rows, v.grid_import, 1.0)
    lp.terms(rows, v.grid_export, -1.0)
    lp.terms(rows[:, None], v.discharge, 1.0)
    lp.terms(rows[:, None], v.charge, -1.0)
    lp.terms(rows[:, None], v.curtail, -1.0)


def _peaks(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """Peak ≥ import (substation) and site peak ≥ site import, for the peaks that carry a charge."""
    if p.demand_charge_eur_per_kw > 0:
        peak = lp.variables(1, lower=p.peak_so_far_kw, cost=p.demand_charge_eur_per_kw)
        rows = lp.rows(p.steps, lower=0.0)
        lp.terms(rows, peak, 1.0)
        lp.terms(rows, v.grid_import, -1.0)
    for s in np.flatnonzero(p.site_demand_charge_eur_per_kw > 0):
        site_peak = lp.variables(1, lower=p.site_peak_so_far_kw[s], cost=p.site_demand_charge_eur_per_kw[s])
        rows = lp.rows(p.steps, lower=p.site_net_load_kw[:, s])  # peak + Σd − Σc − Σu ≥ site net load
        lp.terms(rows, site_peak, 1.0)
        mine = p.site_of_battery == s
        lp.terms(rows[:, None], v.discharge[:, mine], 1.0)
        lp.terms(rows[:, None], v.charge[:, mine], -1.0)
        lp.terms(rows[:, None], v.curtail[:, p.site_of_gen == s], -1.0)


def _network(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``lower ≤ base + D_bat·(d − c) − D_gen·u ≤ upper`` per monitored quantity and step."""
    sens = p.sensitivity
    if sens is None or sens.size == 0:
        return
    b = p.n_batteries
    rows = lp.rows(sens.base.shape, lower=sens.lower - sens.base, upper=sens.upper - sens.base)  # (T, M)
    d_bat, d_gen = sens.d_dp[:, :b], sens.d_dp[:, b:]
    lp.terms(rows[:, :, None], v.discharge[:, None, :], d_bat[None])
    lp.terms(rows[:, :, None], v.charge[:, None, :], -d_bat[None])
    lp.terms(rows[:, :, None], v.curtail[:, None, :], -d_gen[None])


def extract(p: DispatchProblem, v: DispatchVars, solution: LpSolution) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Charge, discharge and curtailment from an optimal solution, clipped to their bounds (solver noise)."""
    x = solution.x
    charge = np.clip(x[v.charge], 0.0, p.p_max_kw)
    discharge = np.clip(x[v.discharge], 0.0, p.p_max_kw)
    curtail = np.clip(x[v.curtail], 0.0, p.gen_available_kw)
    return charge, discharge, curtail
