"""Short-circuit currents by IEC 60909 (equivalent voltage source at the fault) through power-grid-model.

A fault is placed on a bus or somewhere along a line (the line is cut there by a temporary node). Many
faults are solved as one power-grid-model batch of single-fault scenarios: the network is factorised once
and each scenario only moves the fault. Results are the fault current per phase and, per line,
transformer and bus-bus switch, the current per phase at each end — what protection and fault passage
indicators react to.

Only the external grids feed a fault: loads and line capacitances are neglected as IEC 60909 prescribes,
and inverter-coupled generation and batteries contribute nothing (their infeed, about 1–1.5 × rated
current, is small beside a distribution grid's short-circuit power).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from power_grid_model import (
    ComponentAttributeFilterOptions,
    ComponentType,
    DatasetType,
    FaultPhase,
    PowerGridModel,
    ShortCircuitVoltageScaling,
    initialize_array,
)
from power_grid_model import FaultType as PgmFaultType

from gridmesh.errors import GridmeshError
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network
from gridmesh.physics.pgm_input import ModelIndex, cut_lines, short_circuit_input

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
A_PER_KA = 1_000.0
END_MARGIN = 1e-4
"""A line fault at position 0 or 1 is placed this fraction of the line length inside it, so that it stays
on the line side of a switch at that end; the error is 0.01 % of the line's impedance."""


class FaultType(StrEnum):
    """The four short-circuit types of IEC 60909."""

    THREE_PHASE = "three-phase"
    LINE_TO_LINE = "line-to-line"
    LINE_TO_GROUND = "line-to-ground"
    TWO_PHASE_TO_GROUND = "two-phase-to-ground"


class VoltageScaling(StrEnum):
    """Which IEC 60909 voltage factor c to use: maximum currents (equipment duty) or minimum (protection reach)."""

    MAXIMUM = "maximum"
    MINIMUM = "minimum"


LV_KV = 1.0  # IEC 60909 Table 1 distinguishes systems up to and above 1 kV
LvTolerance = Literal[6, 10]


def voltage_factor(vn_kv: float, scaling: VoltageScaling, lv_tolerance_percent: LvTolerance = 10) -> float:
    """IEC 60909-0:2016 Table 1: c for a nominal voltage. Above 1 kV 1.10 (maximum) / 1.00 (minimum);
    up to 1 kV 1.10 / 0.90 for systems with a +10 % tolerance (230/400 V in Europe), 1.05 / 0.95 for +6 %."""
    maximum = scaling is VoltageScaling.MAXIMUM
    if vn_kv > LV_KV:
        return 1.1 if maximum else 1.0
    if lv_tolerance_percent == 10:
        return 1.1 if maximum else 0.9
    return 1.05 if maximum else 0.95


def _pgm_factor(vn_kv: float, scaling: VoltageScaling) -> float:
    """The c power-grid-model applies to a source's voltage (it scales the sources, not the fault point)."""
    if scaling is VoltageScaling.MAXIMUM:
        return 1.1
    return 0.95 if vn_kv <= LV_KV else 1.0


_PGM_FAULT = {
    FaultType.THREE_PHASE: PgmFaultType.three_phase,
    FaultType.LINE_TO_LINE: PgmFaultType.two_phase,
    FaultType.LINE_TO_GROUND: PgmFaultType.single_phase_to_ground,
    FaultType.TWO_PHASE_TO_GROUND: PgmFaultType.two_phase_to_ground,
}
_TABLES = ("buses", "lines")


class FaultError(GridmeshError, ValueError):
    """A fault cannot be placed or solved as given; ``element`` and ``field`` say where."""

    def __init__(self, element: str, field_name: str, problem: str, fix: str) -> None:
        self.element, self.field = element, field_name
        super().__init__(f"fault on {element!r}: {field_name}: {problem} — {fix}")


@dataclass(frozen=True)
class Fault:
    """A short circuit on a bus, or on a line at ``position`` (fraction of its length from its from-bus).

    ``r_ohm``/``x_ohm`` is the fault impedance (arc or contact), per phase to the fault point: power-grid-model
    puts it between the phases of a line-to-line fault and, for ground faults, in the path to ground.
    ``permanent`` decides what reclosing achieves (a temporary fault is gone at the first reclose).
    """

    element: str
    table: Literal["buses", "lines"]
    fault_type: FaultType
    position: float | None = None
    r_ohm: float = 0.0
    x_ohm: float = 0.0
    permanent: bool = True

    def __post_init__(self) -> None:
        if self.table not in _TABLES:
            raise FaultError(self.element, "table", f"{self.table!r} cannot carry a fault", "use 'buses' or 'lines'")
        try:
            object.__setattr__(self, "fault_type", FaultType(self.fault_type))
        except ValueError:
            known = ", ".join(t.value for t in FaultType)
            raise FaultError(
                self.element, "fault_type", f"{self.fault_type!r} is not a fault type", f"use one of {known}"
            ) from None
        if self.table == "buses" and self.position is not None:
            raise FaultError(self.element, "position", "a bus fault has no position", "leave position out")
        if self.table == "lines":
            position = 0.5 if self.position is None else float(self.position)
            if not 0.0 <= position <= 1.0:
                raise FaultError(
                    self.element, "position", f"{position} lies outside the line", "give a fraction in [0, 1]"
                )
            object.__setattr__(self, "position", position)
        for name in ("r_ohm", "x_ohm"):
            if not getattr(self, name) >= 0.0:  # also refuses NaN
                raise FaultError(self.element, name, f"{getattr(self, name)} is negative", "give an impedance ≥ 0")


@dataclass(frozen=True)
class FaultCurrents:
    """Currents of a batch of faults; row k of every array belongs to ``faults[k]``.

    Branch arrays are ``(faults, branches, 3)`` in :class:`ModelIndex` order (phases a, b, c); a
    transformer's "from" end is its HV side. ``energized[k]`` is False where no source reaches the fault.
    """

    faults: tuple[Fault, ...]
    voltage_scaling: VoltageScaling
    index: ModelIndex
    i_fault_ka: FloatArray  # (faults, 3)
    energized: BoolArray  # (faults,)
    line_i_from_a: FloatArray
    line_i_to_a: FloatArray
    trafo_i_from_a: FloatArray
    trafo_i_to_a: FloatArray
    link_i_a: FloatArray  # bus-bus switches, (faults, links, 3)

    def __len__(self) -> int:
        return len(self.faults)

    def row(self, fault: Fault) -> int:
        """The batch row of ``fault`` (the first, if it was given twice)."""
        try:
            return self.faults.index(fault)
        except ValueError:
            raise FaultError(
                fault.element, "fault", "is not among the faults of these currents", "compute currents for it first"
            ) from None

    def fault_ka(self, fault: Fault) -> float:
        """The largest phase current at the fault, kA."""
        return float(self.i_fault_ka[self.row(fault)].max())

    @cached_property
    def _positions(self) -> dict[str, dict[str, int]]:
        return {
            "lines": {x: k for k, x in enumerate(self.index.lines)},
            "transformers": {x: k for k, x in enumerate(self.index.transformers)},
            "links": {x: k for k, x in enumerate(self.index.links)},
        }

    def through_switch_a(self, network: Network, switch: str) -> FloatArray:
        """Current per phase through a switch in every fault, ``(faults, 3)`` A: the current at the end of
        the branch the switch sits on (or of the bus-bus link it is)."""
        sw = network.switches[switch]
        pos = self._positions
        if sw.element_type is SwitchedElement.BUS:
            return self.link_i_a[:, pos["links"][sw.id]]
        if sw.element_type is SwitchedElement.LINE:
            k = pos["lines"][sw.element]
            from_end = network.lines[sw.element].from_bus == sw.bus
            return (self.line_i_from_a if from_end else self.line_i_to_a)[:, k]
        k = pos["transformers"][sw.element]
        hv_end = network.transformers[sw.element].hv_bus == sw.bus
        return (self.trafo_i_from_a if hv_end else self.trafo_i_to_a)[:, k]


_OUTPUTS: dict[ComponentType, set[str] | list[str] | ComponentAttributeFilterOptions | None] = {
    ComponentType.fault: ["i_f"],
    ComponentType.line: ["i_from", "i_to"],
    ComponentType.transformer: ["i_from", "i_to"],
    ComponentType.link: ["i_from"],
}


class ShortCircuit:
    """The short-circuit model of one network in its present switch states (build once, ask often).

    ``lv_tolerance_percent`` picks the low-voltage voltage factors (see :func:`voltage_factor`).
    ``threading``: 0 uses every core for a batch, 1 runs it sequentially (power-grid-model's meaning).
    """

    def __init__(self, network: Network, *, lv_tolerance_percent: LvTolerance = 10, threading: int = 0) -> None:
        self.network = network
        self.lv_tolerance_percent = lv_tolerance_percent
        self.threading = threading
        self._inputs: dict[VoltageScaling, dict[ComponentType, Any]] = {}
        self._models: dict[VoltageScaling, PowerGridModel] = {}
        data = self._input(VoltageScaling.MAXIMUM)
        self._fault_id = max(int(a["id"].max()) for a in data.values() if len(a))  # the fault's own id
        self._node = {b: k for k, b in enumerate(self.index.buses)}  # node id == position in index.buses
        self._line = {x: k for k, x in enumerate(self.index.lines)}
        grids = [g for g in network.external_grids.values() if g.in_service] or list(network.external_grids.values())
        self._source_kv = min((network.buses[g.bus].vn_kv for g in grids), default=LV_KV + 1)

    def _input(self, scaling: VoltageScaling) -> dict[ComponentType, Any]:
        """The two cases differ in the source impedances and the transformer correction (K_T)."""
        if scaling not in self._inputs:
            data, self.index = short_circuit_input(
                self.network,
                voltage_factor=lambda kv: voltage_factor(kv, scaling, self.lv_tolerance_percent),
                transformer_correction=scaling is VoltageScaling.MAXIMUM,
            )
            data[ComponentType.fault] = self._fault_input(1 + max(int(a["id"].max()) for a in data.values() if len(a)))
            self._inputs[scaling] = data
        return self._inputs[scaling]

    def _scale(self, faults: tuple[Fault, ...], scaling: VoltageScaling) -> FloatArray:
        """Per fault, c at the fault over the c power-grid-model gave the sources: the network is linear
        and feeds the fault from one equivalent voltage, so every current scales by this ratio.
        (Exact while all external grids sit on the same side of 1 kV.)"""
        c_pgm = _pgm_factor(self._source_kv, scaling)
        kv = [self.network.buses[self._fault_bus(f)].vn_kv for f in faults]
        return np.array([voltage_factor(v, scaling, self.lv_tolerance_percent) / c_pgm for v in kv])

    def _fault_bus(self, fault: Fault) -> str:
        return fault.element if fault.table == "buses" else self.network.lines[fault.element].from_bus

    @staticmethod
    def _fault_input(fault_id: int) -> Any:
        fault = initialize_array(DatasetType.input, ComponentType.fault, 1)
        fault["id"], fault["status"], fault["fault_object"] = fault_id, 1, 0
        fault["fault_type"], fault["fault_phase"] = PgmFaultType.three_phase, FaultPhase.default_value
        fault["r_f"] = fault["x_f"] = 0.0
        return fault

    def _resolve(self, fault: Fault) -> int | tuple[int, float]:
        """The node id of a bus fault, or (line row, fraction) of a line fault; unknown elements raise."""
        if fault.table == "buses":
            if fault.element not in self._node:
                raise FaultError(fault.element, "element", "no such bus", "name a bus of the network")
            return self._node[fault.element]
        if fault.element not in self._line:
            raise FaultError(fault.element, "element", "no such line", "name a line of the network")
        position = float(fault.position if fault.position is not None else 0.5)
        return self._line[fault.element], min(max(position, END_MARGIN), 1.0 - END_MARGIN)

    def currents(self, faults: Sequence[Fault], *, voltage_scaling: str = VoltageScaling.MAXIMUM) -> FaultCurrents:
        """Currents for each fault on its own (one batch scenario per fault, one power-grid-model call)."""
        faults = tuple(faults)
        if not faults:
            raise FaultError("-", "faults", "no fault given", "pass at least one Fault")
        try:
            scaling = VoltageScaling(voltage_scaling)
        except ValueError:
            known = ", ".join(v.value for v in VoltageScaling)
            raise FaultError("-", "voltage_scaling", f"{voltage_scaling!r} is unknown", f"use {known}") from None
        places = [self._resolve(f) for f in faults]
        cuts = [p for p in places if isinstance(p, tuple)]
        data = self._input(scaling)
        line_cuts = None
        if cuts:
            data, line_cuts = cut_lines(data, cuts, first_id=self._fault_id + 1)
            cut_nodes = iter(line_cuts.nodes.tolist())
            objects = [next(cut_nodes) if isinstance(p, tuple) else p for p in places]
            model = PowerGridModel(data)
        else:
            objects = [p for p in places if isinstance(p, int)]
            if scaling not in self._models:
                self._models[scaling] = PowerGridModel(data)
            model = self._models[scaling]
        out = model.calculate_short_circuit(
            update_data={ComponentType.fault: self._update(faults, objects)},
            threading=self.threading,
            output_component_types=_OUTPUTS,
            short_circuit_voltage_scaling=ShortCircuitVoltageScaling[scaling.value],
        )
        return self._result(faults, scaling, out, line_cuts.tails if line_cuts else {}, self._scale(faults, scaling))

    def _update(self, faults: tuple[Fault, ...], objects: list[int]) -> Any:
        update = initialize_array(DatasetType.update, ComponentType.fault, (len(faults), 1))
        update["id"] = self._fault_id
        update["fault_object"] = np.array(objects, dtype=np.int32)[:, None]
        update["fault_type"] = np.array([_PGM_FAULT[f.fault_type] for f in faults], dtype=np.int8)[:, None]
        update["fault_phase"] = FaultPhase.default_value
        update["r_f"] = np.array([f.r_ohm for f in faults])[:, None]
        update["x_f"] = np.array([f.x_ohm for f in faults])[:, None]
        return update

    def _result(
        self,
        faults: tuple[Fault, ...],
        scaling: VoltageScaling,
        out: Mapping[ComponentType, Any],
        tails: dict[int, int],
        scale: FloatArray,
    ) -> FaultCurrents:
        n = len(faults)
        nl = len(self.index.lines)

        def branch(component: ComponentType, attr: str, width: int) -> FloatArray:
            if component not in out or width == 0:
                return np.zeros((n, width, 3))
            return np.nan_to_num(np.asarray(out[component][attr], dtype=np.float64)[:, :width]) * scale[:, None, None]

        line_from = branch(ComponentType.line, "i_from", nl)
        line_to = branch(ComponentType.line, "i_to", nl)
        if tails:  # a cut line's to-end current is that of its last segment
            rows, tail_rows = np.fromiter(tails, dtype=np.int64), np.fromiter(tails.values(), dtype=np.int64)
            all_to = np.nan_to_num(np.asarray(out[ComponentType.line]["i_to"], dtype=np.float64))
            line_to[:, rows] = all_to[:, tail_rows] * scale[:, None, None]
        fault_a = np.nan_to_num(np.asarray(out[ComponentType.fault]["i_f"], dtype=np.float64)[:, 0, :]) * scale[:, None]
        return FaultCurrents(
            faults=faults,
            voltage_scaling=scaling,
            index=self.index,
            i_fault_ka=fault_a / A_PER_KA,
            energized=fault_a.max(axis=1) > 0.0,
            line_i_from_a=line_from,
            line_i_to_a=line_to,
            trafo_i_from_a=branch(ComponentType.transformer, "i_from", len(self.index.transformers)),
            trafo_i_to_a=branch(ComponentType.transformer, "i_to", len(self.index.transformers)),
            link_i_a=branch(ComponentType.link, "i_from", len(self.index.links)),
        )
