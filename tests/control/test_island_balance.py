"""Island energy management: hand cases, energy balance every step, and critical loads served while the
battery has energy (a property over random profiles)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gridmesh.control.island_balance import (
    CRITICAL_RANK,
    EV_RANK,
    balance_island,
    rehearse,
    shed_priority,
)
from gridmesh.devices.battery import BatteryFleet
from gridmesh.errors import ScenarioError
from gridmesh.model.elements import Battery, Load

DT_H = 0.25


def fleet(*, soc: float = 0.5, p_kw: float = 5.0, e_kwh: float = 10.0, eta: float = 1.0) -> BatteryFleet:
    battery = Battery(
        id="b", bus="a", e_kwh=e_kwh, p_kw=p_kw, soc_init=soc, soc_min=0.1, soc_max=0.9, eta_charge=eta,
        eta_discharge=eta, grid_forming=True,
    )  # fmt: skip
    return BatteryFleet.of([battery])


def test_shed_priority_puts_ev_first_and_critical_last() -> None:
    loads = [
        Load(id="home", bus="a", p_kw=1),
        Load(id="shop", bus="a", p_kw=1, load_class="commercial"),
        Load(id="clinic", bus="a", p_kw=1, load_class="commercial", critical=True),
    ]
    ranks = shed_priority(loads, ev_chargers=1)
    assert ranks.tolist() == [4, 1, CRITICAL_RANK, EV_RANK]


def test_deficit_sheds_the_lowest_priority_whole_load_and_keeps_critical() -> None:
    # Home 6 kW (rank 4), clinic 3 kW (critical), EV 4 kW (rank 0); PV 2 kW; battery 5 kW with energy.
    load = np.array([[6.0, 3.0, 4.0]])
    ranks = np.array([4, CRITICAL_RANK, EV_RANK])
    b = balance_island(load, np.array([[2.0]]), fleet(), priority=ranks, curtailable=np.array([True]), dt_h=DT_H)
    # 13 kW demand − 2 kW PV = 11 > 5: shed the EV (7 left), then the home (1 left); the battery gives 1 kW.
    assert b.served.tolist() == [[False, True, False]]
    assert b.battery_kw.tolist() == pytest.approx([1.0])
    assert b.shed_kw.sum() == pytest.approx(10.0)
    assert b.soc[0] == pytest.approx(0.5 - 1.0 * DT_H / 10.0)


def test_surplus_charges_then_curtails_the_curtailable_generators() -> None:
    # 2 kW load, PV 10 kW (curtailable) and hydro 1 kW (not); the battery charges 5 kW (its limit), 4 kW curtailed.
    b = balance_island(
        np.array([[2.0]]),
        np.array([[10.0, 1.0]]),
        fleet(eta=0.9),
        priority=np.array([4]),
        curtailable=np.array([True, False]),
        dt_h=DT_H,
    )
    assert b.battery_kw.tolist() == pytest.approx([-5.0])
    assert b.curtailed_kw.tolist() == [pytest.approx([4.0, 0.0])]
    assert b.forced_kw.tolist() == pytest.approx([0.0])
    assert b.soc[0] == pytest.approx(0.5 + 5.0 * DT_H * 0.9 / 10.0)


def test_surplus_beyond_curtailable_generation_reduces_must_run_generation() -> None:
    # A full battery, 1 kW load, a 3 kW non-curtailable hydro: 2 kW must go (over-frequency droop).
    b = balance_island(
        np.array([[1.0]]), np.array([[3.0]]), fleet(soc=0.9), priority=np.array([4]), curtailable=np.array([False]),
        dt_h=DT_H,
    )  # fmt: skip
    assert b.battery_kw.tolist() == pytest.approx([0.0])
    assert b.forced_kw.tolist() == pytest.approx([2.0])
    assert b.gen_kw.tolist() == [pytest.approx([1.0])]


def test_the_critical_reserve_sheds_non_critical_load_early() -> None:
    # 1.6 kWh above soc_min (e 10 kWh, soc 0.26). Critical 1 kW for 4 steps needs 1 kWh: only 0.6 kWh is free
    # for the 4 kW home, which the battery (5 kW) could otherwise carry for ~0.3 h.
    load = np.tile([4.0, 1.0], (4, 1))
    reserve = np.cumsum(np.full(4, 1.0 * DT_H))[::-1]
    no_gen = np.zeros((4, 0))
    ranks = np.array([4, CRITICAL_RANK])
    kept = balance_island(
        load, no_gen, fleet(soc=0.26), priority=ranks, curtailable=np.zeros(0, bool), dt_h=DT_H, reserve_kwh=reserve
    )
    assert kept.served[:, 1].all()  # critical served to the end
    assert not kept.served[:, 0].all()
    greedy = balance_island(load, no_gen, fleet(soc=0.26), priority=ranks, curtailable=np.zeros(0, bool), dt_h=DT_H)
    assert not greedy.served[:, 1].all()  # without the reserve the home empties the battery first


def test_one_grid_forming_unit_per_island() -> None:
    two = BatteryFleet.of([Battery(id=i, bus="a", e_kwh=1, p_kw=1) for i in ("x", "y")])
    with pytest.raises(ScenarioError, match="grid_forming"):
        balance_island(np.zeros((1, 1)), np.zeros((1, 0)), two, priority=np.array([4]), curtailable=np.zeros(0, bool),
                       dt_h=DT_H)  # fmt: skip


def test_rehearse_leaves_the_battery_state_alone() -> None:
    original = fleet(soc=0.5)
    balance_island(np.array([[4.0]]), np.zeros((1, 0)), rehearse(original), priority=np.array([4]),
                   curtailable=np.zeros(0, bool), dt_h=DT_H)  # fmt: skip
    assert original.soc[0] == 0.5


profiles = st.integers(min_value=1, max_value=24).flatmap(
    lambda steps: st.tuples(
        arrays(np.float64, (steps, 5), elements=st.floats(0.0, 6.0)),
        arrays(np.float64, (steps, 2), elements=st.floats(0.0, 8.0)),
        arrays(np.float64, (steps,), elements=st.floats(0.0, 0.3)),
    )
)


@settings(max_examples=100, deadline=None)
@given(
    data=profiles,
    soc=st.floats(0.1, 0.9),
    critical=st.lists(st.booleans(), min_size=5, max_size=5),
    ranks=st.lists(st.integers(0, 4), min_size=5, max_size=5),
)
def test_balance_closes_and_critical_load_is_kept_while_the_battery_can_carry_it(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], soc: float, critical: list[bool], ranks: list[int]
) -> None:
    load, gen, losses = data
    priority = np.where(critical, CRITICAL_RANK, ranks)
    battery = fleet(soc=soc, p_kw=5.0, e_kwh=10.0, eta=0.92)
    replay = rehearse(battery)
    b = balance_island(load, gen, battery, priority=priority, curtailable=np.array([True, False]), dt_h=DT_H,
                       losses_kw=losses)  # fmt: skip
    crit = np.array(critical)
    for t in range(len(load)):
        discharge_max, _ = replay.limits_kw(DT_H)
        carried = float(discharge_max[0]) + gen[t].sum() - losses[t]
        if carried >= load[t, crit].sum() + 1e-9:
            assert b.served[t, crit].all(), f"critical load shed at step {t} while the battery could carry it"
        replay.step(b.battery_kw[t : t + 1], DT_H)
        assert replay.soc[0] == pytest.approx(b.soc[t], abs=1e-12)  # the SOC trace is the battery's own books
    # Energy balance every step: generation + discharge − curtailment = served + charge + losses, unless the
    # island has nothing left to shed and the battery is empty (then it is short by exactly the gap).
    residual = b.residual_kw(losses)
    nothing_served = b.served_kw.sum(axis=1) <= 0.0
    assert np.all(np.abs(residual[~nothing_served]) < 1e-8)
    assert np.all(residual[nothing_served] <= 1e-8)
    assert np.all(b.served_kw + b.shed_kw == pytest.approx(load))
    assert np.all((b.soc >= 0.1 - 1e-12) & (b.soc <= 0.9 + 1e-12))
    assert np.all(b.curtailed_kw >= -1e-12) and np.all(b.curtailed_kw <= gen + 1e-9)
