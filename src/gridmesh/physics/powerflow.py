"""Batch-first power flow through power-grid-model.

A study hands over a window of time steps at once (one batch); a single snapshot is a batch of one.
Failed steps do not abort the batch: they are reported per step (``failed``) and their results are NaN.
Buses without a path to a source are reported as not energized, not as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from power_grid_model import (
    CalculationMethod,
    ComponentAttributeFilterOptions,
    ComponentType,
    DatasetType,
    PowerGridModel,
    initialize_array,
)
from power_grid_model.errors import PowerGridBatchError, PowerGridError  # type: ignore[attr-defined]

from gridmesh.errors import NotConverged
from gridmesh.model.network import Network
from gridmesh.physics.pgm_input import ModelIndex, build_input
from gridmesh.units import W_PER_KW

FloatArray = npt.NDArray[np.float64]

Outputs = dict[ComponentType, list[str]]
FULL_OUTPUTS: Outputs = {
    ComponentType.node: ["u_pu", "u_angle", "energized"],
    ComponentType.line: ["loading", "p_from", "q_from", "p_to", "i_from", "i_to"],
    ComponentType.transformer: ["loading", "p_from", "q_from", "p_to"],
    ComponentType.source: ["p", "q"],
    ComponentType.link: ["p_from"],
}
# What a study reads (voltages, loadings, active branch flows for losses and PCCs). Asking power-grid-model
# for less output nearly halves the time of a large batch; the fields left out come back as NaN.
STUDY_OUTPUTS: Outputs = {
    ComponentType.node: ["u_pu", "energized"],
    ComponentType.line: ["loading", "p_from", "p_to"],
    ComponentType.transformer: ["loading", "p_from", "p_to"],
    ComponentType.source: ["p", "q"],
    ComponentType.link: ["p_from"],
}


@dataclass(frozen=True)
class Injections:
    """Powers per time step, shape ``(steps, n)``, columns in :class:`ModelIndex` order.

    Loads and EV chargers in load convention; generators and batteries in generator convention (kW, kvar).
    """

    load_p_kw: FloatArray
    load_q_kvar: FloatArray
    gen_p_kw: FloatArray
    gen_q_kvar: FloatArray
    ev_p_kw: FloatArray
    battery_p_kw: FloatArray

    @property
    def steps(self) -> int:
        return int(self.load_p_kw.shape[0])

    def rows(self, rows: npt.NDArray[np.int64]) -> Injections:
        """The sub-batch of the given steps."""
        return Injections(*(getattr(self, f.name)[rows] for f in fields(self)))


@dataclass(frozen=True)
class PowerFlowResult:
    """Results of one batch; arrays are ``(steps, n)`` in :class:`ModelIndex` order."""

    index: ModelIndex
    v_pu: FloatArray
    angle_deg: FloatArray
    energized: npt.NDArray[np.bool_]
    line_loading: FloatArray
    line_p_from_kw: FloatArray
    line_q_from_kvar: FloatArray
    line_p_to_kw: FloatArray
    line_i_a: FloatArray
    trafo_loading: FloatArray
    trafo_p_from_kw: FloatArray
    trafo_q_from_kvar: FloatArray
    trafo_p_to_kw: FloatArray
    grid_p_kw: FloatArray  # per external grid: import from upstream (> 0) in kW
    grid_q_kvar: FloatArray
    link_p_from_kw: FloatArray
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.v_pu.shape[0])

    @property
    def losses_kw(self) -> FloatArray:
        """Series losses in lines and transformers per step (kW)."""
        lines: FloatArray = np.nansum(self.line_p_from_kw + self.line_p_to_kw, axis=1)
        trafos: FloatArray = np.nansum(self.trafo_p_from_kw + self.trafo_p_to_kw, axis=1)
        total = lines + trafos
        total[list(self.failed)] = np.nan  # a failed step has no losses, not zero losses
        return total

    def raise_on_failure(self) -> PowerFlowResult:
        if self.failed:
            raise NotConverged(sorted(self.failed), [self.failed[s] for s in sorted(self.failed)])
        return self


class PowerFlow:
    """A power-flow model of one network topology, reused for many batches (build once, run often)."""

    def __init__(
        self, network: Network, *, method: str = "newton_raphson", threading: int = 0, outputs: Outputs = FULL_OUTPUTS
    ) -> None:
        data, self.index = build_input(network)
        self._base = data
        self._model = PowerGridModel(data)
        self.method = CalculationMethod[method]
        self.threading = threading  # 0: as many threads as the machine has
        self.outputs = outputs
        self._fallback: PowerGridModel | None = None

    def base_injections(self) -> Injections:
        """The network's own element values as a batch of one (a snapshot)."""
        load = self._base[ComponentType.sym_load]
        gen = self._base[ComponentType.sym_gen]
        nl, ng = len(self.index.loads), len(self.index.generators)
        return Injections(
            load_p_kw=load["p_specified"][None, :nl] / W_PER_KW,
            load_q_kvar=load["q_specified"][None, :nl] / W_PER_KW,
            gen_p_kw=gen["p_specified"][None, :ng] / W_PER_KW,
            gen_q_kvar=gen["q_specified"][None, :ng] / W_PER_KW,
            ev_p_kw=np.zeros((1, len(self.index.ev_chargers))),
            battery_p_kw=np.zeros((1, len(self.index.batteries))),
        )

    def _update(self, inj: Injections, source_u_pu: FloatArray | None = None) -> dict[ComponentType, Any]:
        steps = inj.steps
        load = initialize_array(DatasetType.update, ComponentType.sym_load, (steps, len(self.index.load_ids)))
        load["id"] = self.index.load_ids[None, :]
        load["p_specified"] = np.hstack([inj.load_p_kw, inj.ev_p_kw]) * W_PER_KW
        load["q_specified"] = np.hstack([inj.load_q_kvar, np.zeros_like(inj.ev_p_kw)]) * W_PER_KW
        gen = initialize_array(DatasetType.update, ComponentType.sym_gen, (steps, len(self.index.gen_ids)))
        gen["id"] = self.index.gen_ids[None, :]
        gen["p_specified"] = np.hstack([inj.gen_p_kw, inj.battery_p_kw]) * W_PER_KW
        gen["q_specified"] = np.hstack([inj.gen_q_kvar, np.zeros_like(inj.battery_p_kw)]) * W_PER_KW
        update = {ComponentType.sym_load: load, ComponentType.sym_gen: gen}
        if source_u_pu is not None:
            source = initialize_array(DatasetType.update, ComponentType.source, (steps, len(self.index.sources)))
            source["id"] = self._base[ComponentType.source]["id"][None, :]
            source["u_ref"] = source_u_pu
            update[ComponentType.source] = source
        return update

    def run(self, injections: Injections, *, source_u_pu: FloatArray | None = None) -> PowerFlowResult:
        """Power flow for every step of ``injections``; failed steps are listed, not raised.

        With a fast method (iterative current) the steps it cannot solve are retried by Newton-Raphson,
        which converges in more cases; only steps that fail both are reported. ``source_u_pu``, shape
        ``(steps, sources)`` in :attr:`ModelIndex.sources` order, sets each source's voltage per step (a
        grid-forming unit's Q-droop set-point); by default the sources keep their ``vm_pu``.
        """
        result = self._solve(self._model, self.method, injections, source_u_pu)
        if result.failed and self.method is not CalculationMethod.newton_raphson:
            rows = np.array(sorted(result.failed), dtype=np.int64)
            if self._fallback is None:
                self._fallback = PowerGridModel(self._base)
            retry = self._solve(
                self._fallback,
                CalculationMethod.newton_raphson,
                injections.rows(rows),
                None if source_u_pu is None else source_u_pu[rows],
            )
            result = with_rows(result, rows, retry)
        return result

    def _solve(
        self,
        model: PowerGridModel,
        method: CalculationMethod,
        injections: Injections,
        source_u_pu: FloatArray | None = None,
    ) -> PowerFlowResult:
        failed: dict[int, str] = {}
        requested: dict[ComponentType, set[str] | list[str] | ComponentAttributeFilterOptions | None] = {**self.outputs}
        try:
            out = model.calculate_power_flow(
                update_data=self._update(injections, source_u_pu),
                calculation_method=method,
                threading=self.threading,
                output_component_types=requested,
                continue_on_batch_error=True,
            )
        except PowerGridBatchError as exc:  # pragma: no cover - raised only by some library versions
            raise NotConverged(list(exc.failed_scenarios), list(exc.error_messages)) from exc
        except PowerGridError as exc:
            raise NotConverged(list(range(injections.steps)), [str(exc)] * injections.steps) from exc
        error = model.batch_error
        if error is not None:
            failed = {int(s): str(m) for s, m in zip(error.failed_scenarios, error.error_messages, strict=True)}
        return _result(self.index, out, failed)


def with_rows(result: PowerFlowResult, rows: npt.NDArray[np.int64], retry: PowerFlowResult) -> PowerFlowResult:
    """``result`` with the steps ``rows`` replaced by ``retry`` (a sub-batch of those steps), in place."""
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            value[rows] = getattr(retry, f.name)
    failed = {int(rows[k]): reason for k, reason in retry.failed.items()}
    return PowerFlowResult(
        **{f.name: getattr(result, f.name) for f in fields(result) if f.name != "failed"}, failed=failed
    )


def _kw(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64) / W_PER_KW


def _outputs(out: dict[ComponentType, Any], steps: int) -> tuple[dict[str, Any], ...]:
    """Every output per component, NaN where not requested or where the network has no such component."""
    filled = []
    for component, attrs in FULL_OUTPUTS.items():
        given = out.get(component) or {}
        width = next((np.shape(v)[1] for v in given.values()), 0)
        filled.append({a: given[a] if a in given else np.full((steps, width), np.nan) for a in attrs})
    return tuple(filled)


def _result(index: ModelIndex, out: dict[ComponentType, Any], failed: dict[int, str]) -> PowerFlowResult:
    node, line, trafo, source, link = _outputs(out, int(np.shape(out[ComponentType.node]["u_pu"])[0]))
    energized = np.nan_to_num(node["energized"]).astype(bool)
    v_pu = np.where(energized, node["u_pu"], np.nan)
    result = PowerFlowResult(
        index=index,
        v_pu=v_pu,
        angle_deg=np.where(energized, np.degrees(node["u_angle"]), np.nan),
        energized=energized,
        line_loading=np.asarray(line["loading"], dtype=np.float64),
        line_p_from_kw=_kw(line["p_from"]),
        line_q_from_kvar=_kw(line["q_from"]),
        line_p_to_kw=_kw(line["p_to"]),
        line_i_a=np.maximum(line["i_from"], line["i_to"]).astype(np.float64),
        trafo_loading=np.asarray(trafo["loading"], dtype=np.float64),
        trafo_p_from_kw=_kw(trafo["p_from"]),
        trafo_q_from_kvar=_kw(trafo["q_from"]),
        trafo_p_to_kw=_kw(trafo["p_to"]),
        grid_p_kw=_kw(source["p"]),
        grid_q_kvar=_kw(source["q"]),
        link_p_from_kw=_kw(link["p_from"]),
        failed=failed,
    )
    if failed:
        rows = np.fromiter(failed, dtype=np.int64)
        for array in (
            result.v_pu,
            result.angle_deg,
            result.line_loading,
            result.trafo_loading,
            result.line_p_from_kw,
            result.line_q_from_kvar,
            result.line_p_to_kw,
            result.trafo_p_from_kw,
            result.trafo_q_from_kvar,
            result.trafo_p_to_kw,
            result.grid_p_kw,
            result.grid_q_kvar,
            result.line_i_a,
            result.link_p_from_kw,
        ):
            array[rows] = np.nan
    return result


def snapshot(network: Network) -> PowerFlowResult:
    """Power flow of the network as it is (element values, present switch states): a batch of one."""
    engine = PowerFlow(network)
    return engine.run(engine.base_injections())
