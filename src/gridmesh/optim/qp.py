"""Convex QPs with a diagonal Hessian over HiGHS: :class:`~gridmesh.optim.lp.SparseLp` plus ``½·q·x²`` terms.

ADMM adds ``ρ/2·‖x − v‖²`` to every sub-problem and the coordination cases regularise with quadratic
losses; both are separable, so a diagonal Hessian is all that is needed. HiGHS solves such QPs with its
active-set method (``passModel`` of a ``HighsModel`` holding the LP and the Hessian).

:class:`QpSolver` keeps one HiGHS instance per problem and only changes the linear costs and the
Hessian between solves, since ADMM re-solves the same structure with a new price every round. (A
separate module and not a change to ``lp.py``, whose ``solve`` builds and drops its solver each call.)
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from gridmesh.optim.lp import ArrayLike, FloatArray, IntArray, LpSolution, SparseLp, run_highs, silent_highs


class QuadraticLp(SparseLp):
    """Minimise ``cost·x + ½·Σ q_j·x_j²`` (``q ≥ 0``) subject to the rows and bounds of :class:`SparseLp`."""

    def __init__(self) -> None:
        super().__init__()
        self._quad: list[tuple[IntArray, FloatArray]] = []

    def quadratic(self, cols: ArrayLike, values: ArrayLike) -> None:
        """Add ``½·values·x²`` for the variables ``cols`` (broadcast together; repeated columns add up)."""
        c, v = np.broadcast_arrays(np.asarray(cols, dtype=np.int64), np.asarray(values, dtype=np.float64))
        if (v < 0).any():
            raise ValueError("quadratic coefficients must be non-negative (the problem must stay convex)")
        self._quad.append((c.ravel().copy(), v.ravel().copy()))

    def hessian_diagonal(self) -> FloatArray:
        """``q`` as one value per variable (zero for linear ones)."""
        diag = np.zeros(self.num_vars)
        for cols, values in self._quad:
            np.add.at(diag, cols, values)
        return diag

    def objective(self, x: FloatArray) -> float:
        """``cost·x + ½·q·x²`` at ``x``: evaluates a solution against this problem's own objective."""
        return float(self.cost() @ x + 0.5 * self.hessian_diagonal() @ (x * x))

    def solve(self, *, time_limit_s: float = 30.0) -> LpSolution:
        """One solve (see :class:`QpSolver` for repeated ones)."""
        return QpSolver(self, time_limit_s=time_limit_s).solve()


class QpSolver:
    """A HiGHS instance holding one :class:`QuadraticLp`; re-solve with new costs and Hessian diagonal."""

    def __init__(self, problem: QuadraticLp, *, time_limit_s: float = 30.0) -> None:
        n = problem.num_vars
        self._n = n
        self._highs = silent_highs(time_limit_s)
        self._refused = self._highs.passModel(problem.highs_lp()) == highspy.HighsStatus.kError
        self._all = np.arange(n, dtype=np.int32)
        self._hessian_nonzero = False
        self.set_hessian(problem.hessian_diagonal())

    def set_cost(self, cost: FloatArray) -> None:
        """Replace the linear cost of every variable."""
        self._highs.changeColsCost(self._n, self._all, np.asarray(cost, dtype=np.float64))

    def set_bounds(self, cols: IntArray, lower: FloatArray, upper: FloatArray) -> None:
        """Replace the bounds of the variables ``cols``."""
        index = np.asarray(cols, dtype=np.int32)
        self._highs.changeColsBounds(index.size, index, np.asarray(lower, np.float64), np.asarray(upper, np.float64))

    def set_hessian(self, diagonal: FloatArray) -> None:
        """Replace the Hessian by ``diag(diagonal)`` (all non-negative)."""
        diagonal = np.asarray(diagonal, dtype=np.float64)
        cols = np.flatnonzero(diagonal).astype(np.int32)
        if not cols.size and not self._hessian_nonzero:
            return  # an LP stays an LP
        hessian = highspy.HighsHessian()
        hessian.dim_ = self._n
        hessian.format_ = highspy.HessianFormat.kTriangular
        hessian.start_ = np.searchsorted(cols, np.arange(self._n + 1)).astype(np.int32)
        hessian.index_ = cols
        hessian.value_ = diagonal[cols]
        self._highs.passHessian(hessian)
        self._hessian_nonzero = bool(cols.size)

    def solve(self) -> LpSolution:
        """Solve; never raises for an infeasible or failed solve (the status says)."""
        return run_highs(self._highs, self._n, time.perf_counter(), refused=self._refused)
