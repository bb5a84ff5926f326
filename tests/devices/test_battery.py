"""Battery fleet: hand-computed energy books and limits."""

import numpy as np
import pytest

from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.elements import Battery


def fleet(**kwargs: float) -> BatteryFleet:
    params = {
        "id": "b",
        "bus": "x",
        "e_kwh": 100.0,
        "p_kw": 50.0,
        "eta_charge": 0.9,
        "eta_discharge": 0.8,
        "soc_min": 0.1,
        "soc_max": 0.9,
        "soc_init": 0.5,
    } | kwargs
    return BatteryFleet.of([Battery.model_validate(params)])


def test_charging_stores_eta_times_energy() -> None:
    f = fleet()
    p = f.step(np.array([-20.0]), dt_h=1.0)  # charge 20 kW for an hour
    assert p[0] == pytest.approx(-20.0)
    assert f.soc[0] == pytest.approx(0.5 + 20 * 0.9 / 100)


def test_discharging_draws_energy_over_eta() -> None:
    f = fleet()
    f.step(np.array([16.0]), dt_h=0.5)  # 8 kWh delivered costs 10 kWh stored
    assert f.soc[0] == pytest.approx(0.5 - 10 / 100)


def test_power_rating_and_soc_window_clamp_requests() -> None:
    f = fleet(soc_init=0.85)
    p = f.step(np.array([-500.0]), dt_h=1.0)
    # room to soc_max: 5 kWh stored = 5/0.9 kWh drawn; rating 50 kW is not binding
    assert p[0] == pytest.approx(-5 / 0.9)
    assert f.soc[0] == pytest.approx(0.9)
    p = f.step(np.array([-10.0]), dt_h=1.0)
    assert p[0] == pytest.approx(0.0)
    g = fleet(soc_init=0.5)
    assert g.step(np.array([500.0]), dt_h=0.25)[0] == pytest.approx(50.0)


def test_nan_request_means_idle() -> None:
    f = fleet()
    assert f.step(np.array([np.nan]), dt_h=1.0)[0] == 0.0
    assert f.soc[0] == 0.5


def test_window_run_keeps_books_closed() -> None:
    f = fleet()
    rng = np.random.default_rng(1)
    requests = rng.uniform(-80, 80, size=(500, 1))
    power, soc = f.run(requests, dt_h=0.25)
    charged = np.clip(-power, 0, None).sum() * 0.25
    discharged = np.clip(power, 0, None).sum() * 0.25
    assert (soc[-1, 0] - 0.5) * 100 == pytest.approx(charged * 0.9 - discharged / 0.8, abs=1e-9)
    assert soc.min() >= 0.1 - 1e-12
    assert soc.max() <= 0.9 + 1e-12
