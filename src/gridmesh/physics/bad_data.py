"""Bad-data detection (chi-square test on J) and identification (largest normalised residual).

Appliance measurements are not functions of the state one by one: only their sum at a bus is (the
injection). As power-grid-model does, the sensors at one bus are combined into one injection measurement
(inverse-variance mean per appliance, variances summed over the bus). Every sensor at a bus then shares
the bus's normalised residual, so an error there can be pinned to the bus, and to one appliance only when
it is the bus's only real (non-pseudo) measurement; the others are reported as alternatives.

``Ω_ii = R_ii − h_i G⁻¹ h_iᵀ`` is evaluated only for the ``candidates`` rows with the largest weighted
residuals (``|r|/σ`` is a lower bound of ``r_N``, so the largest ``r_N`` is almost always among them),
with one sparse LU of the gain matrix ``G = Hᵀ R⁻¹ H``: a few tens of milliseconds on 5,000 buses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from scipy.stats import chi2

from gridmesh.physics.admittance import GridAdmittance, Jacobians

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ZERO_INJECTION_SIGMA_PU = 1e-5  # buses without appliances: a virtual measurement of zero, nearly exact


@dataclass(frozen=True)
class SensorLayout:
    """Where each sensor row sits in the network (merged node / branch positions), built once per layout."""

    v_node: IntArray  # merged node of every voltage sensor
    app_rows: IntArray  # power-sensor rows at appliances (incl. external grids)
    app_key: IntArray  # dense appliance number of each of those rows
    app_node: IntArray  # merged node of each appliance
    app_sign: FloatArray  # +1 generator convention, −1 load convention, per appliance
    inj_nodes: IntArray  # merged nodes whose every appliance is measured
    zero_nodes: IntArray  # merged nodes without any appliance
    flow_rows: IntArray  # power-sensor rows at branch ends
    flow_branch: IntArray
    flow_to: BoolArray
    ref_nodes: IntArray  # angle references (the external grids' nodes)


@dataclass(frozen=True)
class Residuals:
    """Per-sensor residuals (measured − estimated) and standard deviations, per unit on 1 MVA."""

    v: FloatArray
    v_sigma: FloatArray
    v_pseudo: BoolArray
    p: FloatArray
    q: FloatArray
    p_sigma: FloatArray
    q_sigma: FloatArray
    power_pseudo: BoolArray


@dataclass(frozen=True)
class Finding:
    """One measurement row whose normalised residual exceeds the threshold."""

    voltage: bool  # a voltage sensor row, else a power sensor row
    row: int
    quantity: str  # "v_pu", "p_kw" or "q_kvar"
    normalised_residual: float
    alternatives: tuple[int, ...]  # power rows indistinguishable from ``row`` (same bus injection)


@dataclass(frozen=True)
class BadDataReport:
    objective: float
    dof: int
    threshold: float
    suspected: bool
    v_normalised: FloatArray  # NaN where not evaluated
    p_normalised: FloatArray
    q_normalised: FloatArray
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class _Rows:
    """The aggregated measurement rows: kind 0 voltage, 1 P flow, 2 Q flow, 3 P inj, 4 Q inj, 5/6 zero P/Q."""

    kind: IntArray
    index: IntArray  # voltage-sensor row, flow position, or position in inj_nodes / zero_nodes
    residual: FloatArray
    sigma: FloatArray
    real: BoolArray  # holds at least one non-pseudo measurement


def _combine(
    layout: SensorLayout, r: FloatArray, sigma: FloatArray, nodes: int
) -> tuple[FloatArray, FloatArray, float, int]:
    """Appliance sensors → bus injection residual and variance; plus the within-appliance scatter and its dof."""
    rows, key = layout.app_rows, layout.app_key
    w = 1.0 / sigma[rows] ** 2
    count = len(layout.app_node)
    weight = np.bincount(key, w, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(key, w * r[rows], count) / weight
    scatter = float(np.nansum(w * (r[rows] - mean[key]) ** 2))
    measured = weight > 0
    var = np.where(measured, 1.0 / np.where(measured, weight, 1.0), 0.0)
    r_bus: FloatArray = np.bincount(layout.app_node, np.nan_to_num(layout.app_sign * mean), nodes).astype(np.float64)
    sigma_bus: FloatArray = np.sqrt(np.bincount(layout.app_node, var, nodes)).astype(np.float64)
    return r_bus[layout.inj_nodes], sigma_bus[layout.inj_nodes], scatter, len(rows) - int(measured.sum())


def _rows(layout: SensorLayout, res: Residuals, nodes: int) -> tuple[_Rows, float, int]:
    f = layout.flow_rows
    p_inj, p_sig, p_scatter, p_extra = _combine(layout, res.p, res.p_sigma, nodes)
    q_inj, q_sig, q_scatter, q_extra = _combine(layout, res.q, res.q_sigma, nodes)
    real_app = np.bincount(layout.app_node[layout.app_key], ~res.power_pseudo[layout.app_rows], nodes) > 0
    nz, ni, nf = len(layout.zero_nodes), len(layout.inj_nodes), len(f)
    kind = np.concatenate(
        [
            np.zeros(len(res.v), np.int64),
            np.full(nf, 1),
            np.full(nf, 2),
            np.full(ni, 3),
            np.full(ni, 4),
            np.full(nz, 5),
            np.full(nz, 6),
        ]
    )
    index = np.concatenate(
        [
            np.arange(len(res.v)),
            np.arange(nf),
            np.arange(nf),
            np.arange(ni),
            np.arange(ni),
            np.arange(nz),
            np.arange(nz),
        ]
    )
    residual = np.concatenate([res.v, res.p[f], res.q[f], p_inj, q_inj, np.zeros(2 * nz)])
    sigma = np.concatenate(
        [res.v_sigma, res.p_sigma[f], res.q_sigma[f], p_sig, q_sig, np.full(2 * nz, ZERO_INJECTION_SIGMA_PU)]
    )
    real = np.concatenate(
        [
            ~res.v_pseudo,
            ~res.power_pseudo[f],
            ~res.power_pseudo[f],
            real_app[layout.inj_nodes],
            real_app[layout.inj_nodes],
            np.zeros(2 * nz, bool),
        ]
    )
    return _Rows(kind, index, residual, sigma, real), p_scatter + q_scatter, p_extra + q_extra


def _jacobian(layout: SensorLayout, jac: Jacobians, rows: _Rows, nodes: int) -> sp.csr_matrix:
    """H over all rows (voltage, flows, injections, zero injections) and (angle, magnitude) of every node."""
    nv = int((rows.kind == 0).sum())
    h_v = sp.hstack(
        [sp.csr_matrix((nv, nodes)), sp.csr_matrix((np.ones(nv), (np.arange(nv), layout.v_node)), shape=(nv, nodes))]
    )
    to = layout.flow_to
    flow_angle = sp.csr_matrix(
        jac.sf_angle[layout.flow_branch].multiply(~to[:, None]) + jac.st_angle[layout.flow_branch].multiply(to[:, None])
    )
    flow_mag = sp.csr_matrix(
        jac.sf_mag[layout.flow_branch].multiply(~to[:, None]) + jac.st_mag[layout.flow_branch].multiply(to[:, None])
    )
    flow = sp.hstack([flow_angle, flow_mag])
    inj = sp.hstack([jac.s_angle[layout.inj_nodes], jac.s_mag[layout.inj_nodes]])
    zero = sp.hstack([jac.s_angle[layout.zero_nodes], jac.s_mag[layout.zero_nodes]])
    return sp.csr_matrix(sp.vstack([h_v, flow.real, flow.imag, inj.real, inj.imag, zero.real, zero.imag]))


def chi_square_threshold(dof: int, confidence: float) -> float:
    """The J above which bad data is suspected at ``confidence`` (inf when there is no redundancy)."""
    return float(chi2.ppf(confidence, dof)) if dof > 0 else float("inf")


def analyse(
    layout: SensorLayout,
    adm: GridAdmittance,
    v: npt.NDArray[np.complex128],
    jac: Jacobians,
    res: Residuals,
    *,
    confidence: float,
    threshold: float,
    candidates: int,
) -> BadDataReport:
    """Chi-square test; when it fails, normalised residuals of the top ``candidates`` rows at the estimate ``v``."""
    nodes = adm.nodes
    rows, scatter, extra_dof = _rows(layout, res, nodes)
    energized = np.isfinite(v) & (np.abs(np.nan_to_num(v)) > 0)
    usable = np.isfinite(rows.residual) & (rows.sigma > 0)
    weighted = np.where(usable, rows.residual / np.where(usable, rows.sigma, 1.0), 0.0)
    objective = float(np.sum(weighted**2) + scatter)
    state_angle = energized.copy()
    state_angle[layout.ref_nodes] = False
    columns = np.concatenate([np.flatnonzero(state_angle), nodes + np.flatnonzero(energized)])
    dof = int(usable.sum()) + extra_dof - len(columns)
    limit = chi_square_threshold(dof, confidence)

    v_norm, p_norm, q_norm = (np.full(len(a), np.nan) for a in (res.v, res.p, res.q))
    if objective <= limit:  # identification follows detection: thousands of rows always hold some r_N > 3
        return BadDataReport(objective, dof, limit, False, v_norm, p_norm, q_norm, ())
    h = sp.csr_matrix(_jacobian(layout, jac, rows, nodes)[:, columns])
    h_all = sp.csr_matrix(h[usable])
    w = 1.0 / rows.sigma[usable] ** 2
    lu = splu((h_all.T @ sp.diags(w) @ h_all).tocsc())
    # One Gauss-Newton step from the engine's state to the WLS optimum: the iterative-linear method fits
    # currents, not powers, so its residuals are not exactly the WLS residuals the r_N theory needs.
    residual = rows.residual.copy()
    residual[usable] -= h_all @ lu.solve(h_all.T @ (w * residual[usable]))
    weighted = np.where(usable, residual / np.where(usable, rows.sigma, 1.0), 0.0)
    objective = float(np.sum(weighted**2) + scatter)
    eligible = rows.real & usable
    ranked = np.argsort(-np.abs(weighted) * eligible)[: max(candidates, 0)]
    ranked = ranked[eligible[ranked]]
    h_c = h[ranked].toarray()
    omega = rows.sigma[ranked] ** 2 - np.einsum("ij,ji->i", h_c, lu.solve(h_c.T)) if len(ranked) else np.zeros(0)
    r_n = np.abs(residual[ranked]) / np.sqrt(np.maximum(omega, 1e-30))
    findings = _assign(layout, rows, res, ranked, r_n, v_norm, p_norm, q_norm, threshold)
    return BadDataReport(objective, dof, limit, True, v_norm, p_norm, q_norm, findings)


_QUANTITY = {0: "v_pu", 1: "p_kw", 2: "q_kvar", 3: "p_kw", 4: "q_kvar"}


def _assign(
    layout: SensorLayout,
    rows: _Rows,
    res: Residuals,
    ranked: IntArray,
    r_n: FloatArray,
    v_norm: FloatArray,
    p_norm: FloatArray,
    q_norm: FloatArray,
    threshold: float,
) -> tuple[Finding, ...]:
    """Write r_N back to the sensor rows; name the measurements above ``threshold``, largest first."""
    findings = []
    row_node = layout.app_node[layout.app_key]
    for position in np.argsort(-r_n):
        row, value = int(ranked[position]), float(r_n[position])
        kind, index = int(rows.kind[row]), int(rows.index[row])
        if kind == 0:
            v_norm[index] = value
            sensors: IntArray = np.array([index])
        elif kind in (1, 2):
            sensors = layout.flow_rows[index : index + 1]
        else:
            sensors = layout.app_rows[row_node == layout.inj_nodes[index]]
        if kind in (1, 3):
            p_norm[sensors] = value
        elif kind in (2, 4):
            q_norm[sensors] = value
        if value <= threshold:
            continue
        if kind == 0:
            findings.append(Finding(True, index, "v_pu", value, ()))
            continue
        r, sigma = (res.p, res.p_sigma) if kind in (1, 3) else (res.q, res.q_sigma)
        real = sensors[~res.power_pseudo[sensors]]
        best = int(real[np.argmax(np.abs(r[real]) / sigma[real])])
        others = tuple(int(s) for s in real if s != best)
        findings.append(Finding(False, best, _QUANTITY[kind], value, others))
    return tuple(findings)
