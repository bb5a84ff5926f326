"""Charging profiles: plans → OCPP periods in watts, and the limit a station applies at a given instant
(worked by hand from the profile's periods)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridmesh.adapters.ocpp.profiles import limit_kw, parse_profile, plan_periods

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _profile(purpose="TxDefaultProfile", level=0, kind="Absolute", unit="W", periods=((0, 11000),), **schedule):
    return {
        "id": level + 10,
        "stack_level": level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": [
            {
                "id": 1,
                "charging_rate_unit": unit,
                "start_schedule": T0.isoformat(),
                "charging_schedule_period": [{"start_period": s, "limit": v} for s, v in periods],
                **schedule,
            }
        ],
    }


def test_plans_become_watt_periods():
    assert plan_periods("cp", 3.7) == ((0, 3700.0),)
    assert plan_periods("cp", [(0, 11), (600, 4.2)]) == ((0, 11000.0), (600, 4200.0))
    for bad, why in (([(60, 3.0)], "second 0"), ([(0, 3.0), (0, 2.0)], "increase"), (-1.0, "≥ 0")):
        with pytest.raises(ValueError, match=f"plan for cp7: .*{why}"):
            plan_periods("cp7", bad)


def test_limit_follows_the_period_in_force():
    p = parse_profile(_profile(periods=((0, 11000), (600, 4000), (1200, 0)), duration=1800), T0)
    at = [limit_kw([p], T0 + timedelta(seconds=s)) for s in (-1, 0, 599, 600, 1199, 1200, 1799, 1800)]
    assert at == [None, 11.0, 11.0, 4.0, 4.0, 0.0, 0.0, None]


def test_amperes_become_watts_with_the_phases():
    p = parse_profile(_profile(unit="A", periods=((0, 16),)), T0)
    assert limit_kw([p], T0) == pytest.approx(16 * 230 * 3 / 1000)  # 11.04 kW on three phases
    one_phase = _profile(unit="A")
    one_phase["charging_schedule"][0]["charging_schedule_period"] = [
        {"start_period": 0, "limit": 10, "number_phases": 1}
    ]
    assert limit_kw([parse_profile(one_phase, T0)], T0) == pytest.approx(2.3)


def test_stack_levels_purposes_and_relative_profiles():
    low = parse_profile(_profile(level=0, periods=((0, 9000),)), T0)
    high = parse_profile(_profile(level=2, periods=((0, 6000),)), T0)
    assert limit_kw([low, high], T0) == 6.0  # the higher stack level of a purpose wins, even when higher
    station = parse_profile(_profile("ChargingStationMaxProfile", periods=((0, 5000),)), T0)
    assert limit_kw([low, high, station], T0) == 5.0  # the station maximum caps the transaction's limit
    tx = parse_profile(_profile("TxProfile", periods=((0, 7000),)), T0)
    assert limit_kw([low, tx], T0) == 7.0  # a TxProfile overrules the default one, even when higher
    # A 1.6 profile (one schedule, not a list), relative: counted from when it was received.
    v16 = {
        "charging_profile_id": 3,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": {
            "charging_rate_unit": "W",
            "charging_schedule_period": [{"start_period": 0, "limit": 1500}],
        },
    }
    received = T0 + timedelta(hours=1)
    rel = parse_profile(v16, received)
    assert limit_kw([rel], T0) is None and limit_kw([rel], received) == 1.5
    with pytest.raises(ValueError, match="rate unit"):
        parse_profile(_profile(unit="kW"), T0)
