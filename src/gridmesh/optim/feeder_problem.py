"""The DSO's side of the coordination: what the feeder allows of the microgrids' boundary powers.

The DSO knows only public data: each microgrid's PCC rating, the rest of the feeder's forecast load, the
transformer's rating, and linear voltage sensitivities of monitored buses to PCC imports. Over T steps
and N microgrids with PCC imports ``p`` (kW, ``(T, N)``):

* transformer: ``s_t = base_t + Σ_i p_ti`` with ``|s_t| ≤ transformer_limit_kw``;
* voltages: ``v_min ≤ v_base_t + dv_dp · p_t ≤ v_max`` for M monitored buses (pu);
* network cost: transformer losses ``loss·s_t²·dt`` (€; a quadratic, so the feeder's problem is strictly
  convex in ``s``; see ``docs/coordination.md``).

:func:`add_feeder` writes this into a :class:`QuadraticLp` over given PCC columns, for the centralised
reference; :class:`FeederProblem` is the coordinator's ADMM step ``min g(z) − λ·z + ρ/2·‖p − z‖²``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from gridmesh.errors import GridmeshError
from gridmesh.optim.lp import FloatArray, IntArray, LpStatus
from gridmesh.optim.qp import QpSolver, QuadraticLp


@dataclass(frozen=True, kw_only=True)
class FeederData:
    """The feeder over T steps. ``v_base`` is the voltage with every PCC import at zero (pu, ``(T, M)``)."""

    agents: tuple[str, ...]
    dt_h: float
    pcc_limit_kw: FloatArray  # (N,) public connection ratings
    base_kw: FloatArray  # (T,) the rest of the transformer's load, import positive
    transformer_limit_kw: float
    loss_eur_per_kw2h: float = 1e-6
    v_base: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    dv_dp: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, N) pu per kW of PCC import
    v_min: FloatArray = field(default_factory=lambda: np.zeros(0))
    v_max: FloatArray = field(default_factory=lambda: np.zeros(0))
    monitored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("pcc_limit_kw", "base_kw", "v_base", "dv_dp", "v_min", "v_max"):
            value = np.array(getattr(self, name), dtype=np.float64)
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "agents", tuple(self.agents))
        n, t, m = len(self.agents), self.base_kw.size, len(self.monitored)
        problems = []
        if self.pcc_limit_kw.shape != (n,) or not (self.pcc_limit_kw > 0).all():
            problems.append(f"pcc_limit_kw must be {n} positive values (one per agent)")
        if len(set(self.agents)) != n:
            problems.append("agents must be unique")
        if self.base_kw.ndim != 1 or not np.isfinite(self.base_kw).all():
            problems.append("base_kw must be a finite 1-D array")
        if not self.transformer_limit_kw > 0 or not self.dt_h > 0 or not self.loss_eur_per_kw2h >= 0:
            problems.append("transformer_limit_kw and dt_h must be positive, loss_eur_per_kw2h non-negative")
        if m and (self.v_base.shape != (t, m) or self.dv_dp.shape != (m, n)):
            problems.append(f"v_base must be ({t}, {m}) and dv_dp ({m}, {n}), got {self.v_base.shape}, "
                            f"{self.dv_dp.shape}")  # fmt: skip
        if m and (self.v_min.shape != (m,) or self.v_max.shape != (m,)):
            problems.append(f"v_min and v_max must have {m} values (one per monitored bus)")
        if problems:
            raise ValueError("feeder: " + "; ".join(problems))

    @property
    def steps(self) -> int:
        return int(self.base_kw.size)

    def step(self, t: int) -> FeederData:
        """The feeder at step ``t`` alone (a one-step horizon)."""
        m = bool(self.monitored)
        return replace(
            self,
            base_kw=self.base_kw[t : t + 1],
            v_base=self.v_base[t : t + 1] if m else self.v_base,
        )

    def transformer_kw(self, pcc_kw: FloatArray) -> FloatArray:
        """Transformer import per step for PCC imports ``(N, T)``."""
        return np.asarray(self.base_kw + np.asarray(pcc_kw).sum(axis=0), dtype=np.float64)

    def voltages(self, pcc_kw: FloatArray) -> FloatArray:
        """Linearised monitored voltages ``(T, M)`` for PCC imports ``(N, T)``."""
        return np.asarray(self.v_base + np.asarray(pcc_kw).T @ self.dv_dp.T, dtype=np.float64)

    def cost_eur(self, pcc_kw: FloatArray) -> float:
        """The network cost (transformer losses) for PCC imports ``(N, T)``."""
        s = self.transformer_kw(pcc_kw)
        return float(self.loss_eur_per_kw2h * self.dt_h * (s * s).sum())


def add_feeder(qp: QuadraticLp, data: FeederData, pcc: IntArray) -> IntArray:
    """Write the feeder's limits and cost over the PCC columns ``pcc`` ``(T, N)``; returns the transformer column."""
    t = data.steps
    s = qp.variables(t, lower=-data.transformer_limit_kw, upper=data.transformer_limit_kw)
    total = qp.rows(t, lower=data.base_kw, upper=data.base_kw)  # s − Σ p = base
    qp.terms(total, s, 1.0)
    qp.terms(total[:, None], pcc, -1.0)
    qp.quadratic(s, 2.0 * data.loss_eur_per_kw2h * data.dt_h)
    if data.monitored:
        m = len(data.monitored)
        rows = qp.rows((t, m), lower=data.v_min - data.v_base, upper=data.v_max - data.v_base)
        qp.terms(rows[:, :, None], pcc[:, None, :], data.dv_dp[None, :, :])
    return s


class FeederError(GridmeshError):
    """The feeder's step has no solution: the limits cannot be met by any boundary powers."""


class FeederProblem:
    """The coordinator's ADMM step over the DSO's copy ``z`` ``(N, T)`` of the boundary powers.

    The feeder's cost and limits couple microgrids within a step but not across steps, so the step is T
    small QPs (one HiGHS instance each) instead of one large one: HiGHS's active-set QP solver slows down
    sharply with the number of constraints that become active.
    """

    def __init__(self, data: FeederData) -> None:
        self.data = data
        self._steps = []
        for t in range(data.steps):
            qp = QuadraticLp()
            z = qp.variables((1, len(data.agents)), lower=-data.pcc_limit_kw, upper=data.pcc_limit_kw)
            add_feeder(qp, data.step(t), z)
            self._steps.append((z[0], qp.cost(), qp.hessian_diagonal(), QpSolver(qp)))

    def solve(self, *, price: FloatArray, bids_kw: FloatArray, rho: float, pinned: npt.ArrayLike) -> FloatArray:
        """``argmin g(z) − λ·z + ρ/2·‖p − z‖²``, all ``(N, T)``; agents where ``pinned`` (N,) is true keep
        ``z = p`` (they are out of the negotiation this round)."""
        price, bids = np.asarray(price, dtype=np.float64), np.asarray(bids_kw, dtype=np.float64)
        pin = np.asarray(pinned, dtype=bool)
        limit = self.data.pcc_limit_kw
        z = np.empty_like(bids)
        for t, (cols, cost0, hessian0, solver) in enumerate(self._steps):
            cost, hessian = cost0.copy(), hessian0.copy()
            cost[cols] += -price[:, t] - rho * bids[:, t]
            hessian[cols] += rho
            solver.set_cost(cost)
            solver.set_hessian(hessian)
            solver.set_bounds(cols, np.where(pin, bids[:, t], -limit), np.where(pin, bids[:, t], limit))
            solution = solver.solve()
            if solution.status is not LpStatus.OPTIMAL:
                raise FeederError(f"feeder step {t}: {solution.status}: {solution.message}")
            z[:, t] = solution.x[cols]
        return z
