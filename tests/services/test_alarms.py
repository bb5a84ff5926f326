"""The alarm engine: every expected alarm set below is worked out by hand from the limits in the settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from gridmesh.errors import GridmeshError
from gridmesh.services.alarm_records import alarms_from_events
from gridmesh.services.alarm_rules import Band, grade
from gridmesh.services.alarms import (
    AlarmChange,
    AlarmEngine,
    AlarmKind,
    AlarmSettings,
    AlarmState,
    ChangeKind,
    ObservedState,
    Severity,
    UnknownAlarm,
)
from gridmesh.services.historian.base import StoredEvent

T0 = 1_764_216_000_000_000_000
S = 1_000_000_000


def buses(*v: float) -> ObservedState:
    return ObservedState(bus_ids=[f"b{i}" for i in range(len(v))], v_pu=np.array(v, dtype=float))


def kinds(changes: list[AlarmChange]) -> list[tuple[str, str]]:
    return [(str(c.change), c.alarm.id) for c in changes]


# ---------------------------------------------------------------- the pure rule
def test_grade_raises_on_the_highest_limit_exceeded_and_holds_within_the_deadband() -> None:
    band = Band("x", AlarmKind.OVERLOAD, True, (0.9, 1.0, 1.5), (Severity.WARNING,) * 3, 0.02, 0.05, "")
    values = np.array([0.5, 0.9, 0.91, 1.2, 1.6, 0.89, 0.87, 0.99, np.nan])
    current = np.array([0, 0, 0, 0, 0, 1, 1, 3, 2], dtype=np.int8)
    # 0.89 at level 1 holds (> 0.88); 0.87 clears; 0.99 falls from 3 to 2 (> 0.98); NaN clears.
    assert grade(band, values, current).tolist() == [0, 0, 1, 2, 3, 1, 0, 2, 0]
    low = Band("y", AlarmKind.VOLTAGE_LOW, False, (0.9, 0.85), (Severity.MAJOR, Severity.CRITICAL), 0.005, 0.01, "pu")
    v = np.array([0.9, 0.8999, 0.84, 0.903, 0.906, 0.852])
    cur = np.array([0, 0, 0, 1, 1, 2], dtype=np.int8)
    assert grade(low, v, cur).tolist() == [0, 1, 2, 1, 0, 2]


def test_settings_refuse_limits_out_of_order() -> None:
    with pytest.raises(ValidationError, match="increasing order"):
        AlarmSettings(voltage_low_pu=1.12)
    with pytest.raises(ValidationError, match="never clear"):
        AlarmSettings(voltage_deadband_pu=0.15)


def test_observed_state_refuses_arrays_that_do_not_match_their_ids() -> None:
    with pytest.raises(ValueError, match="one value per id"):
        ObservedState(bus_ids=["a", "b"], v_pu=np.array([1.0]))


# ---------------------------------------------------------------- raise, update, clear
def test_voltage_alarm_is_raised_updated_and_cleared_with_timestamps() -> None:
    engine = AlarmEngine()
    first = engine.evaluate(T0, buses(1.0, 1.12, 0.95))
    assert kinds(first) == [("raised", "voltage-high:b1")]
    alarm = first[0].alarm
    assert (alarm.severity, alarm.value, alarm.limit, alarm.raised_ns, alarm.updated_ns) == (
        Severity.MAJOR,
        1.12,
        1.10,
        T0,
        T0,
    )
    assert "b1" in alarm.message and "1.120 pu" in alarm.message and "1.100 pu" in alarm.message
    assert engine.evaluate(T0 + 5 * S, buses(1.0, 1.125, 0.95)) == []  # moved less than the 0.01 pu step
    up = engine.evaluate(T0 + 10 * S, buses(1.0, 1.16, 0.95))
    assert kinds(up) == [("updated", "voltage-high:b1")]
    assert (up[0].alarm.severity, up[0].alarm.limit, up[0].alarm.raised_ns, up[0].alarm.updated_ns) == (
        Severity.CRITICAL,
        1.15,
        T0,
        T0 + 10 * S,
    )
    # 1.148 is below 1.15 but inside the deadband: still critical, reported because it moved 0.012 pu.
    hold = engine.evaluate(T0 + 15 * S, buses(1.0, 1.148, 0.95))
    assert hold[0].alarm.severity is Severity.CRITICAL
    down = engine.evaluate(T0 + 20 * S, buses(1.0, 1.14, 0.95))
    assert down[0].alarm.severity is Severity.MAJOR and down[0].alarm.limit == 1.10
    gone = engine.evaluate(T0 + 25 * S, buses(1.0, 1.0, 0.95))
    assert kinds(gone) == [("cleared", "voltage-high:b1")]
    assert gone[0].alarm.cleared_ns == T0 + 25 * S and gone[0].alarm.state is AlarmState.CLEARED
    assert gone[0].alarm.raised_ns == T0
    assert engine.active() == []
    assert [a.id for a in engine.all()] == ["voltage-high:b1"]


def test_deadband_stops_chatter_at_the_band_edge() -> None:
    sequence = (1.101, 1.099, 1.1005, 1.096, 1.0949, 1.099, 0.899, 0.903, 0.906)
    engine = AlarmEngine()
    seen = [kinds(engine.evaluate(T0 + k * S, buses(v))) for k, v in enumerate(sequence)]
    assert seen == [
        [("raised", "voltage-high:b0")],
        [],
        [],
        [],
        [("cleared", "voltage-high:b0")],  # 1.0949 is 0.0051 pu back inside
        [],
        [("raised", "voltage-low:b0")],
        [],
        [("cleared", "voltage-low:b0")],
    ]
    without = AlarmEngine(AlarmSettings(voltage_deadband_pu=0.0))
    chatter = [c.change for k, v in enumerate(sequence[:4]) for c in without.evaluate(T0 + k * S, buses(v))]
    assert chatter == [ChangeKind.RAISED, ChangeKind.CLEARED, ChangeKind.RAISED, ChangeKind.CLEARED]


def test_de_energised_bus_is_no_voltage_alarm() -> None:
    engine = AlarmEngine()
    engine.evaluate(T0, buses(0.85))
    assert kinds(engine.evaluate(T0 + S, buses(np.nan))) == [("cleared", "voltage-low:b0")]
    assert engine.evaluate(T0 + 2 * S, buses(np.nan)) == []


def test_raise_delay_needs_an_uninterrupted_violation() -> None:
    engine = AlarmEngine(AlarmSettings(raise_delay_s=10))
    assert engine.evaluate(T0, buses(1.2)) == []
    assert engine.evaluate(T0 + 5 * S, buses(1.0)) == []  # interrupted: the clock restarts
    assert engine.evaluate(T0 + 10 * S, buses(1.2)) == []
    assert engine.evaluate(T0 + 15 * S, buses(1.2)) == []
    raised = engine.evaluate(T0 + 20 * S, buses(1.2))
    assert kinds(raised) == [("raised", "voltage-high:b0")] and raised[0].alarm.raised_ns == T0 + 20 * S


def test_overload_grades_warning_major_critical() -> None:
    engine = AlarmEngine()
    state = ObservedState(branch_ids=["l1", "l2", "l3", "l4"], loading=np.array([0.95, 1.05, 1.6, 0.9]))
    got = {c.alarm.source: (c.alarm.severity, c.alarm.limit) for c in engine.evaluate(T0, state)}
    assert got == {"l1": (Severity.WARNING, 0.9), "l2": (Severity.MAJOR, 1.0), "l3": (Severity.CRITICAL, 1.5)}
    assert "l3 overloaded: 160% of rating (limit 150%)" in engine.active()[0].message


# ---------------------------------------------------------------- acknowledgement
def test_acknowledged_alarm_clears_and_keeps_its_acknowledgement() -> None:
    events: list[AlarmChange] = []
    engine = AlarmEngine(on_change=events.extend)
    engine.evaluate(T0, buses(0.88))
    acked = engine.acknowledge("voltage-low:b0", "alice", T0 + S)
    assert (acked.acked_by, acked.acked_ns, acked.acknowledged) == ("alice", T0 + S, True)
    assert engine.active()[0].acknowledged
    cleared = engine.evaluate(T0 + 2 * S, buses(1.0))[0].alarm
    assert cleared.state is AlarmState.CLEARED and cleared.acked_by == "alice"
    assert engine.active() == []
    assert engine.acknowledge("voltage-low:b0", "bob", T0 + 3 * S).acked_by == "alice"  # second click: no change
    assert [c.change for c in events] == [ChangeKind.RAISED, ChangeKind.ACKNOWLEDGED, ChangeKind.CLEARED]


def test_cleared_alarm_can_be_acknowledged_later_and_escalation_needs_a_new_acknowledgement() -> None:
    engine = AlarmEngine()
    engine.evaluate(T0, buses(1.12))
    engine.evaluate(T0 + S, buses(1.0))
    late = engine.acknowledge("voltage-high:b0", "alice", T0 + 2 * S)
    assert late.state is AlarmState.CLEARED and late.acked_by == "alice"
    engine.evaluate(T0 + 3 * S, buses(1.12))
    engine.acknowledge("voltage-high:b0", "bob", T0 + 4 * S)
    escalated = engine.evaluate(T0 + 5 * S, buses(1.2))[0].alarm
    assert escalated.severity is Severity.CRITICAL and not escalated.acknowledged


def test_acknowledging_an_unknown_alarm_says_so() -> None:
    engine = AlarmEngine()
    with pytest.raises(UnknownAlarm, match="no alarm 'voltage-high:nowhere'") as caught:
        engine.acknowledge("voltage-high:nowhere", "alice", T0)
    assert isinstance(caught.value, KeyError)
    engine.evaluate(T0, buses(1.2))
    with pytest.raises(ValueError, match="user name"):
        engine.acknowledge("voltage-high:b0", " ", T0)


def test_failed_storage_leaves_the_alarms_unchanged() -> None:
    calls: list[int] = []

    def store(changes: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")

    engine = AlarmEngine(on_change=store)
    with pytest.raises(RuntimeError):
        engine.evaluate(T0, buses(1.2))
    assert engine.active() == []
    assert kinds(engine.evaluate(T0 + S, buses(1.2))) == [("raised", "voltage-high:b0")]


# ---------------------------------------------------------------- stale devices
def test_stale_device_after_n_periods_and_back() -> None:
    engine = AlarmEngine()  # 3 periods
    periods = {"m1": 10.0, "m2": 60.0}

    def at(now_s: int, m1_seen_s: int) -> list[AlarmChange]:
        state = ObservedState(last_seen_ns={"m1": T0 + m1_seen_s * S}, expected_period_s=periods)
        return engine.evaluate(T0 + now_s * S, state)

    assert at(0, 0) == []
    assert at(30, 0) == []  # exactly 3 periods: not yet
    stale = at(31, 0)
    assert kinds(stale) == [("raised", "stale-device:m1")]
    assert (stale[0].alarm.value, stale[0].alarm.limit, stale[0].alarm.severity) == (31.0, 30.0, Severity.WARNING)
    assert at(60, 0) == []  # raised once, not re-reported as it ages
    assert kinds(at(181, 175)) == [("cleared", "stale-device:m1"), ("raised", "stale-device:m2")]  # m2: never seen


# ---------------------------------------------------------------- outages from last gasps
def test_last_gasps_group_into_one_outage_that_clears_when_supply_returns() -> None:
    engine = AlarmEngine(outage_area={"b7": "feeder-1", "b8": "feeder-1"})
    first = engine.last_gasp("m2", "b7", T0)
    assert kinds(first) == [("raised", "outage:feeder-1")]
    assert engine.last_gasp("m2", "b7", T0 + S) == []  # delivered twice
    engine.last_gasp("m1", "b7", T0 + S)
    third = engine.last_gasp("m3", "b8", T0 + 2 * S)[0].alarm
    assert (third.devices, third.value, third.raised_ns, third.updated_ns) == (("m1", "m2", "m3"), 3.0, T0, T0 + 2 * S)
    assert "Outage at feeder-1: 3 customers without supply" in third.message
    assert [a.id for a in engine.active()] == ["outage:feeder-1"]

    # A silent meter in an outage is explained by it, not a stale device.
    periods = {"m1": 10.0, "m2": 10.0, "m3": 10.0}
    silent = ObservedState(last_seen_ns=dict.fromkeys(periods, T0 - 100 * S), expected_period_s=periods)
    assert engine.evaluate(T0 + 3 * S, silent) == []

    assert engine.restored("m1", T0 + 10 * S)[0].alarm.devices == ("m2", "m3")
    assert engine.restored("m1", T0 + 11 * S) == []
    # m3's restore notice is lost, but it sends data again: that restores it too.
    seen = {"m1": T0 + 12 * S, "m2": T0 - 100 * S, "m3": T0 + 12 * S}
    back = engine.evaluate(T0 + 13 * S, ObservedState(last_seen_ns=seen))
    assert kinds(back) == [("updated", "outage:feeder-1")] and back[0].alarm.devices == ("m2",)
    end = engine.restored("m2", T0 + 20 * S)[0].alarm
    assert (end.state, end.cleared_ns, end.raised_ns, end.devices) == (AlarmState.CLEARED, T0 + 20 * S, T0, ())
    again = engine.last_gasp("m1", "b7", T0 + 30 * S)
    assert kinds(again) == [("raised", "outage:feeder-1")] and again[0].alarm.raised_ns == T0 + 30 * S


def test_large_outage_is_critical_and_a_meter_moves_between_outages() -> None:
    engine = AlarmEngine(AlarmSettings(outage_critical_meters=2))
    assert engine.last_gasp("m1", "b1", T0)[0].alarm.severity is Severity.MAJOR
    assert engine.last_gasp("m2", "b1", T0 + S)[0].alarm.severity is Severity.CRITICAL
    moved = engine.last_gasp("m2", "b2", T0 + 2 * S)  # re-homed after a switching action
    assert kinds(moved) == [("updated", "outage:b1"), ("raised", "outage:b2")]
    assert moved[0].alarm.devices == ("m1",) and moved[0].alarm.severity is Severity.MAJOR


# ---------------------------------------------------------------- bad data and frequency
def test_bad_data_suspect_raises_and_clears_after_it_stays_away() -> None:
    engine = AlarmEngine()  # |r| >= 3, cleared after 3 cycles without it
    suspects = [("line-3", "TotW", -5.2), ("bus-4", "PhV", 2.0)]
    first = engine.evaluate(T0, ObservedState(suspects=suspects))
    assert kinds(first) == [("raised", "bad-data:line-3:TotW")]
    assert (first[0].alarm.source, first[0].alarm.value, first[0].alarm.limit) == ("line-3", 5.2, 3.0)
    assert engine.evaluate(T0 + S, ObservedState()) == []
    assert engine.evaluate(T0 + 2 * S, ObservedState(suspects=[("line-3", "TotW", 5.0)])) == []  # back: count reset
    assert engine.evaluate(T0 + 3 * S, ObservedState()) == []
    assert engine.evaluate(T0 + 4 * S, ObservedState()) == []
    assert kinds(engine.evaluate(T0 + 5 * S, ObservedState())) == [("cleared", "bad-data:line-3:TotW")]


def test_frequency_band_both_sides() -> None:
    engine = AlarmEngine()

    def f(now: int, hz: float) -> list[AlarmChange]:
        return engine.evaluate(T0 + now * S, ObservedState(frequency_hz={"pmu-1": hz}))

    assert f(0, 50.0) == []
    high = f(1, 50.6)[0].alarm
    assert (high.id, high.severity, high.limit) == ("frequency:pmu-1", Severity.MAJOR, 50.5)
    assert "above band: 50.60 Hz (limit 50.50 Hz)" in high.message
    assert f(2, 52.1)[0].alarm.severity is Severity.CRITICAL
    assert f(3, 50.49)[0].alarm.severity is Severity.MAJOR  # inside the 0.02 Hz deadband of 50.5
    assert engine.evaluate(T0 + 4 * S, ObservedState(frequency_hz={"pmu-1": float("nan")})) == []  # no reading
    assert kinds(f(5, 50.47)) == [("cleared", "frequency:pmu-1")]
    assert f(6, 49.4)[0].alarm.limit == 49.5
    flip = f(7, 50.6)  # the other side of the band: a new instance of the same id
    assert [c.change for c in flip] == [ChangeKind.CLEARED, ChangeKind.RAISED]
    assert [a.value for a in engine.active()] == [50.6]


# ---------------------------------------------------------------- restart
def test_restore_rebuilds_active_alarms_and_acknowledgements() -> None:
    log: list[StoredEvent] = []
    engine = AlarmEngine(on_change=lambda changes: log.extend(c.to_event() for c in changes))
    state = ObservedState(bus_ids=["b1", "b2"], v_pu=np.array([1.12, 0.95]), branch_ids=["l1"], loading=np.array([1.1]))
    engine.evaluate(T0, state)
    engine.last_gasp("m1", "b9", T0 + S)
    engine.acknowledge("voltage-high:b1", "alice", T0 + 2 * S)
    engine.evaluate(T0 + 3 * S, ObservedState(branch_ids=["l1"], loading=np.array([0.5])))
    assert {e.kind for e in log} == {"alarm"}
    assert [e.severity for e in log if e.data and e.data["change"] == "cleared"] == ["info"]
    stored = [  # what a historian gives back: data went through JSON
        StoredEvent(e.ts_ns, e.kind, e.source, e.message, e.severity, json.loads(json.dumps(e.data))) for e in log
    ]
    stored.append(StoredEvent(T0, "device-online", "m1", "online"))

    fresh = AlarmEngine()
    assert fresh.restore(stored) == 2
    assert fresh.active() == engine.active()
    assert fresh.active()[0].acked_by == "alice"
    assert [a.id for a in fresh.all()] == [a.id for a in engine.all()]
    # Hysteresis and outage membership carry over: 1.097 pu holds, m1's restore notice clears the outage.
    held = fresh.evaluate(T0 + 4 * S, ObservedState(bus_ids=["b1"], v_pu=np.array([1.097])))
    assert kinds(held) == [("updated", "voltage-high:b1")] and held[0].alarm.state is AlarmState.ACTIVE
    assert (held[0].alarm.raised_ns, held[0].alarm.acked_by) == (T0, "alice")
    assert kinds(fresh.restored("m1", T0 + 5 * S)) == [("cleared", "outage:b9")]
    with pytest.raises(GridmeshError, match="fresh engine"):
        fresh.restore(stored)


def test_restore_takes_the_latest_record_of_each_instance() -> None:
    engine = AlarmEngine()
    changes = engine.evaluate(T0, buses(1.12)) + engine.evaluate(T0 + S, buses(1.2))
    events = [c.to_event() for c in reversed(changes)]  # log order scrambled; timestamps decide
    [alarm] = alarms_from_events(events)
    assert (alarm.severity, alarm.updated_ns) == (Severity.CRITICAL, T0 + S)


# ---------------------------------------------------------------- a whole grid
def test_large_grid_alarms_exactly_the_violating_elements() -> None:
    n_bus, n_branch = 5_479, 5_500
    bus_ids = np.array([f"bus-{i}" for i in range(n_bus)])
    v = np.full(n_bus, 1.0)
    expected = {}
    for i in (10, 2000, 5478):
        v[i] = 1.12
        expected[f"voltage-high:bus-{i}"] = Severity.MAJOR
    v[77] = 1.2
    expected["voltage-high:bus-77"] = Severity.CRITICAL
    for i in (5, 4000):
        v[i] = 0.88
        expected[f"voltage-low:bus-{i}"] = Severity.MAJOR
    v[123] = 0.8
    expected["voltage-low:bus-123"] = Severity.CRITICAL
    v[50], v[51] = 1.10, 0.90  # on the limit is inside the band
    v[300:311] = np.nan  # de-energised
    loading = np.full(n_branch, 0.5)
    loading[[1, 2, 3, 4]] = [0.95, 1.05, 1.6, 0.9]
    expected |= {"overload:br-1": Severity.WARNING, "overload:br-2": Severity.MAJOR, "overload:br-3": Severity.CRITICAL}
    branch_ids = [f"br-{i}" for i in range(n_branch)]

    engine = AlarmEngine()
    changes = engine.evaluate(T0, ObservedState(bus_ids=bus_ids, v_pu=v, branch_ids=branch_ids, loading=loading))
    assert {c.alarm.id: c.alarm.severity for c in changes} == expected
    assert {c.change for c in changes} == {ChangeKind.RAISED}
    assert len(engine.active()) == len(expected)
    repeat = ObservedState(bus_ids=bus_ids, v_pu=v.copy(), branch_ids=branch_ids, loading=loading)
    assert engine.evaluate(T0 + 5 * S, repeat) == []
    v[2000] = 1.0
    loading[3] = 0.5
    after = engine.evaluate(T0 + 10 * S, ObservedState(bus_ids=bus_ids, v_pu=v, branch_ids=branch_ids, loading=loading))
    assert kinds(after) == [("cleared", "voltage-high:bus-2000"), ("cleared", "overload:br-3")]
