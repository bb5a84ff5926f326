"""The dispatch problem as a linear programme (variables, rows, costs), built block by block.

Variables per step t: battery charge ``c`` and discharge ``d`` (kW, ≥ 0), SOC after the step, curtailment
``u`` (kW), flexible-load deferral ``r`` and catch-up ``k`` (kW, ≥ 0) with the backlog they leave, grid
import and export (kW, ≥ 0); one substation peak and one peak per site with a demand charge. Rows: SOC
dynamics, ``c + d ≤ p_max`` (so a step that both charges and discharges is realisable by alternating
within the step), backlog dynamics, power balance at the substation, peak ≥ import, site peak ≥ site
import, and the linearised network limits.

A flexible load must have caught up by the end of the horizon as far as its catch-up rate allows, so a
plan never pushes owed energy past its horizon.

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
    defer: IntArray  # (T, F)
    catch_up: IntArray  # (T, F)
    backlog: IntArray  # (T, F): energy owed after each step
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
    f = p.n_flexible
    defer = lp.variables((t, f), upper=p.flex_defer_max_kw, cost=p.flex_penalty_eur_per_kwh * dt)
    catch_up = lp.variables((t, f), upper=np.repeat(p.flex_catch_up_kw[None, :], t, axis=0))
    backlog_upper = np.repeat(p.flex_backlog_max_kwh[None, :], t, axis=0)
    if t:  # caught up by the horizon's end, as far as the catch-up rate allows
        backlog_upper[-1] = np.minimum(
            backlog_upper[-1], np.maximum(p.flex_backlog0_kwh - p.flex_catch_up_kw * dt * t, 0.0)
        )
    backlog = lp.variables((t, f), upper=backlog_upper)
    grid_import = lp.variables(t, cost=p.import_price * dt)
    grid_export = lp.variables(t, cost=-np.minimum(p.export_price, p.import_price) * dt)
    v = DispatchVars(charge, discharge, soc, curtail, defer, catch_up, backlog, grid_import, grid_export)

    _soc_dynamics(lp, p, v)
    _backlog_dynamics(lp, p, v)
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


def _backlog_dynamics(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``backlog[t] − backlog[t−1] − dt·r[t] + dt·k[t] = 0``, with ``backlog[−1] = backlog0`` on the right."""
    rhs = np.zeros((p.steps, p.n_flexible))
    if p.steps:
        rhs[0] = p.flex_backlog0_kwh
    rows = lp.rows(v.backlog.shape, lower=rhs, upper=rhs)
    lp.terms(rows, v.backlog, 1.0)
    lp.terms(rows[1:], v.backlog[:-1], -1.0)
    lp.terms(rows, v.defer, -p.dt_h)
    lp.terms(rows, v.catch_up, p.dt_h)


def _injections(lp: SparseLp, rows: IntArray, p: DispatchProblem, v: DispatchVars, *, site: int | None = None) -> None:
    """``+Σd − Σc − Σu + Σr − Σk`` of the devices (of one site, if given) on each of ``rows`` (T,)."""

    def of(owner: IntArray) -> IntArray | slice:
        return slice(None) if site is None else owner == site

    batteries, gens, flex = of(p.site_of_battery), of(p.site_of_gen), of(p.site_of_flex)
    lp.terms(rows[:, None], v.discharge[:, batteries], 1.0)
    lp.terms(rows[:, None], v.charge[:, batteries], -1.0)
    lp.terms(rows[:, None], v.curtail[:, gens], -1.0)
    lp.terms(rows[:, None], v.defer[:, flex], 1.0)
    lp.terms(rows[:, None], v.catch_up[:, flex], -1.0)


def _balance(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``import − export + (device injections) = net_load`` at the substation."""
    rows = lp.rows(p.steps, lower=p.net_load_kw, upper=p.net_load_kw)
    lp.terms(rows, v.grid_import, 1.0)
    lp.terms(rows, v.grid_export, -1.0)
    _injections(lp, rows, p, v)


def _peaks(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """Peak ≥ import (substation) and site peak ≥ site import, for the peaks that carry a charge."""
    if p.demand_charge_eur_per_kw > 0:
        peak = lp.variables(1, lower=p.peak_so_far_kw, cost=p.demand_charge_eur_per_kw)
        rows = lp.rows(p.steps, lower=0.0)
        lp.terms(rows, peak, 1.0)
        lp.terms(rows, v.grid_import, -1.0)
    for s in np.flatnonzero(p.site_demand_charge_eur_per_kw > 0):
        site_peak = lp.variables(1, lower=p.site_peak_so_far_kw[s], cost=p.site_demand_charge_eur_per_kw[s])
        rows = lp.rows(p.steps, lower=p.site_net_load_kw[:, s])  # peak + (site injections) ≥ site net load
        lp.terms(rows, site_peak, 1.0)
        _injections(lp, rows, p, v, site=int(s))


def _network(lp: SparseLp, p: DispatchProblem, v: DispatchVars) -> None:
    """``lower ≤ base + D_bat·(d − c) − D_gen·u + D_flex·(r − k) ≤ upper`` per monitored quantity and step."""
    sens = p.sensitivity
    if sens is None or sens.size == 0:
        return
    b, g = p.n_batteries, p.n_generators
    rows = lp.rows(sens.base.shape, lower=sens.lower - sens.base, upper=sens.upper - sens.base)  # (T, M)
    d_bat, d_gen, d_flex = sens.d_dp[:, :b], sens.d_dp[:, b : b + g], sens.d_dp[:, b + g :]
    lp.terms(rows[:, :, None], v.discharge[:, None, :], d_bat[None])
    lp.terms(rows[:, :, None], v.charge[:, None, :], -d_bat[None])
    lp.terms(rows[:, :, None], v.curtail[:, None, :], -d_gen[None])
    lp.terms(rows[:, :, None], v.defer[:, None, :], d_flex[None])
    lp.terms(rows[:, :, None], v.catch_up[:, None, :], -d_flex[None])


def extract(
    p: DispatchProblem, v: DispatchVars, solution: LpSolution
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Charge, discharge, curtailment and flexible-load shift (deferral − catch-up) from an optimal solution,
    clipped to their bounds (solver noise)."""
    x = solution.x
    charge = np.clip(x[v.charge], 0.0, p.p_max_kw)
    discharge = np.clip(x[v.discharge], 0.0, p.p_max_kw)
    curtail = np.clip(x[v.curtail], 0.0, p.gen_available_kw)
    shift = np.clip(x[v.defer], 0.0, p.flex_defer_max_kw) - np.clip(x[v.catch_up], 0.0, p.flex_catch_up_kw)
    return charge, discharge, curtail, shift
