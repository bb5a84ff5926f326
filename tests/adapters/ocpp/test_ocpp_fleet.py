"""Fleet helpers: EV sessions from gridmesh's seeded model become station plans; versions are checked."""

from __future__ import annotations

import pytest

from gridmesh.adapters.ocpp import StationConfig, make_station, sessions_from_ev
from gridmesh.devices.ev import draw_sessions
from gridmesh.model.elements import EvCharger


def test_sessions_from_the_ev_model():
    chargers = [
        EvCharger(id="home", bus="b", p_kw=11, usage="home", sessions_per_day=2),
        EvCharger(id="work", bus="b", p_kw=22, connectors=2, usage="work"),
    ]
    plans = sessions_from_ev(chargers, hours=48, seed=3)
    drawn = draw_sessions(chargers, steps=192, dt_h=0.25, seed=3)
    assert sum(len(p) for p in plans.values()) == len(drawn) > 0
    first = plans[chargers[int(drawn.charger[0])].id][0]
    assert first.arrival_s == drawn.arrival[0] * 900.0  # 15-minute steps → simulated seconds
    assert first.departure_s == drawn.departure[0] * 900.0
    assert first.energy_kwh == pytest.approx(drawn.energy_kwh[0])
    for plan in (p for ps in plans.values() for p in ps):
        assert 0 <= plan.arrival_s < plan.departure_s <= 48 * 3600


def test_unknown_versions_are_named():
    with pytest.raises(ValueError, match=r"cp-9: OCPP version '2\.1' not simulated"):
        make_station("2.1", StationConfig("cp-9", "ws://127.0.0.1:1/ocpp/"))
