"""The SunSpec client against the simulated device: scan, read, setpoints, refusals, offline and reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridmesh.adapters.modbus import (
    NotSunSpec,
    SetpointRefused,
    SimulatedDer,
    SimulatedSunSpecServer,
    SunSpecClient,
    SunSpecEndpoint,
    SunSpecOffline,
)
from gridmesh.adapters.modbus.sunspec_map import CONTROLS, STORAGE, Value

pytestmark = pytest.mark.anyio


class CountingDer(SimulatedDer):
    """A simulated device that counts the writes reaching it."""

    writes = 0

    def write(self, model: int, values: Mapping[str, Value]) -> str:
        self.writes += 1
        return super().write(model, values)


def endpoint(server: SimulatedSunSpecServer, unit: int = 1, timeout_s: float = 2.0) -> SunSpecEndpoint:
    return SunSpecEndpoint("127.0.0.1", server.port, unit, timeout_s)


async def test_scan_finds_the_model_chain_at_hand_computed_addresses(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server, SunSpecClient(endpoint(server)) as client:
        # SunS at 40000-40001; each model takes L + 2 registers: 1 (66), 103 (50), 120 (26), 123 (24).
        assert {m.id: (m.address, m.length) for m in client.models.values()} == {
            1: (40002, 66),
            103: (40070, 50),
            120: (40122, 26),
            123: (40150, 24),
        }
        ratings = await client.ratings()
    assert (ratings.w_max, ratings.var_max, ratings.pf_min, ratings.w_charge_max) == (10_000.0, 4_400.0, 0.8, None)


async def test_curtailment_limit_is_followed_by_the_device(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server, SunSpecClient(endpoint(server)) as client:
        await client.set_active_power_limit(4_000.0)  # 40 % of 10 kW
        controls = await client.read(CONTROLS)
        assert (controls["WMaxLimPct"], controls["WMaxLim_Ena"]) == (40.0, 1)
        assert pv.active_power_w() == 4_000.0
        assert (await client.read(103))["W"] == 4_000.0
        pv.set_available(3_000.0)  # less sun than the limit: the limit does not bind
        assert (await client.read(103))["W"] == 3_000.0
        pv.set_available(9_000.0)
        await client.set_active_power_limit(None)
        assert (await client.read(103))["W"] == 9_000.0


async def test_reactive_power_setpoint(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server, SunSpecClient(endpoint(server)) as client:
        await client.set_reactive_power(-2_000.0)  # −20 % of WRtg
        assert (await client.read(CONTROLS))["VArWMaxPct"] == -20.0
        assert (await client.read(103))["VAr"] == -2_000.0
        with pytest.raises(SetpointRefused, match=r"reactive power 5000 var outside ±4400 var"):
            await client.set_reactive_power(5_000.0)


async def test_power_factor_setpoint(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server, SunSpecClient(endpoint(server)) as client:
        await client.set_power_factor(0.9)
        assert (await client.read(CONTROLS))["OutPFSet"] == 0.9
        # Q = P·tan(acos 0.9) = 7000 · 0.4359 / 0.9 = 3390.2 var (VAr_SF 0 for a 4.4 kvar rating).
        assert (await client.read(103))["VAr"] == 3_390.0
        with pytest.raises(SetpointRefused, match=r"power factor 0.7 outside ±0.8…1"):
            await client.set_power_factor(0.7)
        await client.set_power_factor(None)
        assert (await client.read(103))["VAr"] == 0.0


async def test_battery_setpoints_charge_and_discharge(battery: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({3: battery}) as server, SunSpecClient(endpoint(server, unit=3)) as client:
        await client.set_battery_power(-2_000.0)  # charge 2 kW: InWRte = 2000 / 4000 = 50 %
        storage = await client.read(STORAGE)
        assert (storage["StorCtl_Mod"], storage["InWRte"], storage["OutWRte"]) == (1, 50.0, 0.0)
        assert battery.active_power_w() == -2_000.0
        battery.advance(1_800)  # 2 kW for half an hour into 10 kWh: 60 % + 10 % = 70 %
        assert (await client.read(STORAGE))["ChaState"] == 70.0
        await client.set_battery_power(1_250.0)  # discharge: OutWRte = 1250 / 5000 = 25 %
        storage = await client.read(STORAGE)
        assert (storage["StorCtl_Mod"], storage["OutWRte"]) == (2, 25.0)
        assert (await client.read(103))["W"] == 1_250.0
        await client.set_battery_power(0.0)
        assert battery.active_power_w() == 0.0
        await client.set_battery_power(None)
        assert (await client.read(STORAGE))["StorCtl_Mod"] == 0


async def test_out_of_range_setpoints_are_refused_before_any_write(battery: SimulatedDer, pv: SimulatedDer) -> None:
    counting = CountingDer(battery.rating, soc_pct=60.0)
    async with SimulatedSunSpecServer({1: counting, 2: pv}) as server:
        async with SunSpecClient(endpoint(server, unit=1)) as client:
            with pytest.raises(SetpointRefused, match=r"battery setpoint -5000 W outside −4000…5000 W"):
                await client.set_battery_power(-5_000.0)
            with pytest.raises(SetpointRefused, match=r"active power limit 6000 W outside 0…5000 W"):
                await client.set_active_power_limit(6_000.0)
            with pytest.raises(SetpointRefused, match=r"point ChaState is read-only"):
                await client.write(STORAGE, {"ChaState": 10.0})
            with pytest.raises(SetpointRefused, match=r"point InWRte \(int16\): 400 → raw 40000 outside"):
                await client.write(STORAGE, {"InWRte": 400.0})  # does not fit at InOutWRte_SF = -2
            assert counting.writes == 0
            assert (await client.read(STORAGE))["StorCtl_Mod"] == 0
        async with SunSpecClient(endpoint(server, unit=2)) as client:
            with pytest.raises(NotSunSpec, match="no storage model 124"):
                await client.set_battery_power(1_000.0)


async def test_offline_device_gives_a_clear_error_then_the_client_reconnects(pv: SimulatedDer) -> None:
    server = SimulatedSunSpecServer({1: pv})
    await server.start()
    client = SunSpecClient(endpoint(server, timeout_s=2.0))
    try:
        assert (await client.read(103))["W"] == 7_000.0
        await server.stop()
        with pytest.raises(
            SunSpecOffline, match=rf"SunSpec device 127.0.0.1:{server.port}/1: (cannot connect|no answer)"
        ):
            await client.read(103)
        with pytest.raises(SunSpecOffline, match="cannot connect"):
            await client.read(103)
        assert not client.connected
        pv.set_available(5_000.0)
        await server.start()  # same port: the device is back
        assert (await client.read(103))["W"] == 5_000.0
        assert client.connected
    finally:
        client.close()
        await server.stop()


async def test_a_device_that_never_answers_times_out_clearly() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1_000_000)  # swallow the request, answer nothing
        writer.close()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        client = SunSpecClient(SunSpecEndpoint("127.0.0.1", port, 1, timeout_s=0.2))
        with pytest.raises(SunSpecOffline, match="no answer to read of 2 registers at 40000"):
            await client.connect()
        assert not client.connected
    finally:
        listener.close()


async def test_a_modbus_device_without_sunspec_is_named_as_such() -> None:
    blocks = [SimData(a, values=[0] * 4, datatype=DataType.REGISTERS) for a in (0, 40000, 50000)]
    server = ModbusTcpServer([SimDevice(id=1, simdata=blocks)], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    listener: Any = server.transport
    port = listener.sockets[0].getsockname()[1]
    try:
        client = SunSpecClient(SunSpecEndpoint("127.0.0.1", port, 1))
        with pytest.raises(NotSunSpec, match="no 'SunS' marker at 40000, 0, 50000"):
            await client.connect()
        assert not client.connected
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def test_endpoint_parsing() -> None:
    assert SunSpecEndpoint.parse("192.0.2.10:1502/3") == SunSpecEndpoint("192.0.2.10", 1502, 3)
    assert SunSpecEndpoint.parse("inverter.local") == SunSpecEndpoint("inverter.local", 502, 1)
    assert str(SunSpecEndpoint.parse("h:5020")) == "h:5020/1"
    for bad in ("h:0", "h:port", ":502", "h:502/300"):
        with pytest.raises(ValueError, match="SunSpec endpoint"):
            SunSpecEndpoint.parse(bad)
