"""Multi-microgrid coordination by ADMM (consensus form of the sharing problem; Boyd et al. 2011, §7.3).

The problem is ``min Σ_i f_i(p_i) + g(z)`` subject to ``p_i = z_i``: each microgrid i minimises its own
cost ``f_i`` over its PCC import ``p_i`` with its private data; the DSO minimises the network cost ``g``
over its copy ``z`` of all boundary powers under the transformer and voltage limits. One round:

1. each agent, given the price ``λ_i`` (€/kW per step) and target ``z_i``: ``p_i = argmin f_i + λ_i·p + ρ/2‖p − z_i‖²``;
2. the coordinator: ``z = argmin g(z) − λ·z + ρ/2‖p − z‖²``, then ``λ += ρ·(p − z)``.

Only boundary powers and prices cross. At convergence ``λ`` is the price of the feeder's limits as each
microgrid sees it (it rises at a PCC when the transformer or a voltage limit binds).

Stopping (Boyd §3.3.1): primal residual ``r = ‖p − z‖`` and dual residual ``s = ρ‖z − z_prev‖`` below
``√n·eps_abs + eps_rel·scale``. Penalty by residual balancing (Boyd §3.4.1): ``ρ·τ`` when ``r > μ·s``,
``ρ/τ`` when ``s > μ·r``; ``λ`` is kept unscaled, so a change of ``ρ`` needs no rescaling.

Agents that do not answer a round keep their last bid (asynchronous ADMM with bounded delay); agents
that never bid are pinned at zero import and left out of the residuals (``active``).
:func:`solve_admm` runs the rounds in memory (reference and tests); :mod:`gridmesh.services.coordination`
runs the same :class:`AdmmCoordinator` over the bus.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gridmesh.optim.feeder_problem import FeederData, FeederProblem
from gridmesh.optim.lp import FloatArray
from gridmesh.optim.microgrid_problem import MicrogridAgentProblem, MicrogridData


@dataclass(frozen=True, kw_only=True)
class AdmmSettings:
    """Penalty ``rho`` (€/kW² per step), tolerances (kW per element, relative), residual balancing ``mu``/``tau``."""

    rho: float = 1e-2
    eps_abs: float = 1e-2
    eps_rel: float = 1e-3
    adaptive: bool = True
    mu: float = 10.0
    tau: float = 2.0
    max_iterations: int = 500

    def __post_init__(self) -> None:
        if not (self.rho > 0 and self.eps_abs >= 0 and self.eps_rel >= 0 and self.mu > 1 and self.tau > 1):
            raise ValueError("AdmmSettings: need rho > 0, eps_abs ≥ 0, eps_rel ≥ 0, mu > 1 and tau > 1")
        if self.max_iterations < 1:
            raise ValueError(f"AdmmSettings: max_iterations must be at least 1, got {self.max_iterations}")


@dataclass(frozen=True)
class Residuals:
    """One round's residuals (kW for the primal, €/kW for the dual) against their tolerances."""

    iteration: int
    primal: float
    dual: float
    eps_primal: float
    eps_dual: float
    rho: float

    @property
    def converged(self) -> bool:
        return self.primal <= self.eps_primal and self.dual <= self.eps_dual


@dataclass
class AdmmCoordinator:
    """The coordinator's state and update; the agents' answers come from wherever they are computed."""

    feeder: FeederData
    settings: AdmmSettings = field(default_factory=AdmmSettings)

    def __post_init__(self) -> None:
        n, t = len(self.feeder.agents), self.feeder.steps
        self.problem = FeederProblem(self.feeder)
        self.rho = self.settings.rho
        self.z: FloatArray = np.zeros((n, t))
        self.price: FloatArray = np.zeros((n, t))
        self.bids: FloatArray = np.zeros((n, t))
        self.iteration = 0

    def update(self, bids_kw: FloatArray, *, active: npt.ArrayLike) -> Residuals:
        """One coordinator step on the latest bids ``(N, T)``; ``active`` (N,) marks agents that have bid."""
        act = np.asarray(active, dtype=bool)
        s = self.settings
        self.bids = np.where(act[:, None], np.asarray(bids_kw, dtype=np.float64), 0.0)
        previous = self.z
        self.z = self.problem.solve(price=self.price, bids_kw=self.bids, rho=self.rho, pinned=~act)
        gap = np.where(act[:, None], self.bids - self.z, 0.0)
        self.price = self.price + self.rho * gap
        n = max(1, int(act.sum()) * self.feeder.steps)
        primal = float(np.linalg.norm(gap))
        dual = float(self.rho * np.linalg.norm(np.where(act[:, None], self.z - previous, 0.0)))
        eps_primal = math.sqrt(n) * s.eps_abs + s.eps_rel * max(np.linalg.norm(self.bids), np.linalg.norm(self.z))
        # eps_abs is in kW; on the dual side it is scaled by ρ into the price unit of s = ρ‖Δz‖.
        eps_dual = math.sqrt(n) * s.eps_abs * self.rho + s.eps_rel * float(np.linalg.norm(self.price))
        residuals = Residuals(self.iteration, primal, dual, float(eps_primal), eps_dual, self.rho)
        self.iteration += 1
        if s.adaptive:
            if primal > s.mu * dual:
                self.rho *= s.tau
            elif dual > s.mu * primal:
                self.rho /= s.tau
        return residuals


@dataclass(frozen=True)
class AdmmResult:
    """Where the rounds ended: boundary powers (agents' ``p`` and the DSO's ``z``), prices, costs, history."""

    converged: bool
    iterations: int
    pcc_kw: FloatArray  # (N, T) the agents' last bids
    feeder_kw: FloatArray  # (N, T) the DSO's copy
    price: FloatArray  # (N, T) €/kW per step
    objective_eur: float  # Σ f_i(p_i) + g(z)
    history: tuple[Residuals, ...]
    seconds: float


def solve_admm(
    microgrids: Sequence[MicrogridData],
    feeder: FeederData,
    *,
    settings: AdmmSettings | None = None,
    on_round: Callable[[Residuals], None] | None = None,
) -> AdmmResult:
    """Run the ADMM rounds in memory, agents one after the other (the reference for the distributed run)."""
    start = time.perf_counter()
    coordinator = AdmmCoordinator(feeder, settings or AdmmSettings())
    agents = [MicrogridAgentProblem(m) for m in microgrids]
    active = np.ones(len(agents), dtype=bool)
    history: list[Residuals] = []
    costs = np.zeros(len(agents))
    bids = np.zeros((len(agents), feeder.steps))
    for _ in range(coordinator.settings.max_iterations):
        for i, agent in enumerate(agents):
            answer = agent.solve(price=coordinator.price[i], target_kw=coordinator.z[i], rho=coordinator.rho)
            bids[i], costs[i] = answer.pcc_kw, answer.cost_eur
        residuals = coordinator.update(bids, active=active)
        history.append(residuals)
        if on_round is not None:
            on_round(residuals)
        if residuals.converged:
            break
    return AdmmResult(
        converged=history[-1].converged,
        iterations=len(history),
        pcc_kw=bids.copy(),
        feeder_kw=coordinator.z.copy(),
        price=coordinator.price.copy(),
        objective_eur=float(costs.sum()) + feeder.cost_eur(coordinator.z),
        history=tuple(history),
        seconds=time.perf_counter() - start,
    )
