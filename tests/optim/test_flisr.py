"""FLISR on a hand-built two-feeder grid: location, isolation, restoration, shedding and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.model.graph import buses_behind, connectivity
from gridmesh.model.network import Network
from gridmesh.model.sections import Sections, sections_of
from gridmesh.optim.flisr import (
    Action,
    Location,
    Plan,
    PlanRefused,
    Purpose,
    Step,
    assert_valid,
    fault_at,
    locate,
    next_plan,
    plan,
    validate,
)
from gridmesh.physics.powerflow import snapshot
from support.flisr_feeder import LOADS_KW, tripped, two_feeders, with_states

LOADS = {f"load-{b}": p for b, p in LOADS_KW.items()}
HEALTHY = {"rA": True, "sA1": True, "sA2": True, "sA4": False, "sA7": False}  # a fault in a3–a4


@pytest.fixture
def grid() -> Network:
    return tripped(two_feeders(), "rA")


@pytest.fixture
def secs(grid: Network) -> Sections:
    return sections_of(grid)


def sec(secs: Sections, bus: str) -> int:
    return secs.section_of_bus[bus]


def final(network: Network, p: Plan) -> Network:
    return with_states(network, {s.switch: s.action is Action.CLOSE for s in p.steps})


def energised(network: Network) -> set[str]:
    conn = connectivity(network)
    return {b for b, live in zip(conn.bus_ids, conn.energized, strict=True) if live}


# --- location --------------------------------------------------------------------------------------------


def test_consistent_indicators_pin_the_section(grid: Network, secs: Sections) -> None:
    where = locate(grid, secs, ["rA"], HEALTHY)
    assert where.faulted == {sec(secs, "a3")}
    assert (where.confidence, where.conflicting, where.missing) == (1.0, (), ())


def test_a_missing_indicator_isolates_both_candidates(grid: Network, secs: Sections) -> None:
    readings = {k: v for k, v in HEALTHY.items() if k != "sA2"}
    where = locate(grid, secs, ["rA"], readings)
    assert where.faulted == {sec(secs, "a2"), sec(secs, "a3")}
    assert where.missing == ("sA2",)
    assert where.confidence == pytest.approx(0.5)


def test_a_wrong_indicator_is_outvoted_and_reported(grid: Network, secs: Sections) -> None:
    readings = {"rA": True, "sA1": False, "sA2": True, "sA4": True, "sA7": False}  # fault in a5–a6, sA1 wrong
    where = locate(grid, secs, ["rA"], readings)
    assert where.faulted == {sec(secs, "a5")}
    assert where.conflicting == ("sA1",)
    assert where.confidence == pytest.approx(0.8)  # 4 of 5 readings agree


def test_two_trips_locate_two_faults(secs: Sections) -> None:
    grid = tripped(two_feeders(), "rA", "rB")
    readings = {**HEALTHY, "rB": True, "sB2": True, "sB3": False, "sB4": False}
    where = locate(grid, secs, ["rA", "rB"], readings)
    assert where.faulted == {sec(secs, "a3"), sec(secs, "b2")}


def test_a_second_fault_below_one_trip_needs_two_readings(grid: Network, secs: Sections) -> None:
    both = {"rA": True, "sA1": True, "sA2": True, "sA4": True, "sA7": True}
    assert locate(grid, secs, ["rA"], both).faulted == {sec(secs, "a5"), sec(secs, "a7")}
    one_stray = {**HEALTHY, "sA7": True}  # a7 explained by one reading only: suspected wrong, a single fault
    assert len(locate(grid, secs, ["rA"], one_stray).faulted) == 1


@pytest.mark.parametrize(
    ("trips", "readings", "message"),
    [
        (["nope"], {}, "unknown switch 'nope'"),
        (["rA"], {"ghost": True}, "unknown switch 'ghost'"),
        ([], {}, "no trip"),
        (["tie1"], {}, "'tie1' cannot have tripped: it is normally open"),
        (["rB"], {}, "'rB' cannot have tripped: it is closed"),
    ],
)
def test_bad_location_input_is_refused(
    grid: Network, secs: Sections, trips: list[str], readings: dict[str, bool], message: str
) -> None:
    with pytest.raises(PlanRefused, match=message):
        locate(grid, secs, trips, readings)


def test_a_fault_on_a_non_existent_element_is_refused(secs: Sections) -> None:
    with pytest.raises(PlanRefused, match="'lX'"):
        fault_at(secs, [("lines", "lX")], ["rA"])


# --- isolation and restoration ---------------------------------------------------------------------------


def test_fault_is_isolated_upstream_restored_and_downstream_transferred(grid: Network, secs: Sections) -> None:
    p = plan(grid, secs, locate(grid, secs, ["rA"], HEALTHY), LOADS)
    assert p.steps == (
        Step("sA2", Action.OPEN, Purpose.ISOLATE),
        Step("sA4", Action.OPEN, Purpose.ISOLATE),
        Step("sA7", Action.OPEN, Purpose.ISOLATE),
        Step("rA", Action.CLOSE, Purpose.RESTORE),
        Step("tie1", Action.CLOSE, Purpose.RESTORE),
        Step("tie2", Action.CLOSE, Purpose.RESTORE),
    )
    live = energised(final(grid, p))
    assert live == set(two_feeders().buses) - {"a3", "a4"}
    assert p.chosen.unrestored_kw == pytest.approx(LOADS_KW["a3"] + LOADS_KW["a4"])
    assert p.chosen.critical_restored == 10
    assert p.chosen.check.feasible


def test_short_tie_capacity_sheds_the_section_that_does_not_fit(secs: Sections) -> None:
    grid = tripped(two_feeders(tie_amps=25), "rA")  # 25 A ≈ 0.87 MVA per tie
    readings = {"rA": True, "sA1": True, "sA2": False, "sA4": False, "sA7": False}  # fault in a2
    p = plan(grid, secs, locate(grid, secs, ["rA"], readings), LOADS)
    # a3–a4 (900 kW) fits through neither tie with its neighbours: shed; a5–a6 and the clinic transferred
    assert set(p.steps) >= {Step("sA4", Action.OPEN, Purpose.SHED), Step("sA7", Action.OPEN, Purpose.SHED)}
    assert {s.switch for s in p.steps if s.action is Action.CLOSE} == {"rA", "tie1", "tie2"}
    assert p.chosen.restored_kw == pytest.approx(300 + 350 + 250 + 300)
    assert p.chosen.critical_restored == 10
    after = snapshot(final(grid, p))  # independent single power flow of the resulting grid
    assert np.nanmax(after.line_loading) <= 1.0
    assert np.nanmax(after.line_loading) == pytest.approx(p.chosen.check.max_loading, rel=1e-6)
    v = after.v_pu[0][~np.isnan(after.v_pu[0])]
    assert v.min() >= 0.9 and v.max() <= 1.1
    # the transfer that did not fit really would overload the tie
    overload = snapshot(with_states(grid, {"sA1": False, "rA": True, "sA7": False, "tie1": True}))
    assert np.nanmax(overload.line_loading) > 1.0


def test_two_faults_are_both_isolated_and_ties_feed_from_the_reclosed_feeder(secs: Sections) -> None:
    grid = tripped(two_feeders(), "rA", "rB")
    where = Location(faulted=frozenset({sec(secs, "a3"), sec(secs, "b4")}), trips=("rA", "rB"))
    p = plan(grid, secs, where, LOADS)
    live = energised(final(grid, p))
    assert live == set(two_feeders().buses) - {"a3", "a4", "b4"}  # a5…a7 through ties from the reclosed B
    closes = [s.switch for s in p.steps if s.action is Action.CLOSE]
    assert closes.index("rB") < closes.index("tie1") and closes.index("rB") < closes.index("tie2")
    assert p.chosen.check.feasible
    assert p.chosen.unrestored_kw == pytest.approx(LOADS_KW["a3"] + LOADS_KW["a4"] + LOADS_KW["b4"])


def test_a_tie_between_two_dead_feeders_restores_nothing(secs: Sections) -> None:
    grid = tripped(two_feeders(), "rA", "rB")
    where = Location(faulted=frozenset({sec(secs, "a3"), sec(secs, "b2")}), trips=("rA", "rB"))
    p = plan(grid, secs, where, LOADS)
    assert energised(final(grid, p)) == {"sub", "a1", "a2", "b1"}


@pytest.mark.parametrize("bus", ["a1", "a2", "a3", "a5", "a7"])
def test_no_plan_or_alternative_energises_the_fault_or_closes_a_loop(grid: Network, secs: Sections, bus: str) -> None:
    p = plan(grid, secs, Location(faulted=frozenset({sec(secs, bus)}), trips=("rA",)), LOADS)
    for option in (p.chosen, *p.alternatives):
        after = with_states(grid, {s.switch: s.action is Action.CLOSE for s in option.steps})
        assert not energised(after) & secs.sections[sec(secs, bus)].buses
        for step in option.steps:
            if step.action is Action.CLOSE:  # opening any closed switch must cut something off: no loop
                assert buses_behind(after, step.switch) is not None, step


# --- failures and stale plans ----------------------------------------------------------------------------


def test_a_tie_that_fails_to_close_falls_back_to_the_best_alternative(grid: Network, secs: Sections) -> None:
    where = locate(grid, secs, ["rA"], {"rA": True, "sA1": True, "sA2": False, "sA4": False, "sA7": False})
    p = plan(grid, secs, where, LOADS)
    assert [s.switch for s in p.steps if s.action is Action.CLOSE] == ["rA", "tie1"]  # one tie feeds a3…a7
    expected = next(alt for alt in p.alternatives if not alt.uses("tie1"))
    again = next_plan(p, "tie1")
    assert again.stuck == {"tie1"}
    assert not again.chosen.uses("tie1")
    done = with_states(grid, {"sA1": False, "sA2": False, "rA": True})  # the steps before tie1
    assert [str(s) for s in again.steps] == ["close tie2 (restore)"]
    assert energised(final(done, again)) == energised(
        with_states(grid, {s.switch: s.action is Action.CLOSE for s in expected.steps})
    )
    assert again.chosen.restored_kw == pytest.approx(p.chosen.restored_kw - LOADS_KW["a1"])  # a1 came back before


def test_an_isolating_switch_that_sticks_grows_the_isolated_zone(grid: Network, secs: Sections) -> None:
    p = plan(grid, secs, locate(grid, secs, ["rA"], HEALTHY), LOADS)
    again = next_plan(p, "sA4")  # sA2 already opened; sA4 stays closed
    dead = energised(final(with_states(grid, {"sA2": False}), again))
    assert not dead & {"a3", "a4", "a5", "a6"}
    assert "tie1" not in {s.switch for s in again.steps}
    assert again.chosen.restored_kw == pytest.approx(p.chosen.restored_kw - LOADS_KW["a5"] - LOADS_KW["a6"])


def test_a_plan_is_refused_once_the_grid_changed(grid: Network, secs: Sections) -> None:
    p = plan(grid, secs, locate(grid, secs, ["rA"], HEALTHY), LOADS)
    assert validate(p, grid) == []
    moved = with_states(grid, {"tie2": True})
    assert validate(p, moved) == ["switch tie2 is now closed; the plan assumed otherwise"]
    with pytest.raises(PlanRefused, match="stale plan: switch tie2 is now closed"):
        assert_valid(p, moved)
    manual = grid.with_elements([grid.switches["sA4"].model_copy(update={"remote": False})])
    assert validate(p, manual) == ["switch sA4 is not remote-controllable or out of service"]


def test_a_non_remote_switch_is_never_operated(secs: Sections) -> None:
    base = tripped(two_feeders(), "rA")
    grid = base.with_elements([base.switches["sA4"].model_copy(update={"remote": False})])
    p = plan(grid, secs, Location(faulted=frozenset({sec(secs, "a3")}), trips=("rA",)), LOADS)
    assert "sA4" not in {s.switch for s in p.steps}
    assert not energised(final(grid, p)) & {"a5", "a6"}  # manual sA4 ties them to the fault


def test_unknown_failed_switch_and_foreign_steps_are_refused(grid: Network, secs: Sections) -> None:
    where = locate(grid, secs, ["rA"], HEALTHY)
    with pytest.raises(PlanRefused, match="unknown switch 'zz'"):
        plan(grid, secs, where, LOADS, failed_switches=["zz"])
    with pytest.raises(PlanRefused, match="not operated by this plan"):
        next_plan(plan(grid, secs, where, LOADS), "sB4")
