"""Translate a gridmesh network into power-grid-model input arrays.

This is the only place that knows power-grid-model's component layout. Every element gets a unique
integer id (power-grid-model needs ids unique across all components); :class:`ModelIndex` keeps the
mapping back to gridmesh ids for results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from power_grid_model import ComponentType, DatasetType, LoadGenType, WindingType, initialize_array

from gridmesh.model.graph import branch_end_open
from gridmesh.model.kinds import SwitchedElement, TapSide
from gridmesh.model.network import Network
from gridmesh.units import KW_PER_MW, V_PER_KV, W_PER_KW

IdArray = npt.NDArray[np.int32]
IDEAL_SOURCE_SK_VA = 1e15  # an ideal slack for power flow, as pandapower's ext_grid
OMEGA = 2 * math.pi * 50.0


@dataclass(frozen=True)
class ModelIndex:
    """gridmesh ids in power-grid-model order, and the integer ids given to them."""

    buses: tuple[str, ...]
    lines: tuple[str, ...]
    transformers: tuple[str, ...]
    links: tuple[str, ...]  # bus-bus switches
    sources: tuple[str, ...]
    loads: tuple[str, ...]
    generators: tuple[str, ...]
    batteries: tuple[str, ...]
    ev_chargers: tuple[str, ...]
    load_ids: IdArray  # sym_load ids: loads then EV chargers
    gen_ids: IdArray  # sym_gen ids: generators then batteries


def _ids(start: int, count: int) -> IdArray:
    return np.arange(start, start + count, dtype=np.int32)


def _array(component: ComponentType, size: int) -> Any:
    return initialize_array(DatasetType.input, component, size)


def _appliances(
    component: ComponentType, first_id: int, node_of: dict[str, int], rated: list[Any], idle: list[Any]
) -> Any:
    """Constant-power injections: ``rated`` elements at their p_kw/q_kvar, then ``idle`` ones at zero."""
    elements = rated + idle
    array = _array(component, len(elements))
    array["id"] = _ids(first_id, len(elements))
    array["node"] = [node_of[e.bus] for e in elements]
    array["status"] = [int(e.in_service) for e in elements]
    array["type"] = LoadGenType.const_power
    array["p_specified"] = [e.p_kw * W_PER_KW for e in rated] + [0.0] * len(idle)
    array["q_specified"] = [e.q_kvar * W_PER_KW for e in rated] + [0.0] * len(idle)
    return array


def build_input(network: Network, *, ideal_sources: bool = True) -> tuple[dict[ComponentType, Any], ModelIndex]:
    """power-grid-model input for the network in its present switch states.

    ``ideal_sources`` replaces the external grids' short-circuit power by an ideal slack (power flow, as
    pandapower does); short-circuit studies pass False to keep the upstream impedance.
    """
    net = network
    bus_ids = tuple(net.buses)
    node_of = {b: i for i, b in enumerate(bus_ids)}
    nb = len(bus_ids)
    node = _array(ComponentType.node, nb)
    node["id"] = _ids(0, nb)
    node["u_rated"] = [net.buses[b].vn_kv * V_PER_KV for b in bus_ids]
    next_id = nb

    opened = branch_end_open(net)
    lines = tuple(net.lines)
    line = _array(ComponentType.line, len(lines))
    line["id"] = _ids(next_id, len(lines))
    next_id += len(lines)
    if lines:
        rows = [net.lines[i] for i in lines]
        length = np.array([r.length_km for r in rows])
        par = np.array([r.parallel for r in rows], dtype=float)
        r1 = np.array([r.r_ohm_per_km for r in rows]) * length / par
        x1 = np.array([r.x_ohm_per_km for r in rows]) * length / par
        c1 = np.array([r.c_nf_per_km for r in rows]) * 1e-9 * length * par
        g1 = np.array([r.g_us_per_km for r in rows]) * 1e-6 * length * par
        line["from_node"] = [node_of[r.from_bus] for r in rows]
        line["to_node"] = [node_of[r.to_bus] for r in rows]
        line["from_status"] = [int(r.in_service and (r.id, r.from_bus) not in opened) for r in rows]
        line["to_status"] = [int(r.in_service and (r.id, r.to_bus) not in opened) for r in rows]
        line["r1"], line["x1"], line["c1"] = r1, x1, c1
        line["tan1"] = np.divide(g1, OMEGA * c1, out=np.zeros_like(g1), where=c1 > 0)
        # Zero sequence: use given values, else the usual cable rules of thumb (only short circuit needs them).
        line["r0"] = [(r.r0_ohm_per_km if r.r0_ohm_per_km is not None else 4 * r.r_ohm_per_km) for r in rows]
        line["x0"] = [(r.x0_ohm_per_km if r.x0_ohm_per_km is not None else 3 * r.x_ohm_per_km) for r in rows]
        line["c0"] = [(r.c0_nf_per_km if r.c0_nf_per_km is not None else 0.6 * r.c_nf_per_km) for r in rows]
        line["r0"] *= length / par
        line["x0"] *= length / par
        line["c0"] *= 1e-9 * length * par
        line["tan0"] = 0.0
        line["i_n"] = [r.max_i_a * r.parallel for r in rows]

    trafos = tuple(net.transformers)
    trafo = _array(ComponentType.transformer, len(trafos))
    trafo["id"] = _ids(next_id, len(trafos))
    next_id += len(trafos)
    for k, tid in enumerate(trafos):
        t = net.transformers[tid]
        sn = t.sn_kva * W_PER_KW * t.parallel
        clock = round(t.shift_degree / 30.0) % 12
        u1, u2 = t.vn_hv_kv * V_PER_KV, t.vn_lv_kv * V_PER_KV
        trafo[k]["from_node"], trafo[k]["to_node"] = node_of[t.hv_bus], node_of[t.lv_bus]
        trafo[k]["from_status"] = int(t.in_service and (t.id, t.hv_bus) not in opened)
        trafo[k]["to_status"] = int(t.in_service and (t.id, t.lv_bus) not in opened)
        trafo[k]["u1"], trafo[k]["u2"], trafo[k]["sn"] = u1, u2, sn
        trafo[k]["uk"] = t.vk_percent / 100.0
        trafo[k]["pk"] = t.vkr_percent / 100.0 * sn
        trafo[k]["i0"] = max(t.i0_percent / 100.0, t.pfe_kw * W_PER_KW * t.parallel / sn)
        trafo[k]["p0"] = t.pfe_kw * W_PER_KW * t.parallel
        # Odd clock numbers need a delta winding on one side (Dyn5 …); even ones are star-star.
        trafo[k]["winding_from"] = WindingType.delta if clock % 2 else WindingType.wye_n
        trafo[k]["winding_to"] = WindingType.wye_n
        trafo[k]["clock"] = clock
        trafo[k]["tap_side"] = 0 if t.tap_side is TapSide.HV else 1
        trafo[k]["tap_pos"], trafo[k]["tap_nom"] = t.tap_pos, t.tap_neutral
        trafo[k]["tap_min"], trafo[k]["tap_max"] = t.tap_min, t.tap_max
        trafo[k]["tap_size"] = t.tap_step_percent / 100.0 * (u1 if t.tap_side is TapSide.HV else u2)

    links = tuple(s.id for s in net.switches.values() if s.element_type is SwitchedElement.BUS)
    link = _array(ComponentType.link, len(links))
    link["id"] = _ids(next_id, len(links))
    next_id += len(links)
    for k, sid in enumerate(links):
        s = net.switches[sid]
        link[k]["from_node"], link[k]["to_node"] = node_of[s.bus], node_of[s.element]
        status = int(s.is_closed and s.in_service)
        link[k]["from_status"] = link[k]["to_status"] = status

    sources = tuple(net.external_grids)
    source = _array(ComponentType.source, len(sources))
    source["id"] = _ids(next_id, len(sources))
    next_id += len(sources)
    for k, gid in enumerate(sources):
        g = net.external_grids[gid]
        source[k]["node"] = node_of[g.bus]
        source[k]["status"] = int(g.in_service)
        source[k]["u_ref"], source[k]["u_ref_angle"] = g.vm_pu, math.radians(g.va_degree)
        source[k]["sk"] = IDEAL_SOURCE_SK_VA if ideal_sources else g.sk_mva * KW_PER_MW * W_PER_KW
        source[k]["rx_ratio"], source[k]["z01_ratio"] = g.rx_ratio, 1.0

    # Loads carry their rated powers; EV chargers and batteries start at zero (the study sets them).
    loads, evs = tuple(net.loads), tuple(net.ev_chargers)
    sym_load = _appliances(ComponentType.sym_load, next_id, node_of, [*net.loads.values()], [*net.ev_chargers.values()])
    next_id += len(sym_load)
    gens, bats = tuple(net.generators), tuple(net.batteries)
    sym_gen = _appliances(
        ComponentType.sym_gen, next_id, node_of, [*net.generators.values()], [*net.batteries.values()]
    )

    data = {
        ComponentType.node: node,
        ComponentType.line: line,
        ComponentType.transformer: trafo,
        ComponentType.link: link,
        ComponentType.source: source,
        ComponentType.sym_load: sym_load,
        ComponentType.sym_gen: sym_gen,
    }
    index = ModelIndex(
        buses=bus_ids,
        lines=lines,
        transformers=trafos,
        links=links,
        sources=sources,
        loads=loads,
        generators=gens,
        batteries=bats,
        ev_chargers=evs,
        load_ids=sym_load["id"].copy(),
        gen_ids=sym_gen["id"].copy(),
    )
    return data, index


def short_circuit_input(
    network: Network, *, voltage_factor: Callable[[float], float], transformer_correction: bool
) -> tuple[dict[ComponentType, Any], ModelIndex]:
    """Input for an IEC 60909 short-circuit study (equivalent voltage source at the fault).

    The standard neglects line capacitances, transformer magnetising branches and non-motor loads, so
    they are removed. It gives an external grid the impedance Z_Q = c·U²/S''_kQ, while power-grid-model
    takes U²/sk: sk is divided by ``voltage_factor(vn_kv)`` of the grid's bus. ``transformer_correction``
    multiplies every transformer impedance by K_T = 0.95·c_max / (1 + 0.6·x_T) (IEC 60909-0:2016 §6.3.3,
    maximum currents; c_max of the LV side, ``voltage_factor`` being c_max then), which power-grid-model
    does not apply.
    """
    data, index = build_input(network, ideal_sources=False)
    line = data[ComponentType.line]
    for attr in ("c1", "c0", "tan1", "tan0"):
        line[attr] = 0.0
    source = data[ComponentType.source]
    source["sk"] /= [voltage_factor(network.buses[g.bus].vn_kv) for g in network.external_grids.values()]
    trafo = data[ComponentType.transformer]
    trafo["i0"] = trafo["p0"] = 0.0
    if transformer_correction and len(trafo):
        ur = trafo["pk"] / trafo["sn"]
        xt = np.sqrt(np.maximum(trafo["uk"] ** 2 - ur**2, 0.0))
        c_max = [voltage_factor(network.buses[t.lv_bus].vn_kv) for t in network.transformers.values()]
        kt = 0.95 * np.array(c_max) / (1.0 + 0.6 * xt)
        trafo["uk"] *= kt
        trafo["pk"] *= kt  # scales the resistance by the same factor as the reactance
    del data[ComponentType.sym_load], data[ComponentType.sym_gen]
    return data, index


@dataclass(frozen=True)
class LineCuts:
    """Where :func:`cut_lines` put its nodes: ``nodes[k]`` is the node id of cut k; ``tails`` maps a cut
    line's row to the row of the segment that now ends at its to-bus (the line's own row keeps its from-end)."""

    nodes: IdArray
    tails: dict[int, int]


def cut_lines(
    data: dict[ComponentType, Any], cuts: list[tuple[int, float]], first_id: int
) -> tuple[dict[ComponentType, Any], LineCuts]:
    """A copy of ``data`` with a node inserted in line row ``row`` at ``fraction`` of its length from the
    from-bus, for each ``(row, fraction)`` (fractions strictly inside (0, 1)); new ids start at ``first_id``.

    Splitting the series impedance is exact for a short-circuit input (no shunt branch to share out).
    Several cuts on one line make a chain of segments; equal cuts share one node.
    """
    line, node = data[ComponentType.line], data[ComponentType.node]
    points = sorted(set(cuts))
    node_id = {point: first_id + k for k, point in enumerate(points)}
    new_nodes = _array(ComponentType.node, len(points))
    new_nodes["id"] = list(node_id.values())
    new_nodes["u_rated"] = [node["u_rated"][line["from_node"][row]] for row, _ in points]  # node id == row
    by_row: dict[int, list[float]] = {}
    for row, fraction in points:
        by_row.setdefault(row, []).append(fraction)
    head, tail = line.copy(), _array(ComponentType.line, len(points))
    tails: dict[int, int] = {}
    k, next_id = 0, first_id + len(points)
    for row, fractions in by_row.items():
        chain = [int(line["from_node"][row]), *(node_id[(row, f)] for f in fractions), int(line["to_node"][row])]
        bounds = [0.0, *fractions, 1.0]
        for attr in ("r1", "x1", "r0", "x0"):
            head[attr][row] = line[attr][row] * bounds[1]
        head["to_node"][row], head["to_status"][row] = chain[1], 1
        for s in range(1, len(chain) - 1):
            tail[k] = line[row]
            tail["id"][k], next_id = next_id, next_id + 1
            tail["from_node"][k], tail["from_status"][k] = chain[s], 1
            tail["to_node"][k] = chain[s + 1]
            tail["to_status"][k] = line["to_status"][row] if s == len(chain) - 2 else 1
            for attr in ("r1", "x1", "r0", "x0"):
                tail[attr][k] = line[attr][row] * (bounds[s + 1] - bounds[s])
            k += 1
        tails[row] = len(line) + k - 1
    out = dict(data)
    out[ComponentType.node] = np.concatenate([node, new_nodes])
    out[ComponentType.line] = np.concatenate([head, tail])
    return out, LineCuts(nodes=np.array([node_id[c] for c in cuts], dtype=np.int32), tails=tails)
