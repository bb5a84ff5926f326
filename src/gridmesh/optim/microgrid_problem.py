"""One microgrid's own day-ahead problem: battery, curtailable PV, a shiftable load and its PCC, with its costs.

Everything here is the microgrid owner's private data; only the PCC power ``p_kw`` (import positive, kW,
one value per step) leaves the agent. The problem is a QP with a diagonal Hessian (HiGHS):

* PCC balance: ``p = load − pv + curtailed + charge − discharge + flexible``, ``|p| ≤ pcc_limit_kw``;
  energy bought at ``import_price``, sold at ``export_price`` (€/kWh) through ``p = import − export``.
* Battery (one aggregate per microgrid): SOC dynamics with charge/discharge efficiencies, SOC window,
  and the last step back at least at the initial SOC (a day-ahead plan must not borrow from tomorrow).
* Shiftable load: ``flex_energy_kwh`` to be served at any time, at most ``flex_max_kw``.
* Strict convexity (see ``docs/coordination.md``): losses of the PCC transformer, ``loss·p²·dt``, and a
  quadratic battery wear term, ``wear·(charge² + discharge²)·dt``. They make the problem — and the
  centralised one built from the same pieces — strictly convex in ``p``, so the optimum's boundary
  powers are unique and ADMM converges to them instead of oscillating on a flat LP face.

:func:`add_microgrid` writes these variables and rows into any :class:`QuadraticLp`, so the centralised
reference and the agent's sub-problem are the same formulation; :class:`MicrogridAgentProblem` is the
agent's side of ADMM: ``min f(x) + λ·p + ρ/2·‖p − z‖²``, re-solved every round on one HiGHS instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridmesh.errors import GridmeshError
from gridmesh.optim.lp import FloatArray, IntArray, LpStatus
from gridmesh.optim.qp import QpSolver, QuadraticLp


@dataclass(frozen=True, kw_only=True)
class MicrogridData:
    """A microgrid's private data over T steps. Powers kW (load convention for ``load_kw``), prices €/kWh.

    ``load_kw`` is consumption net of must-run generation (may be negative); ``pv_kw`` is generation the
    owner may curtail. A zero ``battery_e_kwh`` means no battery.
    """

    id: str
    dt_h: float
    load_kw: FloatArray
    pv_kw: FloatArray
    import_price: FloatArray
    export_price: FloatArray
    pcc_limit_kw: float
    battery_e_kwh: float = 0.0
    battery_p_kw: float = 0.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc0: float = 0.5
    degradation_eur_per_kwh: float = 0.01
    wear_eur_per_kw2h: float = 1e-4
    loss_eur_per_kw2h: float = 1e-4
    flex_energy_kwh: float = 0.0
    flex_max_kw: float = 0.0
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        problems = []
        arrays = ("load_kw", "pv_kw", "import_price", "export_price")
        for name in arrays:
            value = np.array(getattr(self, name), dtype=np.float64)
            value.flags.writeable = False
            object.__setattr__(self, name, value)
            if value.ndim != 1 or not np.isfinite(value).all():
                problems.append(f"{name} must be a finite 1-D array")
        object.__setattr__(self, "steps", int(self.load_kw.size))
        for name in arrays[1:]:
            if getattr(self, name).size != self.steps:
                problems.append(f"{name} must have {self.steps} steps like load_kw, got {getattr(self, name).size}")
        if (self.pv_kw < 0).any():
            problems.append("pv_kw must be non-negative")
        if (self.export_price > self.import_price).any():
            problems.append("export_price must not exceed import_price (else buying to sell is unbounded)")
        for name in ("dt_h", "pcc_limit_kw", "eta_charge", "eta_discharge"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("battery_e_kwh", "battery_p_kw", "degradation_eur_per_kwh", "wear_eur_per_kw2h",
                     "loss_eur_per_kw2h", "flex_energy_kwh", "flex_max_kw"):  # fmt: skip
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0 <= self.soc_min <= self.soc0 <= self.soc_max <= 1:
            problems.append("need 0 ≤ soc_min ≤ soc0 ≤ soc_max ≤ 1")
        if problems:
            raise ValueError(f"microgrid {self.id}: " + "; ".join(problems))


@dataclass(frozen=True)
class MicrogridVariables:
    """Column indices of one microgrid's variables in a :class:`QuadraticLp`, each ``(T,)``."""

    pcc: IntArray  # PCC import, kW
    charge: IntArray
    discharge: IntArray
    soc: IntArray  # stored energy at the end of each step, kWh
    curtailed: IntArray
    flexible: IntArray


def add_microgrid(qp: QuadraticLp, data: MicrogridData) -> MicrogridVariables:
    """Write the microgrid's variables, rows and costs into ``qp`` (module docstring); returns their columns."""
    t, dt = data.steps, data.dt_h
    e, pmax = data.battery_e_kwh, data.battery_p_kw if data.battery_e_kwh > 0 else 0.0
    pcc = qp.variables(t, lower=-data.pcc_limit_kw, upper=data.pcc_limit_kw)
    bought = qp.variables(t, cost=data.import_price * dt)
    sold = qp.variables(t, cost=-data.export_price * dt)
    charge = qp.variables(t, upper=pmax, cost=data.degradation_eur_per_kwh * dt)
    discharge = qp.variables(t, upper=pmax, cost=data.degradation_eur_per_kwh * dt)
    soc_lower = np.full(t, data.soc_min * e)
    soc_lower[-1] = data.soc0 * e  # end no lower than the start
    soc = qp.variables(t, lower=soc_lower, upper=data.soc_max * e)
    curtailed = qp.variables(t, upper=data.pv_kw)
    flexible = qp.variables(t, upper=data.flex_max_kw)

    balance = qp.rows(t, lower=data.load_kw - data.pv_kw, upper=data.load_kw - data.pv_kw)
    qp.terms(balance, pcc, 1.0)
    qp.terms(balance, charge, -1.0)
    qp.terms(balance, discharge, 1.0)
    qp.terms(balance, curtailed, -1.0)
    qp.terms(balance, flexible, -1.0)
    trade = qp.rows(t, lower=0.0, upper=0.0)  # pcc = bought − sold
    qp.terms(trade, pcc, 1.0)
    qp.terms(trade, bought, -1.0)
    qp.terms(trade, sold, 1.0)
    start = np.zeros(t)
    start[0] = data.soc0 * e
    dynamics = qp.rows(t, lower=start, upper=start)  # soc_t − soc_{t−1} − η·dt·charge + dt/η·discharge = 0
    qp.terms(dynamics, soc, 1.0)
    qp.terms(dynamics[1:], soc[:-1], -1.0)
    qp.terms(dynamics, charge, -data.eta_charge * dt)
    qp.terms(dynamics, discharge, dt / data.eta_discharge)
    energy = qp.rows(1, lower=data.flex_energy_kwh, upper=data.flex_energy_kwh)
    qp.terms(energy, flexible, dt)

    qp.quadratic(pcc, 2.0 * data.loss_eur_per_kw2h * dt)
    if pmax > 0:
        qp.quadratic(charge, 2.0 * data.wear_eur_per_kw2h * dt)
        qp.quadratic(discharge, 2.0 * data.wear_eur_per_kw2h * dt)
    return MicrogridVariables(pcc, charge, discharge, soc, curtailed, flexible)


class MicrogridError(GridmeshError):
    """The local problem has no solution (contradictory private data) or HiGHS failed; the message says which."""


@dataclass(frozen=True)
class LocalSolution:
    """An agent's answer: PCC import per step (kW), its own cost (€, without the ADMM terms), battery power."""

    pcc_kw: FloatArray
    cost_eur: float
    battery_kw: FloatArray  # discharge − charge, generator convention


class MicrogridAgentProblem:
    """The agent's ADMM sub-problem ``min f(x) + λ·p + ρ/2·‖p − z‖²``, built once and re-solved per round."""

    def __init__(self, data: MicrogridData) -> None:
        self.data = data
        self._qp = QuadraticLp()
        self.vars = add_microgrid(self._qp, data)
        self._cost = self._qp.cost()
        self._hessian = self._qp.hessian_diagonal()
        self._solver = QpSolver(self._qp)

    def solve(self, *, price: FloatArray, target_kw: FloatArray, rho: float) -> LocalSolution:
        """Best response to the coordinator's price ``λ`` (€/kW per step) and target ``z`` (kW), penalty ``ρ``."""
        pcc = self.vars.pcc
        cost, hessian = self._cost.copy(), self._hessian.copy()
        cost[pcc] += np.asarray(price, dtype=np.float64) - rho * np.asarray(target_kw, dtype=np.float64)
        hessian[pcc] += rho
        self._solver.set_cost(cost)
        self._solver.set_hessian(hessian)
        solution = self._solver.solve()
        if solution.status is not LpStatus.OPTIMAL:
            raise MicrogridError(f"microgrid {self.data.id}: local problem {solution.status}: {solution.message}")
        x = solution.x
        return LocalSolution(
            pcc_kw=x[pcc],
            cost_eur=self._qp.objective(x),
            battery_kw=x[self.vars.discharge] - x[self.vars.charge],
        )


def cost_at(data: MicrogridData, pcc_kw: FloatArray, *, rho: float = 1e3) -> float:
    """The microgrid's own cost (€) when its PCC import follows ``pcc_kw`` (a bid it made).

    Solved as the agent's proximal step towards ``pcc_kw`` with a stiff ``rho`` (the import then follows
    within ``|∂f/∂p|/rho``, around 1e-4 kW), not with the import fixed: HiGHS's QP solver can stall on a
    fixed PCC import with the battery's quadratic wear in the objective.
    """
    target = np.asarray(pcc_kw, dtype=np.float64)
    return MicrogridAgentProblem(data).solve(price=np.zeros(data.steps), target_kw=target, rho=rho).cost_eur
