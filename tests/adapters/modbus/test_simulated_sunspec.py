"""The simulated SunSpec device, checked with pysunspec2's own (independent, synchronous) Modbus client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from gridmesh.adapters.modbus import (
    SimulatedDer,
    SimulatedSunSpecServer,
    SunSpecClient,
    SunSpecDeviceError,
    SunSpecEndpoint,
)
from gridmesh.adapters.modbus.simulated_der import scale_factor_for
from gridmesh.adapters.modbus.sunspec_map import CONTROLS, INVERTER_THREE_PHASE, STORAGE, model_map

pytestmark = pytest.mark.anyio


def pysunspec2_scan(port: int, unit: int) -> dict[int, dict[str, Any]]:
    """pysunspec2's scan and read of every model (blocking: run it in a thread)."""
    device = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=2)
    try:
        device.scan()
        return {mid: models[0].get_dict(computed=True) for mid, models in device.models.items() if isinstance(mid, int)}
    finally:
        device.close()


async def test_pysunspec2_scans_the_device_and_reads_what_the_adapter_reads(
    pv: SimulatedDer, battery: SimulatedDer
) -> None:
    async with SimulatedSunSpecServer({1: pv, 2: battery}) as server:
        for unit, models in ((1, [1, 103, 120, 123]), (2, [1, 103, 120, 123, 124])):
            reference = await asyncio.to_thread(pysunspec2_scan, server.port, unit)
            assert sorted(reference) == models
            async with SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, unit)) as client:
                assert sorted(client.models) == models
                for mid in models:
                    ours = await client.read(mid)
                    theirs = reference[mid]
                    assert {k: ours[k] for k in theirs} == theirs, f"model {mid}"
        assert reference[1]["SN"] == "BAT-1"
        assert reference[124]["ChaState"] == 60.0


async def test_registers_follow_the_device_state(pv: SimulatedDer) -> None:
    async with SimulatedSunSpecServer({1: pv}) as server:
        before = await asyncio.to_thread(pysunspec2_scan, server.port, 1)
        pv.set_available(3_210.0)
        after = await asyncio.to_thread(pysunspec2_scan, server.port, 1)
    assert before[103]["W"] == 7_000
    assert after[103]["W"] == 3_210
    # 3.21 kW at 230 V on three phases: 3210 / 690 = 4.652 A per phase (A_SF -2 for a 10 kW device).
    assert after[103]["AphA"] == pytest.approx(4.65, abs=0.01)


async def test_the_device_refuses_a_bad_write_with_a_modbus_exception(pv: SimulatedDer) -> None:
    async with (
        SimulatedSunSpecServer({1: pv}) as server,
        SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, 1)) as client,
    ):
        with pytest.raises(SunSpecDeviceError, match=r"Modbus exception 3 \(illegal value\)") as refused:
            await client.write(CONTROLS, {"WMaxLimPct": 150.0})
        assert refused.value.code == 3
        assert (await client.read(CONTROLS))["WMaxLimPct"] == 100.0
        raw = AsyncModbusTcpClient("127.0.0.1", port=server.port)
        await raw.connect()
        try:
            w_address = client.models[INVERTER_THREE_PHASE].address + model_map(INVERTER_THREE_PHASE).point("W").offset
            answer = await raw.write_registers(w_address, [1], device_id=1)  # W is read-only
            beyond = await raw.read_holding_registers(40_500, count=2, device_id=1)  # past the end marker
        finally:
            raw.close()
        assert answer.isError() and answer.exception_code == 2
        assert beyond.isError() and beyond.exception_code == 2


def test_battery_state_of_charge_moves_with_its_power(battery: SimulatedDer) -> None:
    assert battery.write(STORAGE, {"OutWRte": 100.0, "StorCtl_Mod": 2}) == ""
    assert battery.active_power_w() == 5_000.0
    battery.advance(36 * 60)  # 5 kW for 0.6 h out of 10 kWh: 60 % − 30 % = 30 %
    assert battery.soc_pct == pytest.approx(30.0)
    battery.advance(3_600)  # empty after another 36 min: stops at 0 %, then delivers nothing
    assert battery.soc_pct == 0.0
    assert battery.active_power_w() == 0.0
    assert "InWRte = 120" in battery.write(STORAGE, {"InWRte": 120.0})


def test_scale_factors_keep_values_inside_a_register() -> None:
    assert scale_factor_for(3_000.0) == -1  # 300000 does not fit at -2, 30000 does at -1
    assert scale_factor_for(5_500.0) == 0  # 55000 does not fit at -1
    assert scale_factor_for(300.0) == -2
    assert scale_factor_for(250_000.0) == 1
