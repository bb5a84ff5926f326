"""MPC dispatch: cases solved by hand, network limits, infeasible requests, a month, the demo size.

Every plan goes through :func:`solve`, which checks the SOC trajectory of every battery at every step.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from gridmesh.optim import (
    DispatchPlan,
    DispatchProblem,
    dispatch_cost,
    fallback_plan,
    perfect_foresight,
    solve_dispatch,
)
from gridmesh.physics.sensitivity import Sensitivity

EXACT = 1e-6
SOC_TOL = 1e-9


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)


def battery(**overrides: Any) -> dict[str, Any]:
    """One battery, ideal unless told otherwise (100 kWh, 50 kW, η = 1, SOC window [0, 1], half full)."""
    fields: dict[str, Any] = {
        "e_kwh": arr(100),
        "p_max_kw": arr(50),
        "eta_charge": arr(1),
        "eta_discharge": arr(1),
        "soc_min": arr(0),
        "soc_max": arr(1),
        "soc0": arr(0.5),
    }
    fields.update(overrides)
    return fields


def assert_soc_ok(problem: DispatchProblem, plan: DispatchPlan) -> None:
    """SOC within its window at every step (start included), consistent with the powers; powers in limits."""
    soc = plan.soc
    assert soc.shape == (problem.steps + 1, problem.n_batteries)
    np.testing.assert_allclose(soc[0], problem.soc0, atol=SOC_TOL)
    # A battery whose window is empty or does not hold its initial SOC has no feasible trajectory: it idles.
    window = (problem.soc_min <= problem.soc0 + SOC_TOL) & (problem.soc0 <= problem.soc_max + SOC_TOL)
    assert (soc[:, window] >= problem.soc_min[window] - SOC_TOL).all(), "SOC below soc_min"
    assert (soc[:, window] <= problem.soc_max[window] + SOC_TOL).all(), "SOC above soc_max"
    assert plan.status != "optimal" or window.all()
    assert (plan.battery_kw[:, ~window] == 0).all(), "a battery without a feasible SOC window must stay idle"
    step = (problem.eta_charge * plan.charge_kw - plan.discharge_kw / problem.eta_discharge) * problem.dt_h
    np.testing.assert_allclose(np.diff(soc, axis=0), step / problem.e_kwh, atol=SOC_TOL)
    np.testing.assert_allclose(plan.battery_kw, plan.discharge_kw - plan.charge_kw, atol=SOC_TOL)
    assert (plan.charge_kw >= 0).all() and (plan.discharge_kw >= 0).all()
    assert (plan.charge_kw + plan.discharge_kw <= problem.p_max_kw + 1e-6).all()
    assert ((plan.curtail_kw >= 0) & (plan.curtail_kw <= problem.gen_available_kw + 1e-6)).all()
    if plan.status == "optimal" and problem.soc_terminal is not None:
        target = np.nan_to_num(problem.soc_terminal, nan=0.0)
        assert (soc[-1] >= target - 1e-7).all(), "terminal SOC missed"


def solve(problem: DispatchProblem, **options: Any) -> DispatchPlan:
    plan = solve_dispatch(problem, **options)
    assert_soc_ok(problem, plan)
    return plan


def assert_idle_fallback(problem: DispatchProblem, plan: DispatchPlan) -> None:
    assert (plan.battery_kw == 0).all() and (plan.curtail_kw == 0).all()
    np.testing.assert_array_equal(plan.soc, np.repeat(problem.soc0[None, :], problem.steps + 1, axis=0))
    np.testing.assert_array_equal(plan.grid_import_kw, problem.net_load_kw)


# --- (a) two periods: arbitrage with losses, export worth less than import ------------------------------------
#
# Battery 100 kWh, 50 kW, η_c = η_d = 0.9, empty at the start; dt = 1 h; degradation 0.01 €/kWh each way.
# Load 100 kW then 20 kW; import 0.10 then 0.30 €/kWh; export 0.05 €/kWh.
# One kWh charged at t0 costs 0.10 + 0.01 and gives 0.81 kWh at t1. The first 20 kWh discharged at t1
# displace imports worth 0.30 − 0.01 = 0.29 each: 0.81 × 0.29 = 0.235 > 0.11, worth it. Beyond 20 kWh they
# are exported at 0.05 − 0.01 = 0.04: 0.81 × 0.04 = 0.032 < 0.11, not worth it. So the battery charges
# exactly 20 / 0.81 = 24.691358 kWh at t0 and discharges 20 kW at t1, ending empty again.
#   energy      = 0.10 × (100 + 24.691358) + 0.30 × 0 = 12.4691358
#   degradation = 0.01 × (24.691358 + 20)           =  0.4469136
#   objective   = 12.9160494 €   (idle: 0.10 × 100 + 0.30 × 20 = 16 €)


def test_two_period_arbitrage_solved_by_hand() -> None:
    p = DispatchProblem(
        dt_h=1.0,
        **battery(eta_charge=arr(0.9), eta_discharge=arr(0.9), soc0=arr(0.0)),
        degradation_eur_per_kwh=arr(0.01),
        net_load_kw=arr(100, 20),
        import_price=arr(0.10, 0.30),
        export_price=arr(0.05, 0.05),
    )
    plan = solve(p)
    c0 = 20 / 0.81
    assert plan.status == "optimal" and plan.reason == ""
    np.testing.assert_allclose(plan.charge_kw[:, 0], [c0, 0], atol=EXACT)
    np.testing.assert_allclose(plan.discharge_kw[:, 0], [0, 20], atol=EXACT)
    np.testing.assert_allclose(plan.soc[:, 0], [0, 0.9 * c0 / 100, 0], atol=EXACT)
    np.testing.assert_allclose(plan.grid_import_kw, [100 + c0, 0], atol=EXACT)
    assert plan.breakdown["energy"] == pytest.approx(0.10 * (100 + c0), abs=EXACT)
    assert plan.breakdown["degradation"] == pytest.approx(0.01 * (c0 + 20), abs=EXACT)
    assert plan.objective_eur == pytest.approx(0.10 * (100 + c0) + 0.01 * (c0 + 20), abs=EXACT)
    assert plan.objective_eur == pytest.approx(12.91604938, abs=EXACT)
    assert fallback_plan(p).objective_eur == pytest.approx(16.0, abs=EXACT)


# --- (b) four periods: peak shaving under a demand charge ------------------------------------------------------
#
# Battery 100 kWh, 50 kW, η = 1, half full, must end half full; dt = 1 h; load 60, 100, 140, 80 kW;
# flat price 0.2 €/kWh, demand charge 10 €/kW, degradation 0.001 €/kWh.
# With η = 1 and the SOC back where it started, the energy bought is 380 kWh whatever the dispatch, so only
# the peak P matters. Discharge needed above P: (100 − P) + (140 − P); room to recharge below P:
# (P − 60) + (P − 80). Charge = discharge gives 240 − 2P = 2P − 140, P = 95 kW (≥ 90 kW, the most that
# 50 kW can shave off 140). Everything is tight at P = 95: charge 35 kW at t0, discharge 5 and 45 kW,
# charge 15 kW at t3; SOC 0.50 → 0.85 → 0.80 → 0.35 → 0.50; import 95 kW flat.
#   objective = 0.2 × 380 + 10 × 95 + 0.001 × (35 + 5 + 45 + 15) = 76 + 950 + 0.1 = 1026.1 €


def peak_problem(**overrides: Any) -> DispatchProblem:
    fields: dict[str, Any] = {
        "dt_h": 1.0,
        **battery(),
        "soc_terminal": arr(0.5),
        "degradation_eur_per_kwh": arr(0.001),
        "net_load_kw": arr(60, 100, 140, 80),
        "import_price": np.full(4, 0.2),
        "export_price": np.zeros(4),
        "demand_charge_eur_per_kw": 10.0,
    }
    fields.update(overrides)
    return DispatchProblem(**fields)


def test_four_period_peak_shaving_solved_by_hand() -> None:
    p = peak_problem()
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.battery_kw[:, 0], [-35, 5, 45, -15], atol=EXACT)
    np.testing.assert_allclose(plan.charge_kw[:, 0], [35, 0, 0, 15], atol=EXACT)
    np.testing.assert_allclose(plan.soc[:, 0], [0.5, 0.85, 0.80, 0.35, 0.5], atol=EXACT)
    np.testing.assert_allclose(plan.grid_import_kw, [95, 95, 95, 95], atol=EXACT)
    assert plan.peak_kw == pytest.approx(95, abs=EXACT)
    assert plan.breakdown == pytest.approx(
        {
            "energy": 76.0,
            "demand": 950.0,
            "site_demand": 0.0,
            "degradation": 0.1,
            "curtailment": 0.0,
            "flexibility": 0.0,
        },
        abs=EXACT,
    )
    assert plan.objective_eur == pytest.approx(1026.1, abs=EXACT)


def test_peak_already_reached_makes_shaving_worthless() -> None:
    # The billing peak is already 150 kW: shaving 140 kW is worth nothing, degradation makes idling optimal.
    p = peak_problem(peak_so_far_kw=150.0)
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.battery_kw, 0, atol=EXACT)
    assert plan.peak_kw == 150.0
    assert plan.objective_eur == pytest.approx(76 + 1500, abs=EXACT)


# Site peak: one microgrid, PCC import 30 then 10 kW, demand charge 5 €/kW; its battery (20 kWh, 20 kW, half
# full: 10 kWh) discharges all 10 kWh at t0, site peak 20 kW. A second battery outside any site must end
# half full: under a flat price it has nothing to gain and, with degradation, stays idle. Substation load
# 100 kW; price 0.1 €/kWh both ways; degradation 0.001. Objective: 0.1 × (90 + 100) + 5 × 20 + 0.001 × 10
# = 119.01 €.


def test_site_demand_charge_solved_by_hand() -> None:
    p = DispatchProblem(
        dt_h=1.0,
        e_kwh=arr(20, 20),
        p_max_kw=arr(20, 20),
        eta_charge=arr(1, 1),
        eta_discharge=arr(1, 1),
        soc_min=arr(0, 0),
        soc_max=arr(1, 1),
        soc0=arr(0.5, 0.5),
        degradation_eur_per_kwh=arr(0.001, 0.001),
        soc_terminal=arr(np.nan, 0.5),
        net_load_kw=arr(100, 100),
        import_price=arr(0.1, 0.1),
        export_price=arr(0.1, 0.1),
        site_net_load_kw=np.array([[30.0], [10.0]]),
        site_of_battery=np.array([0, -1]),
        site_demand_charge_eur_per_kw=arr(5),
    )
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.battery_kw, [[10, 0], [0, 0]], atol=EXACT)
    np.testing.assert_allclose(plan.site_import_kw[:, 0], [20, 10], atol=EXACT)
    np.testing.assert_allclose(plan.site_peak_kw, [20], atol=EXACT)
    assert plan.breakdown["site_demand"] == pytest.approx(100, abs=EXACT)
    assert plan.objective_eur == pytest.approx(119.01, abs=EXACT)


def test_curtailment_at_negative_export_price_without_batteries() -> None:
    # 50 kW of PV exported at −0.05 €/kWh; curtailing costs 0.02 €/kWh: curtail all of it, pay 1 €.
    no_batteries: dict[str, Any] = {k: np.zeros(0) for k in battery()}
    p = DispatchProblem(
        dt_h=1.0,
        **no_batteries,
        net_load_kw=arr(-50),
        import_price=arr(0.1),
        export_price=arr(-0.05),
        gen_available_kw=np.array([[50.0]]),
        site_of_gen=np.array([-1]),
        curtailment_penalty_eur_per_kwh=0.02,
    )
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.curtail_kw, [[50]], atol=EXACT)
    np.testing.assert_allclose(plan.grid_import_kw, [0], atol=EXACT)
    assert plan.objective_eur == pytest.approx(1.0, abs=EXACT)


def test_export_price_above_import_price_is_bounded_and_costed_truly() -> None:
    # 10 kWh full battery, 10 kW, load 5 kW; export pays 0.2, import costs 0.1. The LP is not unbounded; the
    # battery empties itself (5 kW for the load, 5 kW exported) and the plan is costed at the true tariff.
    p = DispatchProblem(
        dt_h=1.0,
        **battery(e_kwh=arr(10), p_max_kw=arr(10), soc0=arr(1.0)),
        net_load_kw=arr(5),
        import_price=arr(0.1),
        export_price=arr(0.2),
    )
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.battery_kw, [[10]], atol=EXACT)
    assert plan.objective_eur == pytest.approx(-5 * 0.2, abs=EXACT)


# --- (d) network limits ----------------------------------------------------------------------------------------
#
# One battery (60 kWh, full, 50 kW, η = 1) and one generator; one monitored voltage, base 1.00 then 1.03 pu,
# +0.001 pu per kW injected by either; limits [0.95, 1.05]. Export pays 0.05 then 0.30 €/kWh, nothing to
# supply locally. Unconstrained: 50 kW at t1 (the better price) and the remaining 10 kWh at t0 (−15.5 €).
# With the voltage limit, t1 allows (1.05 − 1.03) / 0.001 = 20 kW and t0 takes the other 40 kW:
# objective −(0.05 × 40 + 0.30 × 20) = −8 €.


def voltage_sensitivity_1(base: list[float], *, upper: float = 1.05) -> Sensitivity:
    return Sensitivity(
        base=np.array(base)[:, None],
        d_dp=np.array([[0.001, 0.001]]),
        lower=arr(0.95),
        upper=arr(upper),
        names=("v bus 7",),
    )


def network_problem(**overrides: Any) -> DispatchProblem:
    fields: dict[str, Any] = {
        "dt_h": 1.0,
        **battery(e_kwh=arr(60), soc0=arr(1.0)),
        "net_load_kw": arr(0, 0),
        "import_price": arr(0.1, 0.3),
        "export_price": arr(0.05, 0.3),
        "gen_available_kw": np.zeros((2, 1)),
        "site_of_gen": np.array([-1]),
        "curtailment_penalty_eur_per_kwh": 0.01,
        "sensitivity": voltage_sensitivity_1([1.00, 1.03]),
    }
    fields.update(overrides)
    return DispatchProblem(**fields)


def test_voltage_limit_forbids_full_export() -> None:
    free = solve(network_problem(sensitivity=None))
    np.testing.assert_allclose(free.battery_kw[:, 0], [10, 50], atol=EXACT)
    assert free.objective_eur == pytest.approx(-15.5, abs=EXACT)

    plan = solve(network_problem())
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.battery_kw[:, 0], [40, 20], atol=EXACT)
    assert plan.objective_eur == pytest.approx(-8.0, abs=EXACT)
    assert plan.monitored is not None
    np.testing.assert_allclose(plan.monitored[:, 0], [1.04, 1.05], atol=EXACT)


def test_voltage_limit_enforced_by_curtailment() -> None:
    # Base 1.07 pu, limit 1.05, battery full (cannot charge), 40 kW of PV exported at 0.05 €/kWh, penalty
    # 0.02: curtail exactly (1.07 − 1.05) / 0.001 = 20 kW; objective −0.05 × 20 + 0.02 × 20 = −0.6 €.
    p = network_problem(
        **battery(e_kwh=arr(60), soc0=arr(1.0)),
        net_load_kw=arr(-40),
        import_price=arr(0.1),
        export_price=arr(0.05),
        gen_available_kw=np.array([[40.0]]),
        curtailment_penalty_eur_per_kwh=0.02,
        sensitivity=voltage_sensitivity_1([1.07]),
    )
    plan = solve(p)
    assert plan.status == "optimal"
    np.testing.assert_allclose(plan.curtail_kw, [[20]], atol=EXACT)
    np.testing.assert_allclose(plan.battery_kw, [[0]], atol=EXACT)
    assert plan.objective_eur == pytest.approx(-0.6, abs=EXACT)


# --- (e) infeasible requests: explained, with the idle fallback, never raised ----------------------------------


def test_unreachable_terminal_soc_is_explained() -> None:
    p = DispatchProblem(
        dt_h=1.0,
        **battery(
            e_kwh=arr(100, 100),
            p_max_kw=arr(50, 10),
            eta_charge=arr(0.95, 0.95),
            eta_discharge=arr(0.95, 0.95),
            soc_min=arr(0.1, 0.1),
            soc_max=arr(0.9, 0.9),
            soc0=arr(0.5, 0.1),
        ),
        soc_terminal=arr(np.nan, 0.9),
        net_load_kw=np.full(4, 30.0),
        import_price=np.full(4, 0.2),
        export_price=np.zeros(4),
    )
    plan = solve(p)
    assert plan.status == "infeasible"
    assert plan.reason == (
        "infeasible because the terminal SOC 0.9 of battery 1 cannot be reached: at most 0.48 with 10 kW for 4 steps"
    )
    assert_idle_fallback(p, plan)
    assert plan.objective_eur == pytest.approx(0.2 * 30 * 4, abs=EXACT)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"soc_min": arr(0.8), "soc_max": arr(0.2)}, "the SOC window of battery 0 is empty: soc_min 0.8 > soc_max 0.2"),
        ({"soc0": arr(0.95), "soc_max": arr(0.9)}, "the initial SOC 0.95 of battery 0 lies outside its window"),
        ({"soc_terminal": arr(0.95), "soc_max": arr(0.9)}, "the terminal SOC 0.95 of battery 0 exceeds its soc_max"),
        (
            {"sensitivity": voltage_sensitivity_1([1.0, 1.0], upper=0.9)},
            "the limits of v bus 7 contradict: lower 0.95 > upper 0.9",
        ),
        (
            {"sensitivity": voltage_sensitivity_1([1.0, 1.12])},
            "v bus 7 cannot be kept within [0.95, 1.05] at step 1: it stays between 1.07 and 1.17",
        ),
    ],
)
def test_contradicting_limits_are_explained(overrides: dict[str, Any], expected: str) -> None:
    p = network_problem(**overrides)
    plan = solve(p)
    assert plan.status == "infeasible"
    assert plan.reason.startswith("infeasible because ")
    assert expected in plan.reason
    assert_idle_fallback(p, plan)


def test_network_and_terminal_soc_together_infeasible_found_by_solver() -> None:
    # Charging lowers the voltage: from 0.96 pu at −0.001 pu/kW, the 0.95 limit allows 10 kW a step, 40 kWh
    # in 4 steps; the terminal SOC needs 50 kWh. Each limit alone can be met; together they cannot.
    p = DispatchProblem(
        dt_h=1.0,
        **battery(e_kwh=arr(100), p_max_kw=arr(20), soc0=arr(0.2)),
        soc_terminal=arr(0.7),
        net_load_kw=np.full(4, 10.0),
        import_price=np.full(4, 0.2),
        export_price=np.zeros(4),
        sensitivity=Sensitivity(np.full((4, 1), 0.96), np.array([[0.001]]), arr(0.95), arr(1.05), ("v bus 3",)),
    )
    plan = solve(p)
    assert plan.status == "infeasible"
    assert plan.reason == "infeasible because the terminal SOC targets cannot be reached within the network limits"
    assert_idle_fallback(p, plan)
    assert solve(replace(p, soc_terminal=arr(0.6))).status == "optimal"  # 40 kWh: just reachable


def test_network_limit_beyond_the_energy_of_the_battery_found_by_solver() -> None:
    # 1.07 pu for 4 h, limit 1.05, 0.001 pu/kW: the battery must absorb 20 kW for 4 h = 80 kWh but has room
    # for 20 kWh; no generator to curtail. Each step alone is feasible, the horizon is not.
    p = DispatchProblem(
        dt_h=1.0,
        **battery(e_kwh=arr(40), p_max_kw=arr(30)),
        net_load_kw=np.full(4, 10.0),
        import_price=np.full(4, 0.2),
        export_price=np.zeros(4),
        sensitivity=Sensitivity(np.full((4, 1), 1.07), np.array([[0.001]]), arr(0.95), arr(1.05), ("v bus 9",)),
    )
    plan = solve(p)
    assert plan.status == "infeasible"
    assert plan.reason == "infeasible because the battery and curtailment limits cannot keep v bus 9 within its limits"
    assert_idle_fallback(p, plan)


def test_solver_stopping_early_gives_the_fallback() -> None:
    p = month_problem(steps=96 * 7)
    plan = solve(p, time_limit_s=0.0)
    assert plan.status == "fallback"
    assert plan.reason.startswith("no optimal dispatch because HiGHS stopped: Time limit reached")
    assert_idle_fallback(p, plan)


# --- (f) a month with perfect foresight; (g) the demo size -----------------------------------------------------


def month_problem(*, steps: int = 2976, batteries: int = 4, seed: int = 1) -> DispatchProblem:
    """Synthetic quarter-hours: a village load and PV, a time-of-use tariff, two microgrids with PV."""
    rng = np.random.default_rng(seed)
    hour = (np.arange(steps) % 96) / 4
    load = 220 + 120 * np.exp(-(((hour - 19) / 2.5) ** 2)) + 60 * np.exp(-(((hour - 8) / 2) ** 2))
    load = load * (1 + 0.1 * rng.standard_normal(steps))
    sun = np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None) * rng.uniform(0.3, 1.0, steps // 96 + 1).repeat(96)[:steps]
    gen = np.stack([150 * sun, 100 * sun], axis=1)  # two PV plants, one per microgrid
    site_load = np.stack([0.3 * load, 0.2 * load], axis=1)
    price = np.where((hour >= 17) & (hour < 21), 0.38, np.where((hour >= 7) & (hour < 17), 0.28, 0.18))
    b = batteries
    return DispatchProblem(
        dt_h=0.25,
        e_kwh=np.full(b, 200.0),
        p_max_kw=np.full(b, 60.0),
        eta_charge=np.full(b, 0.95),
        eta_discharge=np.full(b, 0.95),
        soc_min=np.full(b, 0.1),
        soc_max=np.full(b, 0.9),
        soc0=np.full(b, 0.5),
        degradation_eur_per_kwh=np.full(b, 0.02),
        net_load_kw=load - gen.sum(axis=1),
        import_price=price,
        export_price=np.full(steps, 0.07),
        demand_charge_eur_per_kw=12.0,
        site_net_load_kw=site_load - gen,
        site_of_battery=np.arange(b) % 3 - 1,  # -1, 0, 1, -1, …
        site_demand_charge_eur_per_kw=arr(8, 8),
        gen_available_kw=gen,
        site_of_gen=np.array([0, 1]),
        curtailment_penalty_eur_per_kwh=0.05,
    )


def self_consumption(p: DispatchProblem) -> tuple[np.ndarray, np.ndarray]:
    """A simple rule: every battery charges from surplus and discharges into deficit, shared equally."""
    b = p.n_batteries
    charge, discharge = np.zeros((p.steps, b)), np.zeros((p.steps, b))
    soc = p.soc0.copy()
    for t in range(p.steps):
        want = p.net_load_kw[t] / b  # > 0: discharge
        room_c = (p.soc_max - soc) * p.e_kwh / (p.eta_charge * p.dt_h)
        room_d = (soc - p.soc_min) * p.e_kwh * p.eta_discharge / p.dt_h
        charge[t] = np.clip(-want, 0, np.minimum(p.p_max_kw, room_c))
        discharge[t] = np.clip(want, 0, np.minimum(p.p_max_kw, room_d))
        soc = soc + (p.eta_charge * charge[t] - discharge[t] / p.eta_discharge) * p.dt_h / p.e_kwh
    return charge, discharge


def test_perfect_foresight_month_beats_simple_rules() -> None:
    p = month_problem()
    start = time.perf_counter()
    plan = perfect_foresight(p)
    seconds = time.perf_counter() - start
    print(
        f"\nperfect foresight, {p.steps} steps × {p.n_batteries} batteries: {seconds:.2f} s, {plan.objective_eur:.0f} €"
    )
    assert_soc_ok(p, plan)
    assert plan.status == "optimal"
    idle = fallback_plan(p).objective_eur
    charge, discharge = self_consumption(p)
    rule = dispatch_cost(p, charge_kw=charge, discharge_kw=discharge).total
    assert plan.objective_eur <= rule - 1.0
    assert plan.objective_eur <= idle - 1.0
    assert plan.breakdown["demand"] < fallback_plan(p).breakdown["demand"]


def test_demo_size_solve_with_monitored_voltages() -> None:
    # 96 steps × 4 batteries × 2 sites, 20 monitored voltages pushed towards their upper limit by midday PV.
    p = month_problem(steps=96)
    rng = np.random.default_rng(7)
    m = 20
    d_dp = rng.uniform(0.5e-4, 2e-4, (m, p.n_batteries + p.n_generators))
    midday = np.exp(-(((np.arange(96) / 4 - 13) / 3) ** 2))
    base = 1.0 + 0.04 * midday[:, None] + rng.uniform(0, 0.01, (1, m))
    sens = Sensitivity(base, d_dp, np.full(m, 0.94), np.full(m, 1.045), tuple(f"v bus {k}" for k in range(m)))
    p = replace(p, sensitivity=sens)
    start = time.perf_counter()
    plan = solve(p)
    seconds = time.perf_counter() - start
    print(f"\nMPC solve, 96 steps × 4 batteries × 2 sites × 20 voltages: {seconds * 1000:.0f} ms")
    assert plan.status == "optimal"
    assert plan.monitored is not None
    assert (plan.monitored <= 1.045 + 1e-7).all() and (plan.monitored >= 0.94 - 1e-7).all()
    assert (base.max(axis=1) > 1.045).any()  # the limit matters …
    assert plan.monitored.max() == pytest.approx(1.045, abs=1e-6)  # … and binds
