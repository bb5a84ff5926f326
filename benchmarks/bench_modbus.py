"""SunSpec over Modbus TCP on loopback: how many devices one gateway process can poll, and setpoint latency.

``--devices`` simulated batteries (models 1, 103, 120, 123, 124) on one pymodbus server, one
:class:`SunSpecClient` each, polled concurrently for ``--rounds`` rounds; then ``--writes`` battery
setpoints (checked against the cached nameplate; model 124 read for its scale factors, then written). For
reference, pysunspec2's synchronous client reads the same inverter model from the same server. Server and
clients share this process and its cores.

    .venv/bin/python benchmarks/bench_modbus.py [--devices 20] [--rounds 50] [--writes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from gridmesh.adapters.modbus import (
    DerKind,
    DerRating,
    SimulatedDer,
    SimulatedSunSpecServer,
    SunSpecClient,
    SunSpecDevice,
    SunSpecEndpoint,
)
from gridmesh.telemetry.catalogue import REPORTS, DeviceKind, DeviceSpec

RATING = DerRating(
    DerKind.BATTERY, 5_000.0, 3_000.0, capacity_wh=10_000.0, w_charge_max=4_000.0, w_discharge_max=5_000.0
)


def pysunspec2_reads(port: int, n: int) -> float:
    """Seconds per read of model 103 by pysunspec2 (after its scan)."""
    device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=5)
    device.scan()
    began = time.perf_counter()
    for _ in range(n):
        device.models[103][0].read()
    took = (time.perf_counter() - began) / n
    device.close()
    return took


async def main(devices: int, rounds: int, writes: int) -> None:
    ders = {unit: SimulatedDer(RATING, soc_pct=50.0) for unit in range(1, devices + 1)}
    async with SimulatedSunSpecServer(ders) as server:
        fleet = [
            SunSpecDevice(
                DeviceSpec(f"battery-{u}", DeviceKind.BATTERY, str(u), "b", "grid", REPORTS[DeviceKind.BATTERY], True),
                SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, u, timeout_s=5.0)),
            )
            for u in ders
        ]
        began = time.perf_counter()
        await asyncio.gather(*(d.client.connect() for d in fleet))
        scan_s = time.perf_counter() - began
        round_s = []
        for _ in range(rounds):
            began = time.perf_counter()
            await asyncio.gather(*(d.poll() for d in fleet))
            round_s.append(time.perf_counter() - began)
        one = fleet[0]
        write_s = []
        for i in range(writes):
            began = time.perf_counter()
            reason = await one.execute("set-power", float(i % 9 - 4) * 500.0)
            write_s.append(time.perf_counter() - began)
            assert not reason, reason
        poll_one_s = []
        for _ in range(rounds):
            began = time.perf_counter()
            await one.client.read(103)
            poll_one_s.append(time.perf_counter() - began)
        reference_s = await asyncio.to_thread(pysunspec2_reads, server.port, rounds)
        for d in fleet:
            d.client.close()
    rounds_arr, writes_arr = np.array(round_s), np.array(write_s)
    print(f"devices {devices}: scan of all {scan_s * 1e3:.1f} ms")
    print(
        f"poll round (3 models x {devices} devices): p50 {np.median(rounds_arr) * 1e3:.1f} ms, "
        f"p99 {np.quantile(rounds_arr, 0.99) * 1e3:.1f} ms → {devices / np.median(rounds_arr):.0f} device polls/s"
    )
    print(
        f"battery setpoint (read of 124 for its scale factors, 2 writes): p50 {np.median(writes_arr) * 1e3:.2f} ms, "
        f"p99 {np.quantile(writes_arr, 0.99) * 1e3:.2f} ms"
    )
    ours = float(np.median(poll_one_s))
    print(
        f"model 103 read: gridmesh (pymodbus asyncio) {ours * 1e3:.2f} ms, pysunspec2 (sync) "
        f"{reference_s * 1e3:.2f} ms, ratio {ours / reference_s:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.devices, args.rounds, args.writes))
