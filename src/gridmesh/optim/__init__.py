"""Optimisation: model-predictive dispatch of batteries and curtailable generation (LP, HiGHS)."""

from gridmesh.optim.dispatch import (
    CostBreakdown,
    DispatchPlan,
    PlanStatus,
    dispatch_cost,
    fallback_plan,
    perfect_foresight,
    solve_dispatch,
)
from gridmesh.optim.problem import DispatchProblem

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
