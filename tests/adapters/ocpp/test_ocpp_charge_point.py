"""The simulated station's power rule, without a network: min(rating, station limit shared by the
connectors charging), worked by hand."""

from __future__ import annotations

from gridmesh.adapters.ocpp import StationConfig, make_station
from gridmesh.adapters.ocpp.charge_point import utc_now
from gridmesh.adapters.ocpp.profiles import parse_profile


def _station_limit(kw: float) -> dict:
    return {
        "id": 1,
        "stack_level": 0,
        "charging_profile_purpose": "ChargingStationMaxProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": [
            {"id": 1, "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": kw * 1000}]}
        ],
    }


def test_station_limit_is_shared_by_the_charging_connectors():
    station = make_station("2.0.1", StationConfig("cp", "ws://127.0.0.1:1/ocpp/", p_max_kw=11.0, connectors=3))

    def powers() -> list[float]:
        return [c.power_kw for c in station.connectors]

    assert station.remote_start("a", 1) and station.remote_start("b", 2)
    assert powers() == [11.0, 11.0, 0.0]
    station.add_profile(parse_profile(_station_limit(15.0), utc_now()))
    assert powers() == [7.5, 7.5, 0.0]  # 15 kW over two cars
    assert station.remote_start("c", None)  # the first free connector: 3
    assert powers() == [5.0, 5.0, 5.0]
    assert not station.remote_start("d", None)  # all taken
    (tx,) = [c.transaction for c in station.connectors if c.number == 2]
    assert station.remote_stop(tx) and not station.remote_stop(tx)
    assert powers() == [7.5, 0.0, 7.5]
    station.add_profile(parse_profile(_station_limit(40.0), utc_now()))  # same id and purpose: replaces
    assert len(station.profiles) == 1 and powers() == [11.0, 0.0, 11.0]  # the rating caps a loose limit
    assert station.clear_profiles(purpose="ChargingStationMaxProfile") and not station.clear_profiles()
    assert powers() == [11.0, 0.0, 11.0]
    assert station.pending > 0  # the events are queued for when it connects
