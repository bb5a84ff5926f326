"""Smart-charging scheduler: hand-computed optima, fairness, headroom, ample capacity, re-planning, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from gridmesh.devices.ev import Sessions, uncontrolled_power
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.elements import EvCharger
from gridmesh.optim.ev_schedule import ChargingProblem, plugged_steps, replan, schedule
from gridmesh.optim.lp import LpSolution, LpStatus, SparseLp


def sessions(charger: list[int], arrival: list[int], departure: list[int], energy: list[float]) -> Sessions:
    return Sessions(np.array(charger), np.array(arrival), np.array(departure), np.array(energy, dtype=float))


def one_group(s: Sessions, headroom: list[float], price: list[float], *, p_max: float = 11.0) -> ChargingProblem:
    chargers = int(s.charger.max(initial=0)) + 1
    return ChargingProblem(
        sessions=s,
        p_max_kw=np.full(len(s), p_max),
        groups=np.ones((1, chargers), dtype=bool),
        headroom_kw=np.array(headroom, dtype=float)[:, None],
        price_eur_per_kwh=np.array(price, dtype=float),
        dt_h=1.0,
    )


def test_two_vehicles_under_one_transformer_hand_computed() -> None:
    # 10 kW of headroom for 4 h; steps 0–1 cost 0.1 €/kWh, steps 2–3 cost 0.5 €/kWh. B (10 kWh) can only use
    # the cheap hours, A (15 kWh) takes the rest of the cheap capacity (10 kWh) and 5 kWh in the dear hours.
    # Optimum: 20 kWh × 0.1 + 5 kWh × 0.5 = 4.5 €; the smoothing term splits the dear 5 kWh as 2.5 + 2.5.
    problem = one_group(sessions([0, 1], [0, 0], [4, 2], [15.0, 10.0]), [10] * 4, [0.1, 0.1, 0.5, 0.5])
    plan = schedule(problem)
    assert plan.status is LpStatus.OPTIMAL
    np.testing.assert_allclose(plan.delivered_kwh, [15.0, 10.0], atol=1e-6)
    np.testing.assert_allclose(plan.session_kw.sum(axis=0), [10.0, 10.0, 2.5, 2.5], atol=1e-6)
    assert plan.session_kw[1, :2].sum() == pytest.approx(10.0)  # how A and B split the cheap hours is free
    assert plan.cost_eur == pytest.approx(4.5)
    assert plan.max_shortfall_fraction == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(plan.charger_kw(2), plan.session_kw.T)


def test_short_capacity_is_shared_in_equal_fractions() -> None:
    # 20 kWh of capacity (10 kW × 2 h) for requests of 20, 10 and 10 kWh: each vehicle gets half.
    problem = one_group(sessions([0, 1, 2], [0, 0, 0], [2, 2, 2], [20.0, 10.0, 10.0]), [10, 10], [0.3, 0.3])
    plan = schedule(problem)
    np.testing.assert_allclose(plan.delivered_kwh, [10.0, 5.0, 5.0], atol=1e-6)
    np.testing.assert_allclose(plan.shortfall_kwh / np.array([20, 10, 10]), 0.5, atol=1e-6)
    assert plan.max_shortfall_fraction == pytest.approx(1 - 20 / 40)


def test_a_car_leaving_too_early_is_judged_by_what_it_could_have_had() -> None:
    # A asks 20 kWh but can take only 11 (one hour at 11 kW); B and C ask 10 each; 10 kW for 2 h. Avoidable
    # shortfall fractions (11 − a)/11 = (10 − b)/10 = (10 − c)/10 with a + b + c = 20 give 1 − f = 20/31.
    problem = one_group(sessions([0, 1, 2], [0, 0, 0], [1, 2, 2], [20.0, 10.0, 10.0]), [10, 10], [0.3, 0.3])
    plan = schedule(problem)
    np.testing.assert_allclose(plan.delivered_kwh, [11 * 20 / 31, 10 * 20 / 31, 10 * 20 / 31], atol=1e-6)
    assert plan.max_shortfall_fraction == pytest.approx(11 / 31)


def random_problem(seed: int, *, headroom_scale: float) -> ChargingProblem:
    """Nested groups (a feeder over two transformers) with sessions drawn at random over a day."""
    rng = np.random.default_rng(seed)
    t, chargers, n = 96, 12, 30
    arrival = rng.integers(0, 80, n)
    s = Sessions(rng.integers(0, chargers, n), arrival, arrival + rng.integers(4, 40, n), rng.gamma(4.0, 3.0, n))
    groups = np.zeros((3, chargers), dtype=bool)
    groups[0] = True  # the feeder
    groups[1, :6] = groups[2, 6:] = True  # two transformers below it
    base = headroom_scale * np.array([60.0, 35.0, 35.0])
    headroom = base * (1.0 + 0.3 * np.sin(np.linspace(0, 2 * np.pi, t)))[:, None]
    headroom[10:12, 1] = -5.0  # the base load alone overloads transformer 1 for two steps
    times = pd.date_range("2016-01-04", periods=t, freq="15min")
    return ChargingProblem(
        sessions=s,
        p_max_kw=rng.choice([3.7, 11.0, 22.0], n),
        groups=groups,
        headroom_kw=headroom,
        price_eur_per_kwh=TimeOfUseTariff().import_price(times),
        dt_h=0.25,
        peak_eur_per_kw=10.0,
    )


def max_energy_reference(problem: ChargingProblem) -> float:
    """The most energy deliverable, by scipy's linprog on a dense formulation of only that question."""
    s, t_len, dt = problem.sessions, problem.steps, problem.dt_h
    session, step = plugged_steps(s.arrival, s.departure, t_len)
    m = session.size
    a_energy = np.zeros((len(s), m))
    a_energy[session, np.arange(m)] = dt
    g = problem.groups.shape[0]
    a_room = np.zeros((t_len * g, m))
    for k in range(g):
        on = problem.groups[k, s.charger[session]]
        a_room[step[on] * g + k, np.flatnonzero(on)] = 1.0
    result = linprog(
        -np.full(m, dt),
        A_ub=np.vstack([a_energy, a_room]),
        b_ub=np.concatenate([s.energy_kwh, np.clip(problem.headroom_kw, 0, None).ravel()]),
        bounds=[(0.0, float(u)) for u in problem.p_max_kw[session]],
    )
    assert result.status == 0 and result.fun is not None
    return -float(result.fun)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_headroom_is_never_exceeded_and_energy_is_maximal(seed: int) -> None:
    problem = random_problem(seed, headroom_scale=0.5)
    plan = schedule(problem)
    assert plan.status is LpStatus.OPTIMAL
    group_kw = plan.charger_kw(problem.n_chargers) @ problem.groups.T.astype(float)
    assert (group_kw <= np.clip(problem.headroom_kw, 0, None) + 1e-6).all()
    assert (plan.session_kw <= problem.p_max_kw[:, None] + 1e-9).all() and (plan.session_kw >= 0).all()
    plugged = np.zeros_like(plan.session_kw, dtype=bool)
    session, step = plugged_steps(problem.sessions.arrival, problem.sessions.departure, problem.steps)
    plugged[session, step] = True
    assert not plan.session_kw[~plugged].any()
    reference = max_energy_reference(problem)
    assert plan.delivered_kwh.sum() == pytest.approx(reference, rel=1e-6)
    assert plan.delivered_kwh.sum() < problem.sessions.energy_kwh.sum()  # the case is really short


def test_ample_capacity_delivers_everything_cheaper_than_uncontrolled() -> None:
    problem = random_problem(4, headroom_scale=100.0)
    s = problem.sessions
    # What a car can take while plugged in caps its request, as in devices.ev.draw_sessions.
    energy = np.minimum(s.energy_kwh, problem.p_max_kw * (s.departure - s.arrival) * problem.dt_h)
    s = Sessions(s.charger, s.arrival, np.minimum(s.departure, problem.steps), energy)
    p_kw = np.full(problem.n_chargers, 11.0)
    problem = ChargingProblem(
        sessions=s,
        p_max_kw=p_kw[s.charger],
        groups=problem.groups,
        headroom_kw=problem.headroom_kw,
        price_eur_per_kwh=problem.price_eur_per_kwh,
        dt_h=problem.dt_h,
    )
    plan = schedule(problem)
    np.testing.assert_allclose(plan.delivered_kwh, energy, rtol=1e-6)
    chargers = [EvCharger(id=f"c{k}", bus="b", p_kw=11.0) for k in range(problem.n_chargers)]
    dumb = uncontrolled_power(s, chargers, first=0, steps=problem.steps, dt_h=problem.dt_h)
    assert dumb.sum() * problem.dt_h == pytest.approx(energy.sum())
    dumb_cost = float(dumb.sum(axis=1) @ problem.price_eur_per_kwh * problem.dt_h)
    assert plan.cost_eur < dumb_cost
    # The uncontrolled baseline ignores the headroom that the plan keeps to on a tight grid.
    tight = random_problem(4, headroom_scale=0.3)
    tight_plan = schedule(tight)
    room = np.clip(tight.headroom_kw, 0, None)
    assert ((tight_plan.charger_kw(tight.n_chargers) @ tight.groups.T.astype(float)) <= room + 1e-6).all()
    assert ((dumb @ tight.groups.T.astype(float)) > room + 1e-6).any()


def test_replan_keeps_fairness_against_the_original_request() -> None:
    # A (30 kWh) and B (10 kWh) share 10 kW for 4 h; 10 and 5 kWh are in at step 2. The remaining 20 kWh of
    # capacity are split so that both end short by the same fraction of what they first asked for.
    problem = one_group(sessions([0, 1], [0, 0], [4, 4], [30.0, 10.0]), [10] * 4, [0.3] * 4)
    plan = replan(problem, now=2, delivered_kwh=np.array([10.0, 5.0]))
    assert plan.first_step == 2 and plan.session_kw.shape == (2, 2)
    total = plan.delivered_kwh + np.array([10.0, 5.0])
    np.testing.assert_allclose(total, [26.25, 8.75], atol=1e-6)
    np.testing.assert_allclose((np.array([30, 10]) - total) / [30, 10], 0.125, atol=1e-6)


def test_replan_for_a_new_arrival_follows_the_executed_plan() -> None:
    first = one_group(sessions([0], [0], [8], [40.0]), [12] * 8, [0.3] * 4 + [0.2] * 4)
    plan = schedule(first)
    done = plan.session_kw[:, :3].sum(axis=1) * first.dt_h
    arrived = one_group(sessions([0, 1], [0, 3], [8, 8], [40.0, 20.0]), [12] * 8, [0.3] * 4 + [0.2] * 4)
    again = replan(arrived, now=3, delivered_kwh=np.array([done[0], 0.0]))
    assert (again.session_kw.sum(axis=0) <= 12 + 1e-6).all()
    # 5 steps × 12 kW = 60 kWh left for 40 − done + 20 kWh: both complete when that fits.
    need = 40.0 - done[0] + 20.0
    delivered = again.delivered_kwh.sum()
    assert delivered == pytest.approx(min(need, 60.0), rel=1e-6)
    gone = replan(arrived, now=7, delivered_kwh=np.array([40.0, 20.0]))
    assert not gone.session_kw.any()


def test_bad_input_names_session_and_field() -> None:
    good = one_group(sessions([0, 1], [0, 2], [4, 4], [10.0, 5.0]), [10] * 4, [0.3] * 4)
    with pytest.raises(ValueError, match=r"session 1: departure must be after arrival \(5\)"):
        schedule(one_group(sessions([0, 1], [0, 5], [4, 3], [10.0, 5.0]), [10] * 6, [0.3] * 6))
    with pytest.raises(ValueError, match=r"session 0: energy_kwh must be finite and ≥ 0, got -1"):
        schedule(one_group(sessions([0, 1], [0, 0], [4, 4], [-1.0, 5.0]), [10] * 4, [0.3] * 4))
    bad = one_group(sessions([0, 1], [0, 0], [4, 4], [10.0, np.nan]), [10] * 4, [0.3] * 4)
    named = ChargingProblem(**{**bad.__dict__, "ids": ("tx-1", "tx-2")})
    with pytest.raises(ValueError, match=r"session 'tx-2': energy_kwh must be finite"):
        schedule(named)
    room = good.headroom_kw.copy()
    room[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"headroom_kw at step 2, group 'T1' is NaN"):
        schedule(ChargingProblem(**{**good.__dict__, "headroom_kw": room, "group_names": ("T1",)}))
    with pytest.raises(ValueError, match=r"session 0: charger must index one of the 2 chargers"):
        schedule(ChargingProblem(**{**good.__dict__, "sessions": sessions([5, 1], [0, 2], [4, 4], [1.0, 1.0])}))
    with pytest.raises(ValueError, match=r"session 1: delivered_kwh must be finite"):
        replan(good, now=1, delivered_kwh=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"now \(9\) must lie in the horizon 0 … 3"):
        replan(good, now=9, delivered_kwh=np.zeros(2))


def test_no_sessions_give_an_empty_plan() -> None:
    empty = np.zeros(0, dtype=np.int64)
    problem = one_group(Sessions(empty, empty, empty, np.zeros(0)), [10] * 3, [0.3] * 3)
    problem = ChargingProblem(**{**problem.__dict__, "groups": np.ones((1, 2), dtype=bool)})
    plan = schedule(problem)
    assert plan.session_kw.shape == (0, 3) and plan.max_shortfall_fraction == 0.0
    np.testing.assert_array_equal(plan.charger_kw(2), np.zeros((3, 2)))


def test_a_solve_past_its_time_limit_falls_back_to_the_bare_lp(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = SparseLp.solve

    def first_times_out(self: SparseLp, *, time_limit_s: float = 30.0) -> LpSolution:
        sizes.append(self.num_vars)
        if len(sizes) == 1:
            return LpSolution(LpStatus.FAILED, "Time limit reached", np.full(self.num_vars, np.nan), np.nan, 1.0)
        return original(self, time_limit_s=time_limit_s)

    monkeypatch.setattr(SparseLp, "solve", first_times_out)
    problem = one_group(sessions([0, 1], [0, 0], [4, 2], [15.0, 10.0]), [10] * 4, [0.1, 0.1, 0.5, 0.5])
    plan = schedule(ChargingProblem(**{**problem.__dict__, "peak_eur_per_kw": 10.0}))
    assert plan.status is LpStatus.OPTIMAL and "without" in plan.message
    assert len(sizes) == 2 and sizes[1] < sizes[0]  # the peak, ramp … variables are gone
    np.testing.assert_allclose(plan.delivered_kwh, [15.0, 10.0], atol=1e-6)
    assert plan.cost_eur == pytest.approx(4.5)


def test_a_failed_solve_gives_zero_power(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(self: SparseLp, *, time_limit_s: float = 30.0) -> LpSolution:
        return LpSolution(LpStatus.FAILED, "Time limit reached", np.full(self.num_vars, np.nan), np.nan, 1.0)

    monkeypatch.setattr(SparseLp, "solve", fails)
    plan = schedule(one_group(sessions([0, 1], [0, 0], [4, 2], [15.0, 10.0]), [10] * 4, [0.3] * 4))
    assert plan.status is LpStatus.FAILED
    assert not plan.session_kw.any() and plan.shortfall_kwh.tolist() == [15.0, 10.0]
