"""A small sparse linear-programme builder over HiGHS (highspy).

Variables and rows are added in blocks (numpy index arrays of any shape), coefficients as broadcast
triplets, and the whole model goes to HiGHS in one ``passModel`` call as a column-wise sparse matrix.
No Python loop runs per variable or per row, so a month of quarter-hours builds in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import highspy
import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = npt.ArrayLike

try:
    # highspy's public ``Highs`` registers a Python callback on construction, which makes HiGHS print its
    # banner once per process before any option can be set; the core class it wraps stays silent.
    from highspy._core import _Highs as _Solver
except ImportError:  # pragma: no cover - a highspy without the core class
    from highspy import Highs as _Solver

INF = highspy.kHighsInf


class LpStatus(StrEnum):
    """What became of a solve."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    FAILED = "failed"  # time limit, numerical trouble, or a model HiGHS refused


@dataclass(frozen=True)
class LpSolution:
    """Primal values (``x``, one per variable; NaN unless optimal), the objective and HiGHS's own word."""

    status: LpStatus
    message: str
    x: FloatArray
    objective: float
    seconds: float
    iterations: int = 0  # simplex iterations HiGHS took


_STATUS = {
    highspy.HighsModelStatus.kOptimal: LpStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: LpStatus.INFEASIBLE,
    # Presolve may stop at "unbounded or infeasible"; the models built here are bounded below.
    highspy.HighsModelStatus.kUnboundedOrInfeasible: LpStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: LpStatus.UNBOUNDED,
}


class SparseLp:
    """Minimise ``cost·x`` subject to ``row_lower ≤ A·x ≤ row_upper`` and ``lower ≤ x ≤ upper``."""

    def __init__(self) -> None:
        self._cols = 0
        self._rows = 0
        self._cost: list[FloatArray] = []
        self._lower: list[FloatArray] = []
        self._upper: list[FloatArray] = []
        self._row_lower: list[FloatArray] = []
        self._row_upper: list[FloatArray] = []
        self._entries: list[tuple[IntArray, IntArray, FloatArray]] = []

    @property
    def num_vars(self) -> int:
        return self._cols

    @property
    def num_rows(self) -> int:
        return self._rows

    def variables(
        self, shape: int | tuple[int, ...], *, lower: ArrayLike = 0.0, upper: ArrayLike = INF, cost: ArrayLike = 0.0
    ) -> IntArray:
        """A block of variables; returns their indices in the given shape (bounds and cost broadcast to it)."""
        index = self._block(shape, self._cols)
        self._cols += index.size
        self._cost.append(_flat(cost, index.shape))
        self._lower.append(_flat(lower, index.shape))
        self._upper.append(_flat(upper, index.shape))
        return index

    def rows(self, shape: int | tuple[int, ...], *, lower: ArrayLike = -INF, upper: ArrayLike = INF) -> IntArray:
        """A block of constraint rows ``lower ≤ a·x ≤ upper``; fill their coefficients with :meth:`terms`."""
        index = self._block(shape, self._rows)
        self._rows += index.size
        self._row_lower.append(_flat(lower, index.shape))
        self._row_upper.append(_flat(upper, index.shape))
        return index

    def terms(self, rows: ArrayLike, cols: ArrayLike, values: ArrayLike = 1.0) -> None:
        """Add ``values`` to the coefficients at (``rows``, ``cols``), all three broadcast together.

        Repeated (row, col) pairs are summed; zero coefficients are dropped.
        """
        r, c, v = np.broadcast_arrays(np.asarray(rows), np.asarray(cols), np.asarray(values, dtype=np.float64))
        keep = v.ravel() != 0.0
        self._entries.append((r.ravel()[keep].astype(np.int64), c.ravel()[keep].astype(np.int64), v.ravel()[keep]))

    def cost(self) -> FloatArray:
        """The linear cost, one value per variable."""
        return _cat(self._cost)

    def highs_lp(self) -> highspy.HighsLp:
        """The model as HiGHS's ``HighsLp`` (column-wise matrix), ready for ``passModel``."""
        matrix = self._matrix()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self._cols, self._rows
        lp.col_cost_ = self.cost()
        lp.col_lower_ = _cat(self._lower)
        lp.col_upper_ = _cat(self._upper)
        lp.row_lower_ = _cat(self._row_lower)
        lp.row_upper_ = _cat(self._row_upper)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self._cols, self._rows
        lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
        lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
        lp.a_matrix_.value_ = matrix.data.astype(np.float64)
        return lp

    def solve(self, *, time_limit_s: float = 30.0) -> LpSolution:
        """Solve with HiGHS, output silenced; never raises for an infeasible or failed solve."""
        return solve_lp(self, time_limit_s=time_limit_s)

    def _matrix(self) -> sparse.csc_array:
        if self._entries:
            rows, cols, values = (np.concatenate(parts) for parts in zip(*self._entries, strict=True))
        else:
            rows, cols, values = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        coo = sparse.coo_array((values, (rows, cols)), shape=(self._rows, self._cols))
        matrix = coo.tocsc()
        matrix.sum_duplicates()
        return matrix

    @staticmethod
    def _block(shape: int | tuple[int, ...], first: int) -> IntArray:
        dims = (shape,) if isinstance(shape, int) else shape
        count = int(np.prod(dims, dtype=np.int64))
        return np.arange(first, first + count, dtype=np.int64).reshape(dims)


class WarmStart:
    """The optimal basis of the last solve, offered to the next one of the same shape.

    A rolling horizon solves problems that differ in their data, not their structure: started from the
    previous optimum's basis, the dual simplex needs a fraction of the iterations (about 3× fewer on the
    demo's MPC). A basis HiGHS finds unusable is ignored by it: the solve then starts cold."""

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None
        self._basis: highspy.HighsBasis | None = None

    def offer(self, h: _Solver, shape: tuple[int, int]) -> None:
        if self._basis is not None and shape == self._shape:
            h.setBasis(self._basis)

    def keep(self, h: _Solver, shape: tuple[int, int]) -> None:
        self._shape, self._basis = shape, h.getBasis()


def solve_lp(lp: SparseLp, *, time_limit_s: float = 30.0, warm: WarmStart | None = None) -> LpSolution:
    """Solve ``lp`` with HiGHS, output silenced; never raises for an infeasible or failed solve.

    ``warm``: start from the optimal basis of the previous solve of the same shape, and keep this one's."""
    start = time.perf_counter()
    h = silent_highs(time_limit_s)
    refused = h.passModel(lp.highs_lp()) == highspy.HighsStatus.kError
    shape = (lp.num_rows, lp.num_vars)
    if warm is not None and not refused:
        warm.offer(h, shape)
    solution = run_highs(h, lp.num_vars, start, refused=refused)
    if warm is not None and solution.status is LpStatus.OPTIMAL:
        warm.keep(h, shape)
    return solution


def silent_highs(time_limit_s: float) -> _Solver:
    """A HiGHS instance that prints nothing and stops at ``time_limit_s``."""
    h = _Solver()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    return h


def run_highs(h: _Solver, n: int, start: float, *, refused: bool = False) -> LpSolution:
    """Run a loaded HiGHS instance and read its answer (``n`` variables; ``start`` from perf_counter)."""
    nan = np.full(n, np.nan)
    if refused:
        return LpSolution(LpStatus.FAILED, "HiGHS refused the model", nan, np.nan, time.perf_counter() - start)
    h.run()
    model_status = h.getModelStatus()
    status = _STATUS.get(model_status, LpStatus.FAILED)
    message = h.modelStatusToString(model_status)
    if status is not LpStatus.OPTIMAL:
        return LpSolution(status, message, nan, np.nan, time.perf_counter() - start)
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    seconds, iterations = time.perf_counter() - start, int(h.getInfo().simplex_iteration_count)
    return LpSolution(status, message, x, float(h.getObjectiveValue()), seconds, iterations)


def _flat(value: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).ravel().copy()


def _cat(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts) if parts else np.zeros(0)
