"""EV sessions: reproducible draws and energy delivered by uncontrolled charging."""

import numpy as np
import pytest

from gridmesh.devices.ev import Sessions, draw_sessions, uncontrolled_power
from gridmesh.model.elements import EvCharger

CHARGERS = [
    EvCharger(id="home", bus="b", p_kw=11.0, usage="home"),
    EvCharger(id="dc", bus="b", p_kw=50.0, connectors=2, usage="public", sessions_per_day=4, energy_kwh=25),
]


def test_draw_is_reproducible_and_within_study() -> None:
    a = draw_sessions(CHARGERS, steps=96 * 14, dt_h=0.25, seed=3)
    b = draw_sessions(CHARGERS, steps=96 * 14, dt_h=0.25, seed=3)
    assert np.array_equal(a.arrival, b.arrival)
    assert np.array_equal(a.energy_kwh, b.energy_kwh)
    assert len(a) > 14
    assert (a.departure > a.arrival).all()
    assert a.departure.max() <= 96 * 14


def test_hand_made_session_profile() -> None:
    # 11 kW for 20 kWh at 15 min: 7 full steps (19.25 kWh) then 3 kW for the last 0.75 kWh
    s = Sessions(np.array([0]), np.array([4]), np.array([40]), np.array([20.0]))
    p = uncontrolled_power(s, CHARGERS, first=0, steps=20, dt_h=0.25)
    assert p[4:11, 0] == pytest.approx([11.0] * 7)
    assert p[11, 0] == pytest.approx(3.0)
    assert p[:4].sum() == 0
    assert p[12:].sum() == 0


def test_departure_cuts_charging_short() -> None:
    s = Sessions(np.array([0]), np.array([0]), np.array([2]), np.array([20.0]))
    p = uncontrolled_power(s, CHARGERS, first=0, steps=8, dt_h=0.25)
    assert p[:, 0].sum() * 0.25 == pytest.approx(2 * 11 * 0.25)


def test_windows_add_up_to_the_whole() -> None:
    sessions = draw_sessions(CHARGERS, steps=96 * 7, dt_h=0.25, seed=5)
    whole = uncontrolled_power(sessions, CHARGERS, first=0, steps=96 * 7, dt_h=0.25)
    parts = np.vstack(
        [uncontrolled_power(sessions, CHARGERS, first=k, steps=96, dt_h=0.25) for k in range(0, 96 * 7, 96)]
    )
    assert np.allclose(whole, parts)
    delivered = whole.sum() * 0.25
    requested = np.minimum(
        sessions.energy_kwh,
        np.array([c.p_kw for c in CHARGERS])[sessions.charger] * (sessions.departure - sessions.arrival) * 0.25,
    ).sum()
    assert delivered == pytest.approx(requested)
