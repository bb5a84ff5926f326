"""ADMM against the centralised QP of the same case, solved in the same test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gridmesh.optim.admm import AdmmCoordinator, AdmmSettings, solve_admm
from gridmesh.optim.coordination_case import CoordinationCase, plan_cost_eur, solve_centralised, synthetic_case

EXACT = AdmmSettings(eps_abs=1e-4, eps_rel=1e-5, max_iterations=2000)


@pytest.fixture(scope="module")
def case() -> CoordinationCase:
    return synthetic_case(3, seed=0)


def without_voltage_limits(case: CoordinationCase) -> CoordinationCase:
    return replace(case, feeder=replace(case.feeder, monitored=()))


def without_transformer_limit(case: CoordinationCase) -> CoordinationCase:
    return replace(case, feeder=replace(case.feeder, transformer_limit_kw=1e6))


@pytest.mark.slow
def test_decomposition_reaches_the_centralised_optimum(case: CoordinationCase) -> None:
    central = solve_centralised(case)
    result = solve_admm(case.microgrids, case.feeder, settings=EXACT)
    assert result.converged
    assert result.objective_eur == pytest.approx(central.objective_eur, rel=1e-6)
    scale = np.abs(central.pcc_kw).max()
    np.testing.assert_allclose(result.pcc_kw, central.pcc_kw, atol=1e-3 * scale)
    np.testing.assert_allclose(result.feeder_kw, central.pcc_kw, atol=1e-3 * scale)
    # The plan's cost, evaluated from the bids alone, is the one the rounds reported.
    assert plan_cost_eur(case, result.pcc_kw, result.feeder_kw) == pytest.approx(result.objective_eur, rel=1e-6)


def test_default_tolerances_are_within_half_a_percent(case: CoordinationCase) -> None:
    central = solve_centralised(case)
    result = solve_admm(case.microgrids, case.feeder)
    assert result.converged
    assert abs(result.objective_eur - central.objective_eur) <= 5e-3 * abs(central.objective_eur)
    assert result.iterations < EXACT.max_iterations


@pytest.mark.slow
def test_binding_transformer_limit_raises_the_price(case: CoordinationCase) -> None:
    tight = without_voltage_limits(case)
    loose = without_transformer_limit(tight)
    limit = tight.feeder.transformer_limit_kw
    central = solve_centralised(tight)
    binding = tight.feeder.transformer_kw(central.pcc_kw) >= limit - 1e-3
    assert binding.any(), "the case must make the transformer limit bind"
    assert solve_centralised(loose).objective_eur < central.objective_eur  # the limit costs something

    result = solve_admm(tight.microgrids, tight.feeder, settings=EXACT)
    assert result.converged
    assert tight.feeder.transformer_kw(result.feeder_kw).max() <= limit + 1e-6  # the DSO's copy is feasible
    assert tight.feeder.transformer_kw(result.pcc_kw).max() <= limit + 0.05  # the bids, within the tolerance
    free = solve_admm(loose.microgrids, loose.feeder)
    # Without the limit the price is only the marginal transformer loss; with it, it rises where the limit
    # binds (the same for every microgrid: one shared constraint) and stays that low elsewhere.
    rise = result.price - free.price
    assert rise[:, binding].max() > 0.01
    np.testing.assert_allclose(rise[:, binding], rise[:1, binding].repeat(len(rise), axis=0), atol=1e-4)
    assert np.abs(rise[:, ~binding]).max() < 2e-3
    assert result.objective_eur == pytest.approx(central.objective_eur, rel=1e-6)


def test_voltage_limit_through_sensitivities_is_respected(case: CoordinationCase) -> None:
    unlimited = without_voltage_limits(without_transformer_limit(case))
    free = solve_centralised(unlimited)
    v_free = case.feeder.voltages(free.pcc_kw)
    v_min = case.feeder.v_min.copy()
    worst = int(v_free.min(axis=0).argmin())
    v_min[worst] = v_free[:, worst].min() + 0.002  # the lowest voltage without the limit must rise by 0.002 pu
    limited = replace(unlimited, feeder=replace(unlimited.feeder, monitored=case.feeder.monitored, v_min=v_min))

    central = solve_centralised(limited)
    result = solve_admm(limited.microgrids, limited.feeder, settings=EXACT)
    assert result.converged
    assert limited.feeder.voltages(central.pcc_kw)[:, worst].min() == pytest.approx(v_min[worst], abs=1e-7)  # binds
    assert (limited.feeder.voltages(result.feeder_kw) >= v_min - 1e-7).all()  # the DSO's copy: within the band
    assert (limited.feeder.voltages(result.pcc_kw) >= v_min - 1e-4).all()  # the bids: within the tolerance
    assert limited.feeder.voltages(result.pcc_kw)[:, worst].min() == pytest.approx(v_min[worst], abs=1e-4)
    assert result.objective_eur == pytest.approx(central.objective_eur, rel=1e-6)


def test_residual_balancing_moves_rho_toward_balance(case: CoordinationCase) -> None:
    fixed = solve_admm(case.microgrids, case.feeder, settings=AdmmSettings(rho=1e-6, adaptive=False, max_iterations=5))
    assert {r.rho for r in fixed.history} == {1e-6}
    adaptive = solve_admm(case.microgrids, case.feeder, settings=AdmmSettings(rho=1e-6, max_iterations=5))
    # A tiny penalty leaves the primal residual far above the dual one: ρ doubles every round.
    assert [r.rho for r in adaptive.history] == pytest.approx([1e-6 * 2**k for k in range(5)])


def test_an_agent_without_a_bid_is_pinned_at_zero_and_left_out_of_the_residuals(case: CoordinationCase) -> None:
    coordinator = AdmmCoordinator(case.feeder)
    bids = np.full((3, case.feeder.steps), 50.0)
    bids[1] = np.nan  # never received: must not leak into anything
    residuals = coordinator.update(bids, active=[True, False, True])
    assert (coordinator.z[1] == 0).all() and (coordinator.price[1] == 0).all()
    assert np.isfinite(coordinator.z).all() and np.isfinite(residuals.primal)
    assert residuals.primal == pytest.approx(float(np.linalg.norm(bids[[0, 2]] - coordinator.z[[0, 2]])))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="rho > 0"):
        AdmmSettings(rho=0.0)
    with pytest.raises(ValueError, match="max_iterations"):
        AdmmSettings(max_iterations=0)
