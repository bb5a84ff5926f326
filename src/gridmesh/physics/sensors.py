"""Measurement rows → power-grid-model sensors, and the layout bad-data analysis needs.

A :class:`SensorMap` is built once per network topology. It turns a :class:`MeasurementSet` (element
ids, gridmesh units) into power-grid-model sensor arrays (object ids, volts and watts) with numpy
lookups, and tells whether two cycles share a layout (same sensors on the same objects), in which case
only the values change and the engine's model is updated instead of rebuilt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from power_grid_model import ComponentType, DatasetType, MeasuredTerminalType, initialize_array

from gridmesh.physics.admittance import GridAdmittance
from gridmesh.physics.bad_data import SensorLayout
from gridmesh.physics.measurement_set import MeasurementSet, Terminal
from gridmesh.physics.pgm_input import ModelIndex
from gridmesh.units import W_PER_KW

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
KW_PER_PU = 1e3  # per unit power base of the admittance model: 1 MVA
SENSOR_ID_BASE = 1 << 24  # sensor ids start above every network object id

_APPLIANCE_TYPES = {
    Terminal.LOAD: MeasuredTerminalType.load,
    Terminal.EV_CHARGER: MeasuredTerminalType.load,
    Terminal.GENERATOR: MeasuredTerminalType.generator,
    Terminal.BATTERY: MeasuredTerminalType.generator,
    Terminal.EXTERNAL_GRID: MeasuredTerminalType.source,
}
_BRANCH_TYPES = {
    Terminal.LINE_FROM: MeasuredTerminalType.branch_from,
    Terminal.LINE_TO: MeasuredTerminalType.branch_to,
    Terminal.TRAFO_HV: MeasuredTerminalType.branch_from,
    Terminal.TRAFO_LV: MeasuredTerminalType.branch_to,
}


@dataclass(frozen=True)
class _Table:
    """One kind of terminal: element ids → object id, merged node (or branch position), sign."""

    ids: pd.Index
    object_id: IntArray
    position: IntArray  # merged node (appliances) or branch position in the admittance model
    sign: float  # +1 generator convention, −1 load convention (appliances only)
    appliance_offset: int  # position of the first element in the appliance numbering


@dataclass(frozen=True)
class CompiledLayout:
    """Sensor rows resolved to the engine: ids and types for its arrays, the bad-data layout, a signature."""

    v_object: IntArray
    v_u_rated: FloatArray
    p_object: IntArray
    p_type: IntArray
    layout: SensorLayout
    unmeasured: tuple[str, ...]  # appliances without any measurement: their buses' injections are unknown
    signature: str


class SensorMap:
    """Resolves measurement rows of one network topology (see module docstring)."""

    def __init__(self, data: dict[ComponentType, Any], index: ModelIndex, adm: GridAdmittance) -> None:
        node_pos = pd.Index(np.asarray(data[ComponentType.node]["id"]))
        self._bus = pd.Index(index.buses)
        self._node_ids = np.asarray(data[ComponentType.node]["id"], dtype=np.int64)
        self._u_rated = np.asarray(data[ComponentType.node]["u_rated"], dtype=np.float64)
        self._node_of = adm.node_of
        load, gen, source = (data[c] for c in (ComponentType.sym_load, ComponentType.sym_gen, ComponentType.source))
        nl, ng = len(index.loads), len(index.generators)

        def merged(nodes: Any) -> IntArray:
            merged_nodes: IntArray = adm.node_of[node_pos.get_indexer(pd.Index(np.asarray(nodes)))]
            return merged_nodes

        groups: list[tuple[Terminal, tuple[str, ...], Any, float]] = [
            (Terminal.LOAD, index.loads, load[:nl], -1.0),
            (Terminal.EV_CHARGER, index.ev_chargers, load[nl:], -1.0),
            (Terminal.GENERATOR, index.generators, gen[:ng], 1.0),
            (Terminal.BATTERY, index.batteries, gen[ng:], 1.0),
            (Terminal.EXTERNAL_GRID, index.sources, source, 1.0),
        ]
        self._tables: dict[str, _Table] = {}
        offset = 0
        for terminal, ids, arr, sign in groups:
            self._tables[terminal.value] = _Table(
                pd.Index(ids), arr["id"].astype(np.int64), merged(arr["node"]), sign, offset
            )
            offset += len(ids)
        self.appliances = offset
        self._appliance_names = np.array(
            [*index.loads, *index.ev_chargers, *index.generators, *index.batteries, *index.sources], dtype=str
        )
        self._nodes = adm.nodes
        self._appliance_node = np.concatenate([t.position for t in self._tables.values()])
        line, trafo = data[ComponentType.line], data[ComponentType.transformer]
        for terminal, ids, arr, first in (
            (Terminal.LINE_FROM, index.lines, line, 0),
            (Terminal.LINE_TO, index.lines, line, 0),
            (Terminal.TRAFO_HV, index.transformers, trafo, len(line)),
            (Terminal.TRAFO_LV, index.transformers, trafo, len(line)),
        ):
            position = first + np.arange(len(ids), dtype=np.int64)
            self._tables[terminal.value] = _Table(pd.Index(ids), arr["id"].astype(np.int64), position, 0.0, -1)
        has_appliance = np.bincount(self._appliance_node, minlength=adm.nodes) > 0
        self._zero_nodes = np.flatnonzero(~has_appliance)
        self._ref_nodes = merged(source["node"])
        self._cache: CompiledLayout | None = None

    def compile(self, ms: MeasurementSet) -> CompiledLayout:
        """Resolve every row (cached while the layout repeats); unknown element ids raise ``ValueError``."""
        bus_rows = self._bus.get_indexer(pd.Index(ms.voltages.bus))
        _require(bus_rows >= 0, ms.voltages.bus, "bus")
        terminal, element = ms.powers.terminal, ms.powers.element
        n = len(element)
        p_object, p_type, position = (np.full(n, -1, np.int64) for _ in range(3))
        sign, app = np.zeros(n), np.full(n, -1, np.int64)
        for kind in np.unique(terminal):
            table = self._tables.get(str(kind))
            if table is None:
                raise ValueError(f"unknown terminal {kind!r}; use one of {[t.value for t in Terminal]}")
            rows = np.flatnonzero(terminal == kind)
            found = table.ids.get_indexer(pd.Index(element[rows]))
            _require(found >= 0, element[rows], str(kind))
            p_object[rows], position[rows] = table.object_id[found], table.position[found]
            term = Terminal(str(kind))
            p_type[rows] = int(_APPLIANCE_TYPES.get(term, _BRANCH_TYPES.get(term, MeasuredTerminalType.node)))
            if table.appliance_offset >= 0:
                sign[rows], app[rows] = table.sign, table.appliance_offset + found
        signature = hashlib.blake2b(
            b"".join(a.tobytes() for a in (bus_rows, p_object, p_type)), digest_size=16
        ).hexdigest()
        if self._cache is not None and self._cache.signature == signature:
            return self._cache
        self._cache = CompiledLayout(
            self._node_ids[bus_rows],
            self._u_rated[bus_rows],
            p_object,
            p_type,
            self._layout(bus_rows, terminal, position, sign, app),
            tuple(self._appliance_names[np.setdiff1d(np.arange(self.appliances), app[app >= 0])]),
            signature,
        )
        return self._cache

    def _layout(
        self, bus_rows: IntArray, terminal: Any, position: IntArray, sign: FloatArray, app: IntArray
    ) -> SensorLayout:
        is_app = app >= 0
        app_rows = np.flatnonzero(is_app)
        measured, app_key = np.unique(app[app_rows], return_inverse=True)
        covered = np.zeros(self.appliances, bool)
        covered[measured] = True
        nodes = self._nodes
        unmeasured_at = np.bincount(self._appliance_node[~covered], minlength=nodes) > 0
        has_appliance = np.bincount(self._appliance_node, minlength=nodes) > 0
        flow_rows = np.flatnonzero(~is_app)
        to_side = np.isin(terminal[flow_rows], [Terminal.LINE_TO.value, Terminal.TRAFO_LV.value])
        app_sign = np.zeros(len(measured))
        app_sign[app_key] = sign[app_rows]
        return SensorLayout(
            v_node=self._node_of[bus_rows],
            app_rows=app_rows,
            app_key=app_key.astype(np.int64),
            app_node=self._appliance_node[measured],
            app_sign=app_sign,
            inj_nodes=np.flatnonzero(has_appliance & ~unmeasured_at),
            zero_nodes=self._zero_nodes,
            flow_rows=flow_rows,
            flow_branch=position[flow_rows],
            flow_to=to_side,
            ref_nodes=self._ref_nodes,
        )

    @staticmethod
    def sensors(compiled: CompiledLayout, ms: MeasurementSet, dataset: DatasetType) -> dict[ComponentType, Any]:
        """Sensor arrays (input or update) carrying this cycle's values in volts and watts."""
        v, p = ms.voltages, ms.powers
        volt = initialize_array(dataset, ComponentType.sym_voltage_sensor, len(v))
        volt["id"] = SENSOR_ID_BASE + np.arange(len(v))
        volt["u_measured"] = v.v_pu * compiled.v_u_rated
        volt["u_sigma"] = v.sigma_pu * compiled.v_u_rated
        power = initialize_array(dataset, ComponentType.sym_power_sensor, len(p))
        power["id"] = SENSOR_ID_BASE + len(v) + np.arange(len(p))
        power["p_measured"], power["q_measured"] = p.p_kw * W_PER_KW, p.q_kvar * W_PER_KW
        power["p_sigma"], power["q_sigma"] = p.sigma_p_kw * W_PER_KW, p.sigma_q_kvar * W_PER_KW
        if dataset is DatasetType.input:
            volt["measured_object"] = compiled.v_object
            power["measured_object"] = compiled.p_object
            power["measured_terminal_type"] = compiled.p_type
        return {ComponentType.sym_voltage_sensor: volt, ComponentType.sym_power_sensor: power}


def _require(found: npt.NDArray[np.bool_], ids: Any, what: str) -> None:
    if not found.all():
        unknown = sorted({str(i) for i in np.asarray(ids)[~found]})
        raise ValueError(f"measurements name unknown {what} id(s) {unknown[:5]}; check them against the network")
