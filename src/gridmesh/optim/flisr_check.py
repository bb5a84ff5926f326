"""Power-flow check of many switching candidates in one power-grid-model batch.

Every candidate is a set of switch states; power-grid-model's batch update can change the
``from_status``/``to_status`` of lines, transformers and links per scenario, so all candidates of one
restoration problem are solved by a single ``calculate_power_flow`` call on a model built once per
network. Scenario 0 is always the network as it is (the *baseline*): a limit already violated there is
only held against a candidate that makes it worse, so an unrelated old violation elsewhere does not
block every restoration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from power_grid_model import CalculationMethod, ComponentType, DatasetType, PowerGridModel, initialize_array

from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network
from gridmesh.physics.pgm_input import build_input
from gridmesh.units import W_PER_KW

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
_EPS = 1e-9
_OUTPUTS: dict[ComponentType, list[str]] = {
    ComponentType.node: ["u_pu", "energized"],
    ComponentType.line: ["loading"],
    ComponentType.transformer: ["loading"],
}


@dataclass(frozen=True)
class Limits:
    """Limits a restored grid must respect.

    ``v_min_pu``/``v_max_pu`` of None take each bus's own band (``Bus.v_min_pu``/``v_max_pu``);
    ``max_loading`` is the fraction of the line/transformer rating. A baseline violation counts against a
    candidate only where the candidate worsens it by more than ``tolerance`` (pu, or loading fraction).
    """

    v_min_pu: float | None = None
    v_max_pu: float | None = None
    max_loading: float = 1.0
    tolerance: float = 1e-3


@dataclass(frozen=True)
class CheckResult:
    """Power-flow verdict on one candidate: limits met or not, with the extremes of its energised grid."""

    feasible: bool
    max_loading: float
    v_min_pu: float
    v_max_pu: float
    violations: tuple[str, ...] = ()


class SwitchingCheck:
    """A power-flow model of one network, reused to check switching candidates (build once, check often)."""

    def __init__(self, network: Network, *, method: str = "newton_raphson") -> None:
        data, self.index = build_input(network)
        self._model = PowerGridModel(data)
        self._method = CalculationMethod[method]
        self._network = network
        self._data = data
        self._row = {
            ComponentType.line: {x: k for k, x in enumerate(self.index.lines)},
            ComponentType.transformer: {x: k for k, x in enumerate(self.index.transformers)},
            ComponentType.link: {x: k for k, x in enumerate(self.index.links)},
        }
        self._bus_pos = {b: k for k, b in enumerate(self.index.buses)}
        self._ends: dict[tuple[str, str], list[str]] = {}
        for sw in network.switches.values():
            if sw.element_type is not SwitchedElement.BUS:
                self._ends.setdefault((sw.element, sw.bus), []).append(sw.id)

    @property
    def network(self) -> Network:
        return self._network

    def bus_positions(self, buses: Sequence[str]) -> npt.NDArray[np.int64]:
        """Positions of buses in the model's node order."""
        return np.fromiter((self._bus_pos[b] for b in buses), dtype=np.int64, count=len(buses))

    def run(
        self,
        candidates: Sequence[Mapping[str, bool]],
        loads_kw: Mapping[str, float],
        *,
        limits: Limits,
        gens_kw: Mapping[str, float] | None = None,
        dead_buses: Sequence[str] = (),
        network: Network | None = None,
    ) -> list[CheckResult]:
        """Check each candidate (switch id → closed) against ``limits``; the baseline is solved alongside.

        ``loads_kw`` gives the active power of loads (unlisted ones at rated ``p_kw``; reactive power scales
        with it); generators take ``gens_kw`` or zero output, a conservative choice for thermal limits.
        A candidate that energises any of ``dead_buses`` (the faulted zone) is refused. ``network`` is the
        present state (same elements as the model, other switch states); the model's own by default.
        """
        present = network or self._network
        self._model.update(update_data=self._injections(loads_kw, gens_kw))
        out = self._model.calculate_power_flow(
            update_data=self._statuses(candidates, present),
            calculation_method=self._method,
            output_component_types=_OUTPUTS,  # type: ignore[arg-type]
            continue_on_batch_error=True,
        )
        failed: dict[int, str] = {}
        error = self._model.batch_error
        if error is not None:
            failed = {int(s): str(m) for s, m in zip(error.failed_scenarios, error.error_messages, strict=True)}
        return self._verdicts(out, failed, limits, self.bus_positions(dead_buses))

    def _injections(
        self, loads_kw: Mapping[str, float], gens_kw: Mapping[str, float] | None
    ) -> dict[ComponentType, Any]:
        net = self._network
        load = initialize_array(DatasetType.update, ComponentType.sym_load, len(self.index.load_ids))
        load["id"] = self.index.load_ids
        p = np.array(
            [loads_kw.get(x, net.loads[x].p_kw) for x in self.index.loads] + [0.0] * len(self.index.ev_chargers)
        )
        rated = np.array([net.loads[x].p_kw for x in self.index.loads] + [0.0] * len(self.index.ev_chargers))
        q_rated = np.array([net.loads[x].q_kvar for x in self.index.loads] + [0.0] * len(self.index.ev_chargers))
        scale = np.divide(p, rated, out=np.ones_like(p), where=np.abs(rated) > _EPS)
        load["p_specified"] = p * W_PER_KW
        load["q_specified"] = q_rated * scale * W_PER_KW
        gen = initialize_array(DatasetType.update, ComponentType.sym_gen, len(self.index.gen_ids))
        gen["id"] = self.index.gen_ids
        given = gens_kw or {}
        gen_p = [given.get(x, 0.0) for x in self.index.generators] + [0.0] * len(self.index.batteries)
        gen["p_specified"] = np.array(gen_p) * W_PER_KW
        gen["q_specified"] = 0.0
        return {ComponentType.sym_load: load, ComponentType.sym_gen: gen}

    def _statuses(self, candidates: Sequence[Mapping[str, bool]], present: Network) -> dict[ComponentType, Any]:
        """Batch update: scenario 0 the present state (the baseline), then one scenario per candidate."""
        built = self._network.switches
        moved = {
            s.id
            for s in present.switches.values()
            if (s.is_closed, s.in_service) != (built[s.id].is_closed, built[s.id].in_service)
        }
        touched: dict[ComponentType, set[str]] = {c: set() for c in self._row}
        for sid in moved.union(*candidates):
            sw = present.switches[sid]
            if sw.element_type is SwitchedElement.BUS:
                touched[ComponentType.link].add(sid)
            else:
                comp = ComponentType.line if sw.element_type is SwitchedElement.LINE else ComponentType.transformer
                touched[comp].add(sw.element)
        steps = len(candidates) + 1
        update: dict[ComponentType, Any] = {}
        for comp, elements in touched.items():
            if not elements:
                continue
            ids = sorted(elements)
            array = initialize_array(DatasetType.update, comp, (steps, len(ids)))
            rows = [self._row[comp][x] for x in ids]
            array["id"] = self._data[comp]["id"][rows][None, :]
            for k, cand in enumerate([{}, *candidates]):
                for j, x in enumerate(ids):
                    array["from_status"][k, j], array["to_status"][k, j] = self._status(comp, x, cand, present)
            update[comp] = array
        # the sources' status in every scenario keeps the update a batch even when no switch moves
        source = initialize_array(DatasetType.update, ComponentType.source, (steps, len(self.index.sources)))
        source["id"] = self._data[ComponentType.source]["id"][None, :]
        source["status"] = [int(present.external_grids[g].in_service) for g in self.index.sources]
        update[ComponentType.source] = source
        return update

    def _status(self, comp: ComponentType, element: str, states: Mapping[str, bool], net: Network) -> tuple[int, int]:
        if comp is ComponentType.link:
            sw = net.switches[element]
            closed = int(states.get(element, sw.is_closed) and sw.in_service)
            return closed, closed
        if comp is ComponentType.line:
            br = net.lines[element]
            ends: tuple[str, str] = (br.from_bus, br.to_bus)
            in_service = br.in_service
        else:
            tr = net.transformers[element]
            ends, in_service = (tr.hv_bus, tr.lv_bus), tr.in_service
        status = []
        for bus in ends:
            switches = (net.switches[s] for s in self._ends.get((element, bus), ()))
            status.append(int(in_service and all(states.get(s.id, s.is_closed) and s.in_service for s in switches)))
        return status[0], status[1]

    def _verdicts(
        self, out: dict[ComponentType, Any], failed: dict[int, str], limits: Limits, dead: npt.NDArray[np.int64]
    ) -> list[CheckResult]:
        buses = [self._network.buses[b] for b in self.index.buses]
        lo = np.array([b.v_min_pu for b in buses]) if limits.v_min_pu is None else np.full(len(buses), limits.v_min_pu)
        hi = np.array([b.v_max_pu for b in buses]) if limits.v_max_pu is None else np.full(len(buses), limits.v_max_pu)
        live: BoolArray = np.nan_to_num(out[ComponentType.node]["energized"]).astype(bool)
        v: FloatArray = np.where(live, out[ComponentType.node]["u_pu"], np.nan)
        tol = limits.tolerance
        low = (v < lo - _EPS) & (~live[:1] | (v < v[:1] - tol))
        high = (v > hi + _EPS) & (~live[:1] | (v > v[:1] + tol))
        loadings = [
            np.asarray(out[c]["loading"], dtype=np.float64) if c in out else np.zeros((v.shape[0], 0))
            for c in (ComponentType.line, ComponentType.transformer)
        ]
        names = (self.index.lines, self.index.transformers)
        results = []
        for k in range(1, v.shape[0]):
            if k in failed:
                results.append(CheckResult(False, np.nan, np.nan, np.nan, (f"power flow failed: {failed[k]}",)))
                continue
            reasons = [f"bus {self.index.buses[i]} at {v[k, i]:.3f} pu below its limit" for i in np.flatnonzero(low[k])]
            reasons += [
                f"bus {self.index.buses[i]} at {v[k, i]:.3f} pu above its limit" for i in np.flatnonzero(high[k])
            ]
            peak = 0.0
            for loading, ids in zip(loadings, names, strict=True):
                if loading.shape[1] == 0:
                    continue
                row, base = loading[k], loading[0]
                over = (row > limits.max_loading + _EPS) & (np.isnan(base) | (row > base + tol))
                reasons += [f"{ids[i]} loaded {100 * row[i]:.0f} %" for i in np.flatnonzero(over)]
                peak = max(peak, float(np.nanmax(np.nan_to_num(row, nan=0.0))))
            if dead.size and live[k, dead].any():
                reasons.append("energises the faulted zone")
            vk = v[k][live[k]]
            results.append(
                CheckResult(
                    feasible=not reasons,
                    max_loading=peak,
                    v_min_pu=float(vk.min()) if vk.size else np.nan,
                    v_max_pu=float(vk.max()) if vk.size else np.nan,
                    violations=tuple(reasons[:10]),
                )
            )
        return results
