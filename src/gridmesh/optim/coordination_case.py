"""Coordination cases (microgrids + feeder) and their centralised reference solution.

* :func:`demo_case`: the demo scenario's microgrids for one day — loads, EV charging and must-run
  generation behind each PCC (as :mod:`gridmesh.control.site_balance` nets them), curtailable generation
  apart, the microgrid's batteries as one aggregate, the PCC transformer's rating, the tariff's prices;
  the feeder's base load is the rest of the substation's, the limit its transformers' rating, and the
  voltage sensitivities of each PCC bus come from :func:`gridmesh.physics.sensitivity.voltage_sensitivity`.
* :func:`synthetic_case`: N seeded microgrids on a few radial feeders, the transformer limit set to
  bind in the peak and the voltage band monitored (it binds in some seeds).
* :func:`solve_centralised`: the same microgrid and feeder formulations in one QP — what ADMM must reach.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from gridmesh.errors import GridmeshError
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers, member_positions, pcc_rating_kva
from gridmesh.optim.feeder_problem import FeederData, add_feeder
from gridmesh.optim.lp import INF, FloatArray, LpStatus
from gridmesh.optim.microgrid_problem import MicrogridData, add_microgrid, cost_at
from gridmesh.optim.qp import QpSolver, QuadraticLp
from gridmesh.physics.powerflow import Injections, PowerFlow
from gridmesh.physics.sensitivity import voltage_sensitivity


class Prices(Protocol):
    def import_price(self, times: pd.DatetimeIndex) -> FloatArray: ...

    def export_price(self, times: pd.DatetimeIndex) -> FloatArray: ...


class ScenarioWindow(Protocol):
    """What :func:`demo_case` reads of a window; :class:`gridmesh.control.controller.Window` has it all
    (a protocol, since ``optim`` does not import ``control``)."""

    @property
    def network(self) -> Network: ...
    @property
    def sites(self) -> Mapping[str, SiteMembers]: ...
    @property
    def times(self) -> pd.DatetimeIndex: ...
    @property
    def dt_h(self) -> float: ...
    @property
    def load_p_kw(self) -> FloatArray: ...
    @property
    def gen_p_kw(self) -> FloatArray: ...
    @property
    def ev_p_kw(self) -> FloatArray: ...
    @property
    def tariff(self) -> Prices: ...
    @property
    def load_q_kvar(self) -> FloatArray | None: ...
    @property
    def gen_q_kvar(self) -> FloatArray | None: ...


@dataclass(frozen=True)
class CoordinationCase:
    """Microgrids (each agent's private data) and the feeder (the DSO's data), in the same agent order."""

    name: str
    microgrids: tuple[MicrogridData, ...]
    feeder: FeederData

    def __post_init__(self) -> None:
        ids = tuple(m.id for m in self.microgrids)
        if ids != self.feeder.agents:
            raise ValueError(f"case {self.name}: feeder agents {self.feeder.agents} differ from microgrids {ids}")
        if any(m.steps != self.feeder.steps or m.dt_h != self.feeder.dt_h for m in self.microgrids):
            raise ValueError(f"case {self.name}: every microgrid needs the feeder's {self.feeder.steps} steps and dt")

    def without(self, agent: str) -> CoordinationCase:
        """The case with one microgrid left out (its import counted as zero): what the others reach without it."""
        keep = [i for i, a in enumerate(self.feeder.agents) if a != agent]
        f = self.feeder
        feeder = FeederData(
            agents=tuple(f.agents[i] for i in keep),
            dt_h=f.dt_h,
            pcc_limit_kw=f.pcc_limit_kw[keep],
            base_kw=f.base_kw,
            transformer_limit_kw=f.transformer_limit_kw,
            loss_eur_per_kw2h=f.loss_eur_per_kw2h,
            v_base=f.v_base,
            dv_dp=f.dv_dp[:, keep] if f.monitored else f.dv_dp,
            v_min=f.v_min,
            v_max=f.v_max,
            monitored=f.monitored,
        )
        return CoordinationCase(self.name, tuple(self.microgrids[i] for i in keep), feeder)


@dataclass(frozen=True)
class CentralSolution:
    """The centralised optimum: PCC imports ``(N, T)``, total cost (€) and its per-microgrid parts."""

    pcc_kw: FloatArray
    objective_eur: float
    seconds: float


class CentralisedError(GridmeshError):
    """The centralised problem has no solution (the feeder limits cannot be met)."""


def solve_centralised(case: CoordinationCase) -> CentralSolution:
    """All microgrids and the feeder in one QP over HiGHS, built from the same pieces as the ADMM steps."""
    qp = QuadraticLp()
    pcc = np.column_stack([add_microgrid(qp, m).pcc for m in case.microgrids])  # (T, N)
    add_feeder(qp, case.feeder, pcc)
    solution = qp.solve(time_limit_s=120.0)
    if solution.status is not LpStatus.OPTIMAL:
        raise CentralisedError(f"case {case.name}: centralised problem {solution.status}: {solution.message}")
    return CentralSolution(solution.x[pcc.T], solution.objective, solution.seconds)


def plan_cost_eur(case: CoordinationCase, pcc_kw: FloatArray, feeder_kw: FloatArray) -> float:
    """Total cost of a distributed plan: each microgrid's least cost following its bid plus the network
    cost of the DSO's copy — the figure compared with the centralised optimum."""
    own = sum(cost_at(m, p) for m, p in zip(case.microgrids, pcc_kw, strict=True))
    return float(own) + case.feeder.cost_eur(feeder_kw)


def synthetic_case(
    microgrids: int, *, seed: int = 0, steps: int = 24, feeders: int = 5, tight: float = 0.1
) -> CoordinationCase:
    """``microgrids`` seeded microgrids (residential/commercial mixes, PV, batteries, shiftable load) on
    ``feeders`` radial feeders, over one day of ``steps`` steps.

    The far ends of the feeders sag to 0.94 pu uncoordinated (band 0.95–1.05 pu). The transformer limit
    lies ``tight`` of the way from the lowest peak the microgrids can reach (an LP over the same
    constraints) to the uncoordinated peak: the case is feasible by construction, and with the default
    ``tight`` the limit binds at the optimum (seeds 0–2 of 3 and 50 microgrids checked).
    """
    if microgrids < 1 or steps < 2 or feeders < 1 or not 0 < tight <= 1:
        raise ValueError("synthetic_case needs at least 1 microgrid, 2 steps, 1 feeder and 0 < tight ≤ 1")
    rng = np.random.default_rng(seed)
    dt_h = 24.0 / steps
    hour = (np.arange(steps) + 0.5) * dt_h
    evening = np.exp(-0.5 * ((hour - 19.0) / 2.0) ** 2)
    midday = np.exp(-0.5 * ((hour - 13.0) / 3.0) ** 2)
    sun = np.clip(np.sin(np.pi * (hour - 6.0) / 14.0), 0.0, None)
    import_price = np.where(hour < 6, 0.22, np.where((hour >= 17) & (hour < 21), 0.42, 0.30))
    export_price = np.full(steps, 0.08)
    grids = []
    for i in range(microgrids):
        scale = rng.uniform(40.0, 200.0)
        share = rng.uniform(0.0, 1.0)  # residential (evening) vs commercial (midday)
        load = scale * (0.35 + share * evening + (1.0 - share) * 0.8 * midday) * rng.uniform(0.95, 1.05, steps)
        e_kwh = scale * rng.uniform(0.5, 1.5)
        grids.append(
            MicrogridData(
                id=f"mg-{i:03d}",
                dt_h=dt_h,
                load_kw=load,
                pv_kw=scale * rng.uniform(0.0, 0.8) * sun,
                import_price=import_price,
                export_price=export_price,
                pcc_limit_kw=float(1.6 * scale),
                battery_e_kwh=e_kwh,
                battery_p_kw=e_kwh / 2.0,
                flex_energy_kwh=float(scale * rng.uniform(0.0, 0.5)),
                flex_max_kw=float(scale * 0.3),
            )
        )
    uncoordinated = np.array([g.load_kw - g.pv_kw + g.flex_energy_kwh / 24.0 for g in grids])  # (N, T)
    base = 0.5 * uncoordinated.sum(axis=0).mean() * (0.6 + 0.4 * evening)
    # Radial feeders: microgrid i sits at position k along feeder f; voltage drop through shared sections.
    feeder_of = np.arange(microgrids) % feeders
    position = np.arange(microgrids) // feeders + 1.0
    same = feeder_of[:, None] == feeder_of[None, :]
    shared = np.where(same, np.minimum(position[:, None], position[None, :]), 0.0)  # (N, N) sections in common
    k = (1.02 - 0.94) / max(float((shared @ uncoordinated.max(axis=1)).max()), 1e-9)  # pu per kW·section
    peak = float((base + uncoordinated.sum(axis=0)).max())
    feeder = FeederData(
        agents=tuple(g.id for g in grids),
        dt_h=dt_h,
        pcc_limit_kw=np.array([g.pcc_limit_kw for g in grids]),
        base_kw=base,
        transformer_limit_kw=10.0 * peak,
        v_base=np.full((steps, microgrids), 1.02),
        dv_dp=-k * shared,
        v_min=np.full(microgrids, 0.95),
        v_max=np.full(microgrids, 1.05),
        monitored=tuple(f"v pcc {g.id}" for g in grids),
    )
    lowest = _lowest_peak_kw(grids, feeder)
    feeder = replace(feeder, transformer_limit_kw=lowest + tight * max(peak - lowest, 0.0))
    return CoordinationCase(f"synthetic-{microgrids}-seed{seed}", tuple(grids), feeder)


def _lowest_peak_kw(grids: Sequence[MicrogridData], feeder: FeederData) -> float:
    """The lowest transformer peak the microgrids can reach within their own and the voltage limits (an LP)."""
    qp = QuadraticLp()
    pcc = np.column_stack([add_microgrid(qp, m).pcc for m in grids])
    s = add_feeder(qp, feeder, pcc)
    peak = qp.variables(1, lower=-INF)
    above = qp.rows(feeder.steps, lower=0.0)  # peak − s_t ≥ 0
    qp.terms(above, peak, 1.0)
    qp.terms(above, s, -1.0)
    solver = QpSolver(qp)
    cost = np.zeros(qp.num_vars)
    cost[peak] = 1.0
    solver.set_cost(cost)
    solver.set_hessian(np.zeros(qp.num_vars))
    solution = solver.solve()
    if solution.status is not LpStatus.OPTIMAL:
        raise CentralisedError(f"synthetic case: the voltage band cannot be met ({solution.message}); change the seed")
    return float(solution.x[peak][0])


def demo_case(
    window: ScenarioWindow, engine: PowerFlow, *, interval_steps: int = 4, transformer_limit_kw: float | None = None
) -> CoordinationCase:
    """The microgrids of a scenario's window (e.g. the demo's first day: ``StudyTwin(demo).window(0, 96)``),
    averaged over ``interval_steps`` steps (4 quarter-hours: the hourly day-ahead resolution).

    The transformer limit defaults to the rating of the substation's transformers (those at the highest
    voltage). Voltage limits are never tighter than what idle batteries give ("no new violations"), so
    the case stays feasible where the grid is already outside its band for reasons microgrids cannot fix.
    """
    steps = len(window.times)
    if interval_steps < 1 or steps % interval_steps:
        raise ValueError(f"interval_steps must divide the window's {steps} steps, got {interval_steps}")
    net = window.network
    fleet = list(net.batteries.values())  # the scenario's initial state of charge
    e_kwh, p_kw, eta_c, eta_d, soc_min, soc_max, soc0 = (
        np.array([getattr(b, name) for b in fleet], dtype=np.float64)
        for name in ("e_kwh", "p_kw", "eta_charge", "eta_discharge", "soc_min", "soc_max", "soc_init")
    )

    def mean(values: FloatArray) -> FloatArray:  # (T, ...) → (T / interval_steps, ...)
        return np.asarray(values.reshape(-1, interval_steps, *values.shape[1:]).mean(axis=1), dtype=np.float64)

    dt_h = window.dt_h * interval_steps
    prices = mean(window.tariff.import_price(window.times)), mean(window.tariff.export_price(window.times))
    curtailable = np.array([g.curtailable for g in net.generators.values()], dtype=bool)
    grids, net_loads, pcc_buses, batteries = [], [], [], []
    for site, members in window.sites.items():
        if members.level is not SiteLevel.MICROGRID:
            continue
        loads = member_positions(tuple(net.loads), members.elements["loads"])
        evs = member_positions(tuple(net.ev_chargers), members.elements["ev_chargers"])
        own = np.zeros(curtailable.size, dtype=bool)
        own[member_positions(tuple(net.generators), members.elements["generators"])] = True
        bats = member_positions(tuple(net.batteries), members.elements["batteries"])
        e = e_kwh[bats]
        weight = e / max(float(e.sum()), 1e-9)
        must_run = window.gen_p_kw[:, own & ~curtailable].sum(axis=1)
        load = window.load_p_kw[:, loads].sum(axis=1) + window.ev_p_kw[:, evs].sum(axis=1) - must_run
        pv = window.gen_p_kw[:, own & curtailable].sum(axis=1)
        pcc = net.switches[net.sites[site].pcc or ""]
        grids.append(
            MicrogridData(
                id=site,
                dt_h=dt_h,
                load_kw=mean(load),
                pv_kw=mean(pv),
                import_price=prices[0],
                export_price=prices[1],
                pcc_limit_kw=pcc_rating_kva(net, pcc.id) or float(np.abs(load).max() + pv.max() + 1.0),
                battery_e_kwh=float(e.sum()),
                battery_p_kw=float(p_kw[bats].sum()),
                eta_charge=float(weight @ eta_c[bats]) if bats.size else 0.95,
                eta_discharge=float(weight @ eta_d[bats]) if bats.size else 0.95,
                soc_min=float(weight @ soc_min[bats]) if bats.size else 0.0,
                soc_max=float(weight @ soc_max[bats]) if bats.size else 1.0,
                soc0=float(weight @ soc0[bats]) if bats.size else 0.5,
            )
        )
        net_loads.append(load - pv)
        pcc_buses.append(pcc.bus)
        batteries.append(int(bats[0]) if bats.size else -1)
    if not grids:
        raise ValueError("the scenario has no microgrids (sites of level 1)")
    net_load = np.array(net_loads)  # (N, T) at the window's resolution
    substation = window.load_p_kw.sum(axis=1) + window.ev_p_kw.sum(axis=1) - window.gen_p_kw.sum(axis=1)
    feeder = FeederData(
        agents=tuple(g.id for g in grids),
        dt_h=dt_h,
        pcc_limit_kw=np.array([g.pcc_limit_kw for g in grids]),
        base_kw=mean(substation - net_load.sum(axis=0)),
        transformer_limit_kw=transformer_limit_kw or _substation_rating_kva(net),
    )
    if min(batteries) >= 0 and window.load_q_kvar is not None and window.gen_q_kvar is not None:
        injections = Injections(
            window.load_p_kw,
            window.load_q_kvar,
            window.gen_p_kw,
            window.gen_q_kvar,
            window.ev_p_kw,
            np.zeros((steps, len(fleet))),
        )
        position = {b: i for i, b in enumerate(engine.index.buses)}
        sens = voltage_sensitivity(
            engine, net, injections, buses=[position[b] for b in pcc_buses], batteries=batteries, generators=[]
        )
        # The battery sits behind the PCC: a kW more injected there is a kW less imported at the PCC.
        dv_dp = -sens.d_dp
        v_idle = sens.base  # (T, M) with every PCC at its idle import
        feeder = replace(
            feeder,
            v_base=mean(v_idle - net_load.T @ dv_dp.T),
            dv_dp=dv_dp,
            v_min=np.minimum(sens.lower, v_idle.min(axis=0)),
            v_max=np.maximum(sens.upper, v_idle.max(axis=0)),
            monitored=sens.names,
        )
    return CoordinationCase("demo", tuple(grids), feeder)


def _substation_rating_kva(net: Network) -> float:
    """Rated power of the transformers at the network's highest voltage (the substation's), kVA."""
    hv = {t.id: net.buses[t.hv_bus].vn_kv for t in net.transformers.values()}
    if not hv:
        raise ValueError("the scenario has no transformer: pass transformer_limit_kw")
    top = max(hv.values())
    return float(sum(t.sn_kva * t.parallel for t in net.transformers.values() if hv[t.id] == top))
