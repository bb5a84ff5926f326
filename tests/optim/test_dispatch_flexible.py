"""Flexible loads in the dispatch LP, against cases solved by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridmesh.optim.dispatch import DispatchProblem, fallback_plan, solve_dispatch
from gridmesh.physics.sensitivity import Sensitivity

EXACT = 1e-6


def no_battery() -> dict[str, Any]:
    empty = np.zeros(0)
    return {k: empty for k in ("e_kwh", "p_max_kw", "eta_charge", "eta_discharge", "soc_min", "soc_max", "soc0")}


# Load 60, 100, 140, 80 kW for four hours; flat 0.2 €/kWh; demand charge 10 €/kW. One flexible load may defer
# up to 30 kW per step, catch up at most 40 kW, owe at most 50 kWh, 0.01 €/kWh of discomfort, and must be
# caught up by the end. Peak P needs a deferral of 140 − P ≤ 30 at t2, so P ≥ 110; the 30 kWh owed is caught
# up at t3 where the room is 110 − 80 = 30 kW: exactly tight. Energy bought is 380 kWh whatever the shift.
#   objective = 0.2 × 380 + 10 × 110 + 0.01 × 30 = 76 + 1100 + 0.3 = 1176.3 €
def flexible_problem(**overrides: Any) -> DispatchProblem:
    fields: dict[str, Any] = {
        "dt_h": 1.0,
        **no_battery(),
        "net_load_kw": np.array([60.0, 100, 140, 80]),
        "import_price": np.full(4, 0.2),
        "export_price": np.zeros(4),
        "demand_charge_eur_per_kw": 10.0,
        "flex_defer_max_kw": np.full((4, 1), 30.0),
        "flex_catch_up_kw": np.array([40.0]),
        "flex_backlog_max_kwh": np.array([50.0]),
        "flex_penalty_eur_per_kwh": 0.01,
    }
    fields.update(overrides)
    return DispatchProblem(**fields)


def test_deferral_shaves_the_peak_and_is_caught_up_by_the_end() -> None:
    plan = solve_dispatch(flexible_problem())
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.flex_kw[:, 0], [0, 0, 30, -30], atol=EXACT)
    np.testing.assert_allclose(plan.grid_import_kw, [60, 100, 110, 110], atol=EXACT)
    assert plan.breakdown["flexibility"] == pytest.approx(0.3, abs=EXACT)
    assert plan.objective_eur == pytest.approx(1176.3, abs=EXACT)
    assert plan.flex_kw.sum() == pytest.approx(0.0, abs=EXACT)  # energy neutral


def test_backlog_cap_limits_the_deferral() -> None:
    # At most 10 kWh may be owed: the t2 deferral is 10 kW and the peak 130 kW.
    plan = solve_dispatch(flexible_problem(flex_backlog_max_kwh=np.array([10.0])))
    np.testing.assert_allclose(plan.flex_kw[:, 0], [0, 0, 10, -10], atol=EXACT)
    assert plan.peak_kw == pytest.approx(130.0, abs=EXACT)


def test_energy_owed_at_the_start_is_caught_up_where_it_is_cheapest() -> None:
    # 20 kWh owed at the start, no demand charge, cheap last hour: catch-up goes there. Deferring more to
    # that hour would save 0.2 €/kWh but costs 0.25 €/kWh of discomfort, so it does not pay.
    p = flexible_problem(
        demand_charge_eur_per_kw=0.0,
        flex_penalty_eur_per_kwh=0.25,
        import_price=np.array([0.3, 0.3, 0.3, 0.1]),
        flex_backlog0_kwh=np.array([20.0]),
    )
    plan = solve_dispatch(p)
    np.testing.assert_allclose(plan.flex_kw[:, 0], [0, 0, 0, -20], atol=EXACT)
    fallback = fallback_plan(p)  # catch up at once, 20 kW in the first hour
    np.testing.assert_allclose(fallback.flex_kw[:, 0], [-20, 0, 0, 0], atol=EXACT)
    assert plan.objective_eur < fallback.objective_eur


def test_flexible_load_eases_a_voltage_limit() -> None:
    # One monitored voltage at 0.94 pu in t2 with a floor of 0.95; deferring 1 kW raises it by 0.001 pu.
    sens = Sensitivity(
        base=np.array([[1.0], [0.99], [0.94], [0.97]]),
        d_dp=np.array([[0.001]]),
        lower=np.array([0.95]),
        upper=np.array([1.05]),
        names=("v bus",),
    )
    plan = solve_dispatch(flexible_problem(demand_charge_eur_per_kw=0.0, sensitivity=sens))
    assert plan.status == "optimal"
    assert plan.flex_kw[2, 0] == pytest.approx(10.0, abs=EXACT)
    assert plan.monitored is not None and plan.monitored[2, 0] == pytest.approx(0.95, abs=EXACT)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("flex_defer_max_kw", np.full((3, 1), 30.0), "flex_defer_max_kw must have shape (4, 1)"),
        ("flex_backlog0_kwh", np.array([60.0]), "flex_backlog0_kwh must not exceed flex_backlog_max_kwh"),
        ("site_of_flex", np.array([2]), "site_of_flex must be site indices"),
        ("flex_catch_up_kw", np.array([-1.0]), "flex_catch_up_kw must be non-negative"),
    ],
)
def test_malformed_flexible_loads_are_named(field: str, value: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        flexible_problem(**{field: value})
