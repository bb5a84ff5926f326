"""SunSpec points as gridmesh readings, and gridmesh set-power commands as SunSpec writes."""

from __future__ import annotations

import pytest

from gridmesh.adapters.modbus import SimulatedDer, SimulatedSunSpecServer, SunSpecClient, SunSpecDevice, SunSpecEndpoint
from gridmesh.adapters.modbus.bridge import readings_of
from gridmesh.adapters.modbus.sunspec_map import Value
from gridmesh.telemetry.catalogue import REPORTS, DeviceKind, DeviceSpec
from gridmesh.telemetry.decode import ReadingColumns
from gridmesh.telemetry.envelope import Envelope, Reading
from gridmesh.telemetry.quantities import Phase

pytestmark = pytest.mark.anyio


def spec(kind: DeviceKind) -> DeviceSpec:
    return DeviceSpec(f"{kind.value}-x", kind, "x", "bus-1", "grid", REPORTS[kind], controllable=True)


def test_readings_from_decoded_points_hand_case() -> None:
    models: dict[int, dict[str, Value]] = {
        103: {"W": 4_000.0, "VAr": -500.0, "VA": None, "Hz": 50.02, "PhVphA": 229.0, "PhVphB": 231.0, "PhVphC": None},
        120: {"WRtg": 5_000.0, "MaxDisChaRte": 5_000.0},
        124: {"ChaState": 61.5, "StorCtl_Mod": 1, "InWRte": 25.0, "OutWRte": 0.0, "WChaMax": 4_000.0},
    }
    got = {(r.q, r.ph): r.v for r in readings_of(models)}
    assert got == {
        ("TotW", Phase.TOTAL): 4_000.0,
        ("TotVAr", Phase.TOTAL): -500.0,
        ("Hz", Phase.TOTAL): 50.02,
        ("PhV", Phase.TOTAL): 230.0,  # mean of the two implemented phases
        ("PhV", Phase.A): 229.0,
        ("PhV", Phase.B): 231.0,
        ("SocPct", Phase.TOTAL): 61.5,
        ("WSpt", Phase.TOTAL): -1_000.0,  # charging at 25 % of 4 kW
    }


async def test_poll_yields_the_catalogue_quantities_that_ingest_accepts(battery: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: battery}) as server:
        device = SunSpecDevice(spec(DeviceKind.BATTERY), SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port)))
        assert await device.execute("set-power", 2_500.0) == ""
        readings = await device.poll()
        device.client.close()
    by_quantity = {r.q: r.v for r in readings if r.ph is Phase.TOTAL}
    assert set(REPORTS[DeviceKind.BATTERY]) <= set(by_quantity)
    assert by_quantity["TotW"] == 2_500.0
    assert by_quantity["WSpt"] == 2_500.0
    assert by_quantity["SocPct"] == 60.0
    assert by_quantity["PhV"] == 230.0
    assert by_quantity["Hz"] == 50.0
    envelope = Envelope("battery-x", 1, 1, readings)
    assert ReadingColumns.of([envelope]).problems() == [None]


async def test_commands_map_to_curtailment_and_release(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server:
        device = SunSpecDevice(spec(DeviceKind.INVERTER), SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port)))
        assert await device.execute("set-power", 2_000.0) == ""
        assert pv.active_power_w() == 2_000.0
        refused = await device.execute("set-power", 12_000.0)
        assert "active power limit 12000 W outside 0…10000 W" in refused
        assert pv.active_power_w() == 2_000.0
        assert "unknown action 'open'" in await device.execute("open")
        assert await device.execute("release") == ""
        assert pv.active_power_w() == 7_000.0
        assert Reading("TotW", 7_000.0) in await device.poll()
        device.client.close()
        await server.stop()
        assert "cannot connect" in await device.execute("set-power", 1_000.0)


def test_only_inverters_and_batteries_are_served() -> None:
    with pytest.raises(ValueError, match="not a meter"):
        SunSpecDevice(spec(DeviceKind.METER), SunSpecClient(SunSpecEndpoint("127.0.0.1")))
