"""Why a dispatch problem has no solution, in words an operator can act on.

:func:`precheck` finds the obvious contradictions before any solve (each a closed-form bound);
:func:`diagnose` narrows down an infeasibility that HiGHS found by re-solving relaxed problems. Without
network limits, "batteries idle, nothing curtailed" is always feasible once the SOC window holds the
initial SOC and the terminal targets are in reach, so what is left for :func:`diagnose` is the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from gridmesh.optim.problem import DispatchProblem
from gridmesh.physics.sensitivity import Sensitivity

TOLERANCE = 1e-9
PREFIX = "infeasible because "
MAX_DIAGNOSED = 50  # monitored quantities tried one by one; beyond, the diagnosis stays general


def _list(items: list[str]) -> str:
    return "; ".join(items[:3]) + (f"; and {len(items) - 3} more" if len(items) > 3 else "")


def precheck(p: DispatchProblem) -> str | None:
    """The reason, beginning "infeasible because", when the problem obviously has no solution; else None."""
    reasons = _battery_reasons(p) + _network_reasons(p)
    return PREFIX + _list(reasons) if reasons else None


def _battery_reasons(p: DispatchProblem) -> list[str]:
    reasons: list[str] = []
    for b in np.flatnonzero(p.soc_min > p.soc_max):
        reasons.append(f"the SOC window of battery {b} is empty: soc_min {p.soc_min[b]:g} > soc_max {p.soc_max[b]:g}")
    outside = (p.soc0 < p.soc_min - TOLERANCE) | (p.soc0 > p.soc_max + TOLERANCE)
    for b in np.flatnonzero(outside & (p.soc_min <= p.soc_max)):
        reasons.append(
            f"the initial SOC {p.soc0[b]:g} of battery {b} lies outside its window [{p.soc_min[b]:g}, {p.soc_max[b]:g}]"
        )
    if p.soc_terminal is None:
        return reasons
    target = p.soc_terminal
    for b in np.flatnonzero(target > p.soc_max + TOLERANCE):
        reasons.append(f"the terminal SOC {target[b]:g} of battery {b} exceeds its soc_max {p.soc_max[b]:g}")
    reach = p.soc0 + p.eta_charge * p.p_max_kw * p.dt_h * p.steps / p.e_kwh
    for b in np.flatnonzero((target > reach + TOLERANCE) & ~(target > p.soc_max + TOLERANCE)):
        reasons.append(
            f"the terminal SOC {target[b]:g} of battery {b} cannot be reached: at most {reach[b]:.2f} "
            f"with {p.p_max_kw[b]:g} kW for {p.steps} steps"
        )
    return reasons


def _network_reasons(p: DispatchProblem) -> list[str]:
    sens = p.sensitivity
    if sens is None or sens.size == 0:
        return []
    reasons = [
        f"the limits of {sens.names[m]} contradict: lower {sens.lower[m]:g} > upper {sens.upper[m]:g}"
        for m in np.flatnonzero(sens.lower > sens.upper)
    ]
    # Reach of each quantity with every device anywhere within its power limits (SOC ignored): a box.
    b, g = p.n_batteries, p.n_generators
    d_bat, d_gen, d_flex = sens.d_dp[:, :b], sens.d_dp[:, b : b + g], sens.d_dp[:, b + g :]
    swing = np.abs(d_bat) @ p.p_max_kw + np.abs(d_flex) @ p.flex_catch_up_kw  # (M,): ±p_max, catch-up
    swing = swing + p.flex_defer_max_kw @ np.abs(d_flex).T  # (T, M): deferral
    gen_low = p.gen_available_kw @ np.minimum(-d_gen, 0.0).T  # (T, M): curtailment injects −u, u ∈ [0, avail]
    gen_high = p.gen_available_kw @ np.maximum(-d_gen, 0.0).T
    low, high = sens.base - swing + gen_low, sens.base + swing + gen_high
    miss = (high < sens.lower - TOLERANCE) | (low > sens.upper + TOLERANCE)
    for m in np.flatnonzero(miss.any(axis=0) & (sens.lower <= sens.upper)):
        t = int(np.flatnonzero(miss[:, m])[0])
        reasons.append(
            f"{sens.names[m]} cannot be kept within [{sens.lower[m]:g}, {sens.upper[m]:g}] at step {t}: it stays "
            f"between {low[t, m]:.4g} and {high[t, m]:.4g} with every battery and curtailment at its limits"
        )
    return reasons


def _only(sens: Sensitivity, m: int) -> Sensitivity:
    rows = [m]
    return Sensitivity(sens.base[:, rows], sens.d_dp[rows], sens.lower[rows], sens.upper[rows], (sens.names[m],))


def diagnose(p: DispatchProblem, feasible: Callable[[DispatchProblem], bool], solver_message: str) -> str:
    """The reason for an infeasibility found by the solver, narrowed down by solving relaxed problems."""
    sens = p.sensitivity
    if sens is None or sens.size == 0:  # pragma: no cover - precheck covers every other cause
        return PREFIX + f"the battery limits cannot be met (HiGHS: {solver_message})"
    if p.soc_terminal is not None and feasible(replace(p, soc_terminal=None)):
        return PREFIX + "the terminal SOC targets cannot be reached within the network limits"
    if sens.size <= MAX_DIAGNOSED:
        alone = [sens.names[m] for m in range(sens.size) if not feasible(replace(p, sensitivity=_only(sens, m)))]
        if alone:
            return PREFIX + "the battery and curtailment limits cannot keep " + _list(alone) + " within its limits"
    return PREFIX + "the network limits cannot all be met at once with the available flexibility"
