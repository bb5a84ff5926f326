"""Bad-data statistics checked against their definitions: E[J] = dof, E[r_N²] = 1, chi-square quantiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandapower as pp
import pytest

from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.physics.admittance import branch_flows, grid_admittance
from gridmesh.physics.bad_data import chi_square_threshold
from gridmesh.physics.estimation import StateEstimator
from gridmesh.physics.measurement_set import catalogue_measurements
from gridmesh.physics.pgm_input import build_input
from gridmesh.physics.powerflow import PowerFlow


def test_chi_square_threshold_matches_tables() -> None:
    # Statistical tables: chi-square 99 % quantile with 10 dof is 23.209, 95 % with 1 dof is 3.841.
    assert chi_square_threshold(10, 0.99) == pytest.approx(23.209, abs=1e-3)
    assert chi_square_threshold(1, 0.95) == pytest.approx(3.841, abs=1e-3)
    assert chi_square_threshold(0, 0.99) == float("inf")


def test_admittance_model_reproduces_power_flow(simbench_net: Callable[[str], pp.pandapowerNet]) -> None:
    network = from_pandapower(simbench_net("1-MV-rural--0-sw"))
    data, _ = build_input(network)
    flow = PowerFlow(network)
    truth = flow.run(flow.base_injections()).raise_on_failure()
    adm = grid_admittance(data)
    v = np.zeros(adm.nodes, complex)
    v[adm.node_of] = truth.v_pu[0] * np.exp(1j * np.radians(truth.angle_deg[0]))
    s_from, s_to = branch_flows(adm, v)
    nl = truth.line_p_from_kw.shape[1]
    closed = adm.closed
    expected_p = np.r_[truth.line_p_from_kw[0], truth.trafo_p_from_kw[0]]
    expected_q = np.r_[truth.line_q_from_kvar[0], truth.trafo_q_from_kvar[0]]
    np.testing.assert_allclose((s_from.real * 1e3)[closed], expected_p[closed], atol=0.5)
    np.testing.assert_allclose((s_from.imag * 1e3)[closed], expected_q[closed], atol=0.5)
    np.testing.assert_allclose((s_to.real * 1e3)[nl:][closed[nl:]], truth.trafo_p_to_kw[0][closed[nl:]], atol=0.5)


def test_objective_and_normalised_residuals_follow_their_distributions(
    simbench_net: Callable[[str], pp.pandapowerNet],
) -> None:
    """Without gross errors E[J] = dof and every r_N is a standard normal (so Ω is the residual covariance)."""
    network = from_pandapower(simbench_net("1-LV-rural1--0-sw"))
    flow = PowerFlow(network)
    injections = flow.base_injections()
    truth = flow.run(injections)
    # confidence ~0 forces the identification step on every draw, so every r_N is evaluated.
    estimator = StateEstimator(network, confidence=1e-12, candidates=1000, lnr_threshold=1e9)
    rng = np.random.default_rng(2024)
    objectives, squares = [], []
    draws = 150
    for _ in range(draws):
        est = estimator.estimate(catalogue_measurements(network, truth, injections, rng=rng))
        objectives.append(est.objective)
        squares.append(np.r_[est.v_normalised, est.p_normalised, est.q_normalised] ** 2)
    dof = est.dof
    assert abs(np.mean(objectives) - dof) < 4 * np.sqrt(2 * dof / draws)
    per_row = np.nanmean(np.array(squares), axis=0)
    evaluated = per_row[np.isfinite(per_row)]
    assert len(evaluated) > 30
    # Each mean of 150 squared standard normals is 1 ± 0.12 (1 sd); the average over rows much tighter.
    assert np.all(np.abs(evaluated - 1.0) < 0.5)
    assert abs(evaluated.mean() - 1.0) < 0.08
