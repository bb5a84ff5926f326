"""The sparse LP builder: blocks of variables and rows, broadcast coefficients, statuses."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.optim.lp import INF, LpStatus, SparseLp, WarmStart, solve_lp


def test_small_lp_solved_by_hand() -> None:
    # max x + 2y  s.t.  x + y ≤ 6, x ≤ 4, y ≤ 5  →  y = 5, x = 1, objective −11 (minimised).
    lp = SparseLp()
    xy = lp.variables(2, upper=[4, 5], cost=[-1, -2])
    row = lp.rows(1, upper=6)
    lp.terms(row, xy)
    solution = lp.solve()
    assert solution.status is LpStatus.OPTIMAL
    np.testing.assert_allclose(solution.x, [1, 5], atol=1e-9)
    assert solution.objective == pytest.approx(-11)


def test_blocks_broadcast_and_duplicates_add_up() -> None:
    # A (2, 3) block with per-column bounds; one equality row per block row written as two halves that add.
    lp = SparseLp()
    x = lp.variables((2, 3), upper=[1.0, 2.0, 3.0], cost=1.0)
    rows = lp.rows(2, lower=[2.5, 0.5], upper=[2.5, 0.5])
    lp.terms(rows[:, None], x, 0.5)
    lp.terms(rows[:, None], x, 0.5)  # the same entries again: coefficients become 1
    lp.terms(rows[:, None], x, 0.0)  # zeros are dropped, not stored
    assert (lp.num_vars, lp.num_rows) == (6, 2)
    solution = lp.solve()
    assert solution.status is LpStatus.OPTIMAL
    np.testing.assert_allclose(solution.x.reshape(2, 3).sum(axis=1), [2.5, 0.5], atol=1e-9)
    assert solution.objective == pytest.approx(3.0)


def test_infeasible_and_unbounded_are_statuses_not_errors() -> None:
    lp = SparseLp()
    x = lp.variables(1, lower=5, upper=10)
    lp.terms(lp.rows(1, upper=2), x)
    infeasible = lp.solve()
    assert infeasible.status is LpStatus.INFEASIBLE
    assert np.isnan(infeasible.x).all()

    lp = SparseLp()
    lp.variables(1, lower=-INF, cost=1.0)
    assert lp.solve().status in (LpStatus.UNBOUNDED, LpStatus.INFEASIBLE)  # presolve may not tell which


def _packing(scale: float) -> SparseLp:
    """A dense random packing LP (max value under 20 capacity rows, 0 ≤ x ≤ 1): presolve cannot solve it away."""
    rng = np.random.default_rng(3)
    lp = SparseLp()
    x = lp.variables(40, upper=1.0, cost=-rng.uniform(1.0, 2.0, 40))
    rows = lp.rows(20, upper=scale * rng.uniform(3.0, 6.0, 20))
    lp.terms(rows[:, None], x[None, :], rng.uniform(0.0, 1.0, (20, 40)))
    return lp


def test_a_warm_start_reaches_the_same_optimum_from_the_previous_basis() -> None:
    cold = solve_lp(_packing(1.0))
    assert cold.status is LpStatus.OPTIMAL and cold.iterations > 0
    warm = WarmStart()
    first = solve_lp(_packing(1.0), warm=warm)
    assert first.iterations == cold.iterations  # nothing kept yet: a cold start
    again = solve_lp(_packing(1.0), warm=warm)
    assert again.iterations == 0 and again.objective == pytest.approx(cold.objective)  # started at the optimum
    shifted = solve_lp(_packing(1.02), warm=warm)  # new data, same shape: a few iterations from the kept basis
    assert shifted.objective == pytest.approx(solve_lp(_packing(1.02)).objective)
    assert shifted.iterations < cold.iterations
    other = SparseLp()  # another shape: the kept basis is not offered
    other.variables(1, upper=2.0, cost=-1.0)
    assert solve_lp(other, warm=warm).x == pytest.approx([2.0])
