"""State estimation: weighted least squares through power-grid-model, with bad-data detection.

Build a :class:`StateEstimator` once per topology (about 50 ms for 5,000 buses; build a new one when a
switch changes) and call :meth:`StateEstimator.estimate` every cycle. While the measurement layout repeats
(same sensors on the same elements) only the values are pushed into the engine's model. Units and signs
of the measurements: :mod:`gridmesh.physics.measurement_set`.

The estimate never raises for the grid's sake: an unobservable set comes back with ``observable=False``
and the reason, a diverging one with ``converged=False``; the state arrays are then NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from power_grid_model import (
    CalculationMethod,
    ComponentAttributeFilterOptions,
    ComponentType,
    DatasetType,
    PowerGridModel,
)
from power_grid_model.errors import (  # type: ignore[attr-defined]
    IterationDiverge,
    NotObservableError,
    PowerGridError,
    SparseMatrixError,
)

from gridmesh.model.network import Network
from gridmesh.physics.admittance import grid_admittance, jacobians
from gridmesh.physics.bad_data import Residuals, analyse
from gridmesh.physics.measurement_set import MeasurementSet
from gridmesh.physics.pgm_input import ModelIndex, build_input
from gridmesh.physics.sensors import KW_PER_PU, CompiledLayout, SensorMap
from gridmesh.units import W_PER_KW

FloatArray = npt.NDArray[np.float64]

_OUTPUTS: dict[ComponentType, list[str]] = {
    ComponentType.node: ["u_pu", "u_angle", "energized"],
    ComponentType.line: ["loading", "p_from", "q_from", "p_to", "q_to"],
    ComponentType.transformer: ["loading", "p_from", "q_from", "p_to", "q_to"],
    ComponentType.source: ["p", "q"],
    ComponentType.sym_voltage_sensor: ["u_residual"],
    ComponentType.sym_power_sensor: ["p_residual", "q_residual"],
}


@dataclass(frozen=True, slots=True)
class Suspect:
    """A measurement the largest-normalised-residual test names as bad (``terminal`` is "bus" for voltages)."""

    element: str
    terminal: str
    quantity: str  # "v_pu", "p_kw" or "q_kvar"
    normalised_residual: float
    alternatives: tuple[str, ...] = ()  # same-bus appliances the network model cannot tell apart from it


@dataclass(frozen=True)
class Estimate:
    """One cycle's estimated state, residuals and bad-data verdict (arrays in :class:`ModelIndex` order)."""

    index: ModelIndex
    observable: bool
    converged: bool
    observability: str  # what is missing when not observable, else ""
    message: str  # the engine's message when the estimate failed, else ""
    v_pu: FloatArray
    angle_deg: FloatArray
    line_loading: FloatArray
    line_p_from_kw: FloatArray
    line_q_from_kvar: FloatArray
    line_p_to_kw: FloatArray
    line_q_to_kvar: FloatArray
    trafo_loading: FloatArray
    trafo_p_from_kw: FloatArray
    trafo_q_from_kvar: FloatArray
    trafo_p_to_kw: FloatArray
    trafo_q_to_kvar: FloatArray
    grid_p_kw: FloatArray  # per external grid, import positive
    grid_q_kvar: FloatArray
    v_residual_pu: FloatArray  # per voltage row: measured − estimated
    p_residual_kw: FloatArray  # per power row, in the row's own sign convention
    q_residual_kvar: FloatArray
    v_normalised: FloatArray  # |r| / sqrt(Ω_ii), evaluated for the top candidates only (NaN elsewhere)
    p_normalised: FloatArray
    q_normalised: FloatArray
    objective: float  # J = Σ (r/σ)²
    dof: int
    chi2_threshold: float
    confidence: float
    bad_data_suspected: bool  # J above the chi-square threshold
    suspects: tuple[Suspect, ...]  # r_N above the threshold, largest (the identified bad datum) first
    objective_without_suspect: float | None = None  # J after re-estimating with the first suspect removed


class StateEstimator:
    """Weighted-least-squares state estimation of one network topology (see the module docstring).

    ``method`` is power-grid-model's: "iterative_linear" (default; robust on large feeders where only some
    buses have a voltage sensor, retried with Newton-Raphson when it does not converge) or "newton_raphson"
    (which in power-grid-model 1.12 reports a singular matrix on the demo unless every bus has a voltage
    sensor). ``tolerance`` is the largest voltage change (pu) between iterations at convergence: 1e-5 pu
    is far below any field device's accuracy, and live measurement sets (readings of different ages)
    often need more than 100 iterations to reach 1e-6 pu on the demo.
    ``confidence`` sets the chi-square threshold; ``lnr_threshold`` the normalised residual above which a
    measurement is named; ``candidates`` how many rows get a normalised residual; ``reestimate`` runs a
    second estimate without the first suspect to report how much J drops.
    """

    def __init__(
        self,
        network: Network,
        *,
        method: str = "iterative_linear",
        confidence: float = 0.99,
        lnr_threshold: float = 3.0,
        candidates: int = 50,
        reestimate: bool = False,
        max_iterations: int = 200,
        tolerance: float = 1e-5,
    ) -> None:
        self._data, self.index = build_input(network)
        self._adm = grid_admittance(self._data)
        self._sensors = SensorMap(self._data, self.index, self._adm)
        self.method = CalculationMethod[method]
        self.confidence, self.lnr_threshold, self.candidates = confidence, lnr_threshold, candidates
        self.reestimate = reestimate
        self.max_iterations, self.tolerance = max_iterations, tolerance
        self._model: PowerGridModel | None = None
        self._signature = ""

    def estimate(self, measurements: MeasurementSet) -> Estimate:
        """Estimate the state from one cycle's measurements (pseudo-measurements included)."""
        compiled = self._sensors.compile(measurements)
        out, failure = self._solve(compiled, measurements)
        if out is None:
            return self._failed(compiled, measurements, failure)
        estimate = self._estimate(compiled, measurements, out)
        if self.reestimate and estimate.suspects:
            estimate = self._without_first_suspect(compiled, measurements, estimate)
        return estimate

    def _solve(
        self, compiled: CompiledLayout, ms: MeasurementSet
    ) -> tuple[dict[ComponentType, Any] | None, tuple[bool, str]]:
        """Engine output, or None and (observable, message)."""
        if self._model is None or compiled.signature != self._signature:
            self._model = PowerGridModel({**self._data, **SensorMap.sensors(compiled, ms, DatasetType.input)})
            self._signature = compiled.signature
        else:
            self._model.update(update_data=SensorMap.sensors(compiled, ms, DatasetType.update))
        methods = [self.method]
        if self.method is not CalculationMethod.newton_raphson:
            methods.append(CalculationMethod.newton_raphson)
        failure = (True, "")
        for method in methods:
            try:
                requested: dict[ComponentType, set[str] | list[str] | ComponentAttributeFilterOptions | None] = {
                    **_OUTPUTS
                }
                out = self._model.calculate_state_estimation(
                    calculation_method=method,
                    error_tolerance=self.tolerance,
                    max_iterations=self.max_iterations,
                    output_component_types=requested,
                )
                return out, failure
            except (NotObservableError, SparseMatrixError) as exc:
                return None, (False, str(exc).split("\n")[0])
            except IterationDiverge as exc:
                failure = (True, str(exc).split("\n")[0])
            except PowerGridError as exc:
                return None, (True, str(exc).split("\n")[0])
        return None, failure

    def _failed(self, compiled: CompiledLayout, ms: MeasurementSet, failure: tuple[bool, str]) -> Estimate:
        observable, message = failure
        reason = "" if observable else _observability(compiled, ms)
        idx = self.index
        branch = ("loading", "p_from_kw", "q_from_kvar", "p_to_kw", "q_to_kvar")
        sizes = {
            "v_pu": len(idx.buses),
            "angle_deg": len(idx.buses),
            **{f"line_{a}": len(idx.lines) for a in branch},
            **{f"trafo_{a}": len(idx.transformers) for a in branch},
            "grid_p_kw": len(idx.sources),
            "grid_q_kvar": len(idx.sources),
            **dict.fromkeys(("v_residual_pu", "v_normalised"), len(ms.voltages)),
            **dict.fromkeys(("p_residual_kw", "q_residual_kvar", "p_normalised", "q_normalised"), len(ms.powers)),
        }
        nan: dict[str, Any] = {name: np.full(n, np.nan) for name, n in sizes.items()}
        return Estimate(
            index=idx,
            observable=observable,
            converged=False,
            observability=reason,
            message=message,
            objective=float("nan"),
            dof=0,
            chi2_threshold=float("inf"),
            confidence=self.confidence,
            bad_data_suspected=False,
            suspects=(),
            **nan,
        )

    def _estimate(self, compiled: CompiledLayout, ms: MeasurementSet, out: dict[ComponentType, Any]) -> Estimate:
        node, line, trafo, source = (
            out[c] for c in (ComponentType.node, ComponentType.line, ComponentType.transformer, ComponentType.source)
        )
        energized = node["energized"].astype(bool)
        v_pu = np.where(energized, node["u_pu"], np.nan)
        angle = np.where(energized, node["u_angle"], np.nan)
        v = np.zeros(self._adm.nodes, np.complex128)
        v[self._adm.node_of] = np.nan_to_num(v_pu * np.exp(1j * angle))
        v_res = out[ComponentType.sym_voltage_sensor]["u_residual"] / compiled.v_u_rated
        p_res = out[ComponentType.sym_power_sensor]["p_residual"] / W_PER_KW
        q_res = out[ComponentType.sym_power_sensor]["q_residual"] / W_PER_KW
        vs, ps = ms.voltages, ms.powers
        residuals = Residuals(
            v_res, vs.sigma_pu, vs.pseudo,
            p_res / KW_PER_PU, q_res / KW_PER_PU, ps.sigma_p_kw / KW_PER_PU, ps.sigma_q_kvar / KW_PER_PU, ps.pseudo,
        )  # fmt: skip
        report = analyse(
            compiled.layout, self._adm, v, jacobians(self._adm, v), residuals,
            confidence=self.confidence, threshold=self.lnr_threshold, candidates=self.candidates,
        )  # fmt: skip
        suspects = tuple(
            Suspect(str(vs.bus[f.row]), "bus", f.quantity, f.normalised_residual)
            if f.voltage
            else Suspect(
                str(ps.element[f.row]),
                str(ps.terminal[f.row]),
                f.quantity,
                f.normalised_residual,
                tuple(str(ps.element[a]) for a in f.alternatives),
            )
            for f in report.findings
        )
        return Estimate(
            index=self.index, observable=True, converged=True, observability="", message="",
            v_pu=v_pu, angle_deg=np.degrees(angle),
            line_loading=line["loading"], line_p_from_kw=_kw(line["p_from"]), line_q_from_kvar=_kw(line["q_from"]),
            line_p_to_kw=_kw(line["p_to"]), line_q_to_kvar=_kw(line["q_to"]),
            trafo_loading=trafo["loading"], trafo_p_from_kw=_kw(trafo["p_from"]),
            trafo_q_from_kvar=_kw(trafo["q_from"]),
            trafo_p_to_kw=_kw(trafo["p_to"]), trafo_q_to_kvar=_kw(trafo["q_to"]),
            grid_p_kw=_kw(source["p"]), grid_q_kvar=_kw(source["q"]),
            v_residual_pu=v_res, p_residual_kw=p_res, q_residual_kvar=q_res,
            v_normalised=report.v_normalised, p_normalised=report.p_normalised, q_normalised=report.q_normalised,
            objective=report.objective, dof=report.dof, chi2_threshold=report.threshold, confidence=self.confidence,
            bad_data_suspected=report.suspected, suspects=suspects,
        )  # fmt: skip

    def _without_first_suspect(self, compiled: CompiledLayout, ms: MeasurementSet, estimate: Estimate) -> Estimate:
        first = estimate.suspects[0]
        if first.terminal == "bus":
            rows = np.flatnonzero(ms.voltages.bus == first.element)
            cleaned = ms.with_sigma(voltage_rows=rows)
        else:
            rows = np.flatnonzero((ms.powers.element == first.element) & (ms.powers.terminal == first.terminal))
            cleaned = ms.with_sigma(power_rows=rows)
        out, _ = self._solve(compiled, cleaned)
        self._model = None  # the model now holds the cleaned values; the next cycle rebuilds or updates afresh
        if out is None:
            return estimate
        again = self._estimate(compiled, cleaned, out)
        return replace(estimate, objective_without_suspect=again.objective)


def _kw(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64) / W_PER_KW


def _observability(compiled: CompiledLayout, ms: MeasurementSet) -> str:
    """Say what is missing, in words an operator can act on."""
    parts = []
    if len(ms.voltages) == 0:
        parts.append("no voltage measurement: at least one bus voltage is needed")
    missing = compiled.unmeasured
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        parts.append(
            f"{len(missing)} appliance(s) have neither a measurement nor a pseudo-measurement ({shown}); "
            "add pseudo_measurements() for them"
        )
    return "; ".join(parts) or "too few independent measurements for the network's state; add measurements"
