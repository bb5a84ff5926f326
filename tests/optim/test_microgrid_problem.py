"""A microgrid's local QP against hand-computed optima (first-order conditions of small cases)."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.optim.microgrid_problem import MicrogridAgentProblem, MicrogridData, MicrogridError, cost_at
from gridmesh.optim.qp import QuadraticLp

LO, HI = 0.20, 0.30  # €/kWh
DEGRADATION, LOSS, WEAR = 0.01, 0.01, 0.01
TOL = 1e-4  # kW: HiGHS's QP optimality tolerance on gradients of order 0.01 €/kW


def two_step_battery(**overrides: object) -> MicrogridData:
    """5 kW load for two hours, cheap then dear; a lossless 10 kWh battery at half charge."""
    values: dict[str, object] = {
        "id": "mg",
        "dt_h": 1.0,
        "load_kw": [5.0, 5.0],
        "pv_kw": [0.0, 0.0],
        "import_price": [LO, HI],
        "export_price": [0.0, 0.0],
        "pcc_limit_kw": 20.0,
        "battery_e_kwh": 10.0,
        "battery_p_kw": 5.0,
        "eta_charge": 1.0,
        "eta_discharge": 1.0,
        "soc_min": 0.0,
        "soc_max": 1.0,
        "soc0": 0.5,
        "degradation_eur_per_kwh": DEGRADATION,
        "loss_eur_per_kw2h": LOSS,
        "wear_eur_per_kw2h": WEAR,
    }
    values.update(overrides)
    return MicrogridData(**values)  # type: ignore[arg-type]


def test_battery_shifts_energy_to_where_marginal_cost_balances() -> None:
    # Charging c in hour 0 and discharging it in hour 1 (the SOC must end where it started):
    # d/dc [LO(5+c) + HI(5−c) + 2·deg·c + LOSS((5+c)² + (5−c)²) + 2·WEAR·c²] = 0
    # → c = (HI − LO − 2·deg) / (4·(LOSS + WEAR)) = 0.08 / 0.08 = 1 kW.
    answer = MicrogridAgentProblem(two_step_battery()).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    np.testing.assert_allclose(answer.pcc_kw, [6.0, 4.0], atol=TOL)
    np.testing.assert_allclose(answer.battery_kw, [-1.0, 1.0], atol=TOL)
    expected = LO * 6 + HI * 4 + 2 * DEGRADATION + LOSS * (36 + 16) + 2 * WEAR
    assert answer.cost_eur == pytest.approx(expected, rel=1e-6)


def test_admm_terms_enter_the_local_optimum() -> None:
    # With price λ and the proximal term ρ/2‖p − z‖², z = (5, 5):
    # c = (HI − LO + λ1 − λ0 − 2·deg) / (4·(LOSS + WEAR) + 2ρ) = (0.1 − 0.02 − 0.02) / (0.08 + 0.04) = 0.5 kW.
    problem = MicrogridAgentProblem(two_step_battery())
    answer = problem.solve(price=np.array([0.02, 0.0]), target_kw=np.array([5.0, 5.0]), rho=0.02)
    np.testing.assert_allclose(answer.pcc_kw, [5.5, 4.5], atol=TOL)
    # The reported cost is the microgrid's own, without the ADMM terms.
    own = LO * 5.5 + HI * 4.5 + 2 * DEGRADATION * 0.5 + LOSS * (5.5**2 + 4.5**2) + 2 * WEAR * 0.25
    assert answer.cost_eur == pytest.approx(own, rel=1e-6)
    # Re-solving on the same HiGHS instance with the first data gives the first answer again.
    again = problem.solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    np.testing.assert_allclose(again.pcc_kw, [6.0, 4.0], atol=TOL)


def test_pv_is_curtailed_only_when_export_does_not_pay() -> None:
    data = two_step_battery(
        battery_e_kwh=0.0, load_kw=[2.0, 2.0], pv_kw=[5.0, 0.0], export_price=[-0.05, 0.0], loss_eur_per_kw2h=0.0
    )
    answer = MicrogridAgentProblem(data).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    np.testing.assert_allclose(answer.pcc_kw, [0.0, 2.0], atol=1e-6)  # 3 kW curtailed rather than sold at a loss
    paid = two_step_battery(
        battery_e_kwh=0.0, load_kw=[2.0, 2.0], pv_kw=[5.0, 0.0], export_price=[0.05, 0.0], loss_eur_per_kw2h=0.0
    )
    answer = MicrogridAgentProblem(paid).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    np.testing.assert_allclose(answer.pcc_kw, [-3.0, 2.0], atol=1e-6)


def test_shiftable_load_goes_to_the_cheap_hour_within_its_power() -> None:
    data = two_step_battery(battery_e_kwh=0.0, loss_eur_per_kw2h=0.0, flex_energy_kwh=3.0, flex_max_kw=2.0)
    answer = MicrogridAgentProblem(data).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    np.testing.assert_allclose(answer.pcc_kw, [7.0, 6.0], atol=1e-6)  # 2 kW in the cheap hour, the rest after


def test_pcc_limit_caps_the_import() -> None:
    data = two_step_battery(pcc_limit_kw=5.5)
    answer = MicrogridAgentProblem(data).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)
    assert answer.pcc_kw.max() <= 5.5 + 1e-6
    np.testing.assert_allclose(answer.pcc_kw, [5.5, 4.5], atol=TOL)


def test_an_impossible_microgrid_raises_with_its_name() -> None:
    data = two_step_battery(battery_e_kwh=0.0, pcc_limit_kw=4.0)  # 5 kW load, 4 kW connection, nothing else
    with pytest.raises(MicrogridError, match="microgrid mg: local problem infeasible"):
        MicrogridAgentProblem(data).solve(price=np.zeros(2), target_kw=np.zeros(2), rho=0.0)


def test_cost_at_a_bid_is_the_bid_s_own_cost() -> None:
    data = two_step_battery()
    answer = MicrogridAgentProblem(data).solve(price=np.array([0.02, 0.0]), target_kw=np.array([5.0, 5.0]), rho=0.02)
    assert cost_at(data, answer.pcc_kw) == pytest.approx(answer.cost_eur, rel=1e-6)


def test_malformed_data_names_the_field() -> None:
    with pytest.raises(ValueError, match="microgrid mg: pv_kw must have 2 steps like load_kw"):
        two_step_battery(pv_kw=[1.0])
    with pytest.raises(ValueError, match="export_price must not exceed import_price"):
        two_step_battery(export_price=[0.5, 0.5])
    with pytest.raises(ValueError, match="load_kw must be a finite 1-D array"):
        two_step_battery(load_kw=[np.nan, 1.0], pv_kw=[0.0, 0.0])


def test_quadratic_terms_must_keep_the_problem_convex() -> None:
    qp = QuadraticLp()
    x = qp.variables(2)
    with pytest.raises(ValueError, match="non-negative"):
        qp.quadratic(x, [-1.0, 1.0])
