"""DR event checks, the peak trigger, VEN-side parsing and opt policies (pure logic, hand-computed cases)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from gridmesh.adapters.openadr.events import DrEvent, DrSignal, EventRefused, check_event, events_for_peaks
from gridmesh.adapters.openadr.ven import CriticalShareOptOut, DrInstruction, RandomOptOut, instruction_from
from gridmesh.model.elements import Bus, Load, Site
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _check(**overrides: object) -> DrEvent:
    args: dict[str, object] = {
        "event_id": "e1", "signal": DrSignal.LOAD_DISPATCH, "start": NOW + HOUR, "duration": HOUR,
        "levels": {"a": 5.0, "b": 3.0},
    }
    args.update(overrides)
    return check_event(**args, now=NOW, known_vens={"a", "b"})  # type: ignore[arg-type]


def test_a_valid_event_is_checked_and_totals_its_request() -> None:
    event = _check()
    assert event.end == NOW + 2 * HOUR
    assert event.requested_kw == 8.0
    price = _check(signal="ELECTRICITY_PRICE", levels={"a": 0.31})
    assert price.requested_kw is None
    assert DrSignal.SIMPLE.signal_type == "level"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": NOW - dt.timedelta(seconds=1)}, "starts in the past"),
        ({"start": dt.datetime(2026, 6, 1, 13)}, "no time zone"),
        ({"duration": dt.timedelta(0)}, "duration must be positive"),
        ({"duration": -HOUR}, "duration must be positive"),
        ({"levels": {}}, "no VEN chosen"),
        ({"levels": {"a": 1.0, "zz": 1.0}}, "unknown VEN"),
        ({"levels": {"a": -1.0}}, "positive number of kW"),
        ({"levels": {"a": float("nan")}}, "finite"),
        ({"signal": "SIMPLE", "levels": {"a": 4.0}}, "levels 0, 1, 2 or 3"),
        ({"signal": "BID_LOAD"}, "unknown signal"),
    ],
)
def test_bad_events_are_refused_with_the_reason(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(EventRefused, match=message) as caught:
        _check(**overrides)
    assert caught.value.fix  # every refusal says what to do


def test_peak_trigger_covers_each_run_above_the_threshold() -> None:
    index = pd.date_range("2026-06-02 16:00", periods=8, freq="15min", tz="UTC")
    #                 16:00 16:15 16:30 16:45 17:00 17:15 17:30 17:45
    forecast = pd.Series([90, 105, 120, 110, 95, 100, 130, 80], index=index, dtype=float)
    events = events_for_peaks(forecast, 100.0, vens=["a", "b"], weights={"a": 3.0, "b": 1.0})
    assert [(e[1], e[2]) for e in events] == [
        (index[1].to_pydatetime(), dt.timedelta(minutes=45)),  # 16:15–17:00, peak excess 20 kW
        (index[6].to_pydatetime(), dt.timedelta(minutes=15)),  # 17:30–17:45, excess 30 kW (100 is not above)
    ]
    assert events[0][3] == pytest.approx({"a": 15.0, "b": 5.0})
    assert events[1][3] == pytest.approx({"a": 22.5, "b": 7.5})
    assert events[0][0] != events[1][0]
    assert events_for_peaks(forecast, 200.0, vens=["a"]) == []
    assert len(events_for_peaks(forecast, 100.0, vens=["a"], min_shed_kw=25.0)) == 1
    # a run that reaches the end of the forecast
    tail = events_for_peaks(forecast.iloc[:3], 100.0, vens=["a"])
    assert tail[0][2] == dt.timedelta(minutes=30) and tail[0][3] == {"a": 20.0}


def test_peak_trigger_events_pass_the_event_check() -> None:
    index = pd.date_range(NOW + HOUR, periods=4, freq="15min")
    forecast = pd.Series([1.0, 9.0, 9.0, 1.0], index=index)
    ((event_id, start, duration, levels),) = events_for_peaks(forecast, 5.0, vens=["a", "b"])
    event = check_event(event_id, DrSignal.LOAD_DISPATCH, start, duration, levels, now=NOW, known_vens={"a", "b"})
    assert event.requested_kw == pytest.approx(4.0)


def test_peak_trigger_refuses_an_irregular_or_naive_forecast() -> None:
    naive = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2026-06-02", periods=3, freq="h"))
    with pytest.raises(EventRefused, match="time-zone aware"):
        events_for_peaks(naive, 1.0, vens=["a"])
    irregular = pd.Series([1.0, 2.0, 3.0], index=pd.DatetimeIndex(["2026-06-02 00:00", "2026-06-02 01:00",
                                                                   "2026-06-02 03:00"], tz="UTC"))
    with pytest.raises(EventRefused, match="regular"):
        events_for_peaks(irregular, 1.0, vens=["a"])
    with pytest.raises(EventRefused, match="weights"):
        events_for_peaks(naive.tz_localize("UTC"), 1.0, vens=["a"], weights={"a": 0.0})


def _openleadr_event(status: str = "far", name: str = "LOAD_DISPATCH") -> dict[str, object]:
    start = NOW + HOUR
    return {
        "event_descriptor": {"event_id": "e1.0", "modification_number": 0, "event_status": status},
        "event_signals": [{"signal_name": name, "signal_type": "delta",
                           "intervals": [{"dtstart": start, "duration": HOUR, "signal_payload": 2.5}]}],
    }


def test_instruction_from_an_openleadr_event() -> None:
    instruction = instruction_from("a", _openleadr_event())
    assert instruction == DrInstruction("a", "e1.0", DrSignal.LOAD_DISPATCH, NOW + HOUR, NOW + 2 * HOUR, 2.5)
    assert instruction.shed_kw == 2.5
    assert instruction.active_at(NOW + HOUR) and not instruction.active_at(NOW + 2 * HOUR)
    cancelled = instruction_from("a", _openleadr_event(status="cancelled"))
    assert cancelled is not None and cancelled.cancelled and cancelled.shed_kw == 0.0
    assert instruction_from("a", _openleadr_event(name="BID_LOAD")) is None


def test_critical_share_policy_from_a_scenario() -> None:
    network = Network.from_elements([
        Bus(id="b1", vn_kv=0.4), Bus(id="b2", vn_kv=0.4),
        Load(id="hospital", bus="b1", p_kw=8.0, critical=True), Load(id="shop", bus="b1", p_kw=2.0),
        Load(id="pump", bus="b2", p_kw=1.0, critical=True), Load(id="homes", bus="b2", p_kw=9.0),
        Site(id="a", buses=("b1",)), Site(id="b", buses=("b2",)),
    ])
    policy = CriticalShareOptOut.from_scenario(Scenario("s", network), max_share=0.5)
    assert policy.shares == pytest.approx({"a": 0.8, "b": 0.1})
    event = DrInstruction("a", "e", DrSignal.LOAD_DISPATCH, NOW, NOW + HOUR, 1.0)
    assert policy(event) is False
    assert policy(DrInstruction("b", "e", DrSignal.LOAD_DISPATCH, NOW, NOW + HOUR, 1.0)) is True


def test_random_policy_is_seeded() -> None:
    event = DrInstruction("a", "e", DrSignal.SIMPLE, NOW, NOW + HOUR, 1.0)
    draws = RandomOptOut(0.3, seed=7)
    again = [draws(event) for _ in range(2000)]
    replay = RandomOptOut(0.3, seed=7)
    assert [replay(event) for _ in range(2000)] == again
    assert 0.25 < again.count(False) / 2000 < 0.35  # opt-out share ≈ probability
    assert all(RandomOptOut(0.0)(event) for _ in range(50))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RandomOptOut(1.5)
