"""Simulated SunSpec devices for the Modbus adapter's tests (asyncio through anyio's pytest plugin)."""

from __future__ import annotations

import pytest

from gridmesh.adapters.modbus import DerKind, DerRating, SimulatedDer

PV_RATING = DerRating(DerKind.PV, w_max=10_000.0, var_max=4_400.0, serial="PV-1")
BATTERY_RATING = DerRating(
    DerKind.BATTERY,
    w_max=5_000.0,
    var_max=3_000.0,
    capacity_wh=10_000.0,
    w_charge_max=4_000.0,
    w_discharge_max=5_000.0,
    serial="BAT-1",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pv() -> SimulatedDer:
    """A 10 kW PV inverter with 7 kW available."""
    return SimulatedDer(PV_RATING, available_w=7_000.0)


@pytest.fixture
def battery() -> SimulatedDer:
    """A 5 kW / 10 kWh battery (charges at up to 4 kW) at 60 % state of charge."""
    return SimulatedDer(BATTERY_RATING, soc_pct=60.0)
