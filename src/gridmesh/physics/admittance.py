"""Bus admittance and the linearised measurement model, for bad-data identification.

power-grid-model estimates the state but does not expose its gain matrix, and the normalised residuals
``r_N = r / sqrt(Ω_ii)`` need one (``Ω = R − H G⁻¹ Hᵀ``). This module rebuilds the network's admittances
from the same power-grid-model input arrays (per unit on 1 MVA) and evaluates the Jacobian of voltage
magnitudes, bus injections and branch flows at the estimated state. Closed links (zero-impedance bus
couplers) merge their two nodes; branches with an open end are left out (their charging current is
negligible for the sensitivities Ω needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from power_grid_model import ComponentType
from scipy.sparse.csgraph import connected_components

S_BASE_VA = 1e6
OMEGA = 2 * math.pi * 50.0

IntArray = npt.NDArray[np.int64]
ComplexArray = npt.NDArray[np.complex128]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GridAdmittance:
    """Per-unit admittances over merged nodes; branches are lines then transformers (input order)."""

    node_of: IntArray  # power-grid-model node position → merged node
    nodes: int
    f: IntArray
    t: IntArray
    closed: npt.NDArray[np.bool_]
    yff: ComplexArray
    yft: ComplexArray
    ytf: ComplexArray
    ytt: ComplexArray
    ybus: sp.csr_matrix

    def branch_matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(Yf, Yt): rows give the current into each branch at its from / to end from the node voltages."""
        n, rows = self.nodes, np.arange(len(self.f))
        yf = sp.csr_matrix(
            (np.r_[self.yff, self.yft], (np.r_[rows, rows], np.r_[self.f, self.t])), shape=(len(rows), n)
        )
        yt = sp.csr_matrix(
            (np.r_[self.ytf, self.ytt], (np.r_[rows, rows], np.r_[self.f, self.t])), shape=(len(rows), n)
        )
        return yf, yt


def _merged_nodes(data: dict[ComponentType, Any]) -> tuple[IntArray, int]:
    nb = len(data[ComponentType.node])
    link = data[ComponentType.link]
    closed = (link["from_status"] == 1) & (link["to_status"] == 1)
    pos = _positions(data[ComponentType.node]["id"])
    a, b = pos(link["from_node"][closed]), pos(link["to_node"][closed])
    graph = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(nb, nb))
    count, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64), int(count)


def _positions(ids: npt.NDArray[Any]) -> Any:
    lookup = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    return lambda values: lookup[np.asarray(values, dtype=np.int64)]


def _lines(data: dict[ComponentType, Any], u_rated: FloatArray, pos: Any) -> tuple[ComplexArray, ...]:
    line = data[ComponentType.line]
    f = pos(line["from_node"])
    z_base = u_rated[f] ** 2 / S_BASE_VA
    y_series = z_base / (line["r1"] + 1j * line["x1"])
    y_shunt = OMEGA * line["c1"] * (line["tan1"] + 1j) * z_base
    return y_series + y_shunt / 2, -y_series, -y_series, y_series + y_shunt / 2


def _transformers(data: dict[ComponentType, Any], u_rated: FloatArray, pos: Any) -> tuple[ComplexArray, ...]:
    """π model with the off-nominal ratio on the HV side and the magnetising branch split over both ends."""
    tr = data[ComponentType.transformer]
    tap = (tr["tap_pos"].astype(float) - tr["tap_nom"].astype(float)) * tr["tap_size"]
    hv_tap = tr["tap_side"] == 0
    u1 = tr["u1"] + np.where(hv_tap, tap, 0.0)
    u2 = tr["u2"] + np.where(hv_tap, 0.0, tap)
    sn = tr["sn"]
    z_abs = tr["uk"] * u2**2 / sn
    r = tr["pk"] * u2**2 / sn**2
    x = np.sqrt(np.maximum(z_abs**2 - r**2, 0.0))
    y_abs = tr["i0"] * sn / u2**2
    g = tr["p0"] / u2**2
    b = np.sqrt(np.maximum(y_abs**2 - g**2, 0.0))
    z_base = u_rated[pos(tr["to_node"])] ** 2 / S_BASE_VA
    y_series = z_base / (r + 1j * x)
    y_mag = (g - 1j * b) * z_base
    ratio = (u1 / u2) / (u_rated[pos(tr["from_node"])] / u_rated[pos(tr["to_node"])])
    n = ratio * np.exp(1j * tr["clock"].astype(float) * math.pi / 6)
    return (y_series + y_mag / 2) / ratio**2, -y_series / np.conj(n), -y_series / n, y_series + y_mag / 2


def grid_admittance(data: dict[ComponentType, Any]) -> GridAdmittance:
    """Admittances of the network described by power-grid-model input ``data``."""
    node_of, nodes = _merged_nodes(data)
    u_rated = np.asarray(data[ComponentType.node]["u_rated"], dtype=np.float64)
    pos = _positions(data[ComponentType.node]["id"])
    parts = [
        (_lines(data, u_rated, pos), data[ComponentType.line]),
        (_transformers(data, u_rated, pos), data[ComponentType.transformer]),
    ]
    yff, yft, ytf, ytt = (np.concatenate([p[0][k] for p in parts]).astype(np.complex128) for k in range(4))
    f = node_of[pos(np.concatenate([arr["from_node"] for _, arr in parts]))]
    t = node_of[pos(np.concatenate([arr["to_node"] for _, arr in parts]))]
    closed = np.concatenate([(arr["from_status"] == 1) & (arr["to_status"] == 1) for _, arr in parts])
    on = closed.astype(float)
    ybus = sp.csr_matrix(
        (np.r_[yff * on, yft * on, ytf * on, ytt * on], (np.r_[f, f, t, t], np.r_[f, t, f, t])), shape=(nodes, nodes)
    )
    return GridAdmittance(node_of, nodes, f, t, closed, yff, yft, ytf, ytt, ybus)


@dataclass(frozen=True)
class Jacobians:
    """Derivatives w.r.t. (angle, magnitude) of every node: injections S, branch flows Sf and St."""

    s_angle: sp.csr_matrix
    s_mag: sp.csr_matrix
    sf_angle: sp.csr_matrix
    sf_mag: sp.csr_matrix
    st_angle: sp.csr_matrix
    st_mag: sp.csr_matrix


def _flow_derivatives(
    yb: sp.csr_matrix, ends: IntArray, v: ComplexArray, unit: ComplexArray
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """d(V_end · conj(Yb V)) / d(angle, magnitude) for branch-end current rows ``yb``."""
    n = len(v)
    current = yb @ v
    rows = np.arange(len(ends))
    c_v = sp.csr_matrix((v[ends], (rows, ends)), shape=(len(ends), n))
    c_unit = sp.csr_matrix((unit[ends], (rows, ends)), shape=(len(ends), n))
    conj_i = sp.diags(np.conj(current))
    v_end = sp.diags(v[ends])
    d_angle = 1j * (conj_i @ c_v - v_end @ (yb @ sp.diags(v)).conj())
    d_mag = conj_i @ c_unit + v_end @ (yb @ sp.diags(unit)).conj()
    return sp.csr_matrix(d_angle), sp.csr_matrix(d_mag)


def jacobians(adm: GridAdmittance, v: ComplexArray) -> Jacobians:
    """All measurement derivatives at the complex node voltages ``v`` (per unit, merged nodes)."""
    unit = np.exp(1j * np.angle(v))
    current = adm.ybus @ v
    dv, du = sp.diags(v), sp.diags(unit)
    s_angle = 1j * dv @ (sp.diags(current) - adm.ybus @ dv).conj()
    s_mag = dv @ (adm.ybus @ du).conj() + sp.diags(np.conj(current)) @ du
    yf, yt = adm.branch_matrices()
    on = sp.diags(adm.closed.astype(float))
    sf_angle, sf_mag = _flow_derivatives(on @ yf, adm.f, v, unit)
    st_angle, st_mag = _flow_derivatives(on @ yt, adm.t, v, unit)
    return Jacobians(sp.csr_matrix(s_angle), sp.csr_matrix(s_mag), sf_angle, sf_mag, st_angle, st_mag)


def branch_flows(adm: GridAdmittance, v: ComplexArray) -> tuple[ComplexArray, ComplexArray]:
    """Complex power into every branch at its from and to end (per unit); zero for open branches."""
    on = adm.closed.astype(float)
    i_f = (adm.yff * v[adm.f] + adm.yft * v[adm.t]) * on
    i_t = (adm.ytf * v[adm.f] + adm.ytt * v[adm.t]) * on
    return v[adm.f] * np.conj(i_f), v[adm.t] * np.conj(i_t)
