"""The SunSpec gateway on the in-process bus: signed telemetry, signed commands and acks, presence."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import msgspec
import pytest

from gridmesh.adapters.modbus import SimulatedDer, SimulatedSunSpecServer, SunSpecClient, SunSpecDevice, SunSpecEndpoint
from gridmesh.adapters.modbus.gateway import SunSpecGateway, sunspec_devices
from gridmesh.security.keys import CentreKeyring, FieldKeyring, provision_keyrings
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import InProcessBus
from gridmesh.telemetry.catalogue import REPORTS, Catalogue, DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Command, Presence, encode, topic
from support.brokers import wait_for
from support.live import Recorder

pytestmark = pytest.mark.anyio

PV_ID, BATTERY_ID = "inverter-PV_1", "battery-BAT_1"


def spec(device: str, kind: DeviceKind) -> DeviceSpec:
    return DeviceSpec(device, kind, device.split("-", 1)[1], "bus-1", "mg1", REPORTS[kind], controllable=True)


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    bus.close()


@pytest.fixture
def keyrings() -> tuple[FieldKeyring, CentreKeyring]:
    return provision_keyrings([PV_ID, BATTERY_ID])


def command(centre: CentreKeyring, device: str, value: float, seq: int = 1) -> bytes:
    unsigned = Command(device, seq, 1, "set-power", value, expires=0)
    return encode(sign(unsigned, centre.command_secret))


async def test_gateway_publishes_signed_telemetry_and_executes_signed_commands(
    pv: SimulatedDer, battery: SimulatedDer, bus: InProcessBus, keyrings: tuple[FieldKeyring, CentreKeyring]
) -> None:
    field_ring, centre_ring = keyrings
    recorder = Recorder(bus)
    async with SimulatedSunSpecServer({1: pv, 2: battery}) as server:
        devices = [
            SunSpecDevice(
                spec(PV_ID, DeviceKind.INVERTER), SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, 1))
            ),
            SunSpecDevice(
                spec(BATTERY_ID, DeviceKind.BATTERY), SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, 2))
            ),
        ]
        gateway = SunSpecGateway(devices, bus, field_ring, clock=lambda: 1_000)
        report = await gateway.poll()
        assert (report.telemetry, report.offline, report.acks) == (2, 0, 0)

        bus.publish(topic("mg1", PV_ID, "command"), command(centre_ring, PV_ID, 2_500.0, seq=7))
        forged = Command(BATTERY_ID, 8, 1, "set-power", -1_000.0, sig="AAAA")
        bus.publish(topic("mg1", BATTERY_ID, "command"), encode(forged))
        assert bus.drain()
        report = await gateway.poll()
        assert (report.telemetry, report.acks) == (2, 2)
        assert pv.active_power_w() == 2_500.0
        assert battery.active_power_w() == 0.0  # the forged command was not carried out
        for device in devices:
            device.client.close()

    envelopes = recorder.telemetry()
    assert all(verify(e, centre_ring.credentials[e.device]) for e in envelopes)
    last_pv = [e for e in envelopes if e.device == PV_ID][-1]
    assert {r.q: r.v for r in last_pv.readings if r.ph == ""}["TotW"] == 2_500.0
    assert recorder.last_readings(BATTERY_ID)["SocPct"] == 60.0
    assert [e.seq for e in envelopes if e.device == PV_ID] == sorted({e.seq for e in envelopes if e.device == PV_ID})
    acks = {a.device: a for a in recorder.acks()}
    assert all(verify(a, centre_ring.credentials[a.device]) for a in acks.values())
    assert (acks[PV_ID].ok, acks[PV_ID].command_seq) == (True, 7)
    assert (acks[BATTERY_ID].ok, acks[BATTERY_ID].reason) == (False, "bad signature")


async def test_a_device_going_offline_and_back_turns_its_presence(
    pv: SimulatedDer, bus: InProcessBus, keyrings: tuple[FieldKeyring, CentreKeyring]
) -> None:
    recorder = Recorder(bus)
    server = SimulatedSunSpecServer({1: pv})
    await server.start()
    device = SunSpecDevice(
        spec(PV_ID, DeviceKind.INVERTER), SunSpecClient(SunSpecEndpoint("127.0.0.1", server.port, 1, timeout_s=2.0))
    )
    gateway = SunSpecGateway([device], bus, keyrings[0])
    try:
        assert (await gateway.poll()).telemetry == 1
        await server.stop()
        assert (await gateway.poll()).offline == 1
        assert (await gateway.poll()).offline == 1  # still offline: announced once
        await server.start()
        assert (await gateway.poll()).telemetry == 1
    finally:
        device.client.close()
        await server.stop()
    states = [msgspec.json.decode(m.payload, type=Presence) for m in recorder.channel("state")]
    assert [s.online for s in states] == [True, False, True]
    assert f"SunSpec device 127.0.0.1:{server.port}/1" in states[1].reason


def test_the_threaded_gateway_acts_on_a_command_without_waiting_for_its_period(
    pv: SimulatedDer, bus: InProcessBus, keyrings: tuple[FieldKeyring, CentreKeyring]
) -> None:
    ready, stop = threading.Event(), threading.Event()
    ports: list[int] = []

    async def serve() -> None:
        async with SimulatedSunSpecServer({1: pv}) as server:
            ports.append(server.port)
            ready.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    device = SunSpecDevice(spec(PV_ID, DeviceKind.INVERTER), SunSpecClient(SunSpecEndpoint("127.0.0.1", ports[0], 1)))
    gateway = SunSpecGateway([device], bus, keyrings[0], period_s=600.0)  # only a command can wake it
    gateway.start()
    try:
        bus.publish(topic("mg1", PV_ID, "command"), command(keyrings[1], PV_ID, 1_500.0))
        wait_for(lambda: pv.active_power_w() == 1_500.0, 10, "the curtailment to reach the inverter")
    finally:
        gateway.stop()
        stop.set()
        thread.join(10)
    assert pv.active_power_w() == 1_500.0


def test_every_device_needs_a_key(pv: SimulatedDer, bus: InProcessBus) -> None:
    field_ring, _ = provision_keyrings([BATTERY_ID])
    device = SunSpecDevice(spec(PV_ID, DeviceKind.INVERTER), SunSpecClient(SunSpecEndpoint("127.0.0.1")))
    with pytest.raises(ValueError, match=r"no key for \['inverter-PV_1'\]"):
        SunSpecGateway([device], bus, field_ring)


def test_devices_from_command_line_options() -> None:
    meter = DeviceSpec("meter-L1", DeviceKind.METER, "L1", "bus-1", "mg1", REPORTS[DeviceKind.METER], False)
    fixed = DeviceSpec("inverter-W1", DeviceKind.INVERTER, "W1", "bus-1", "mg1", REPORTS[DeviceKind.INVERTER], False)
    catalogue = Catalogue({d.id: d for d in (spec(PV_ID, DeviceKind.INVERTER), meter, fixed)})
    (device,) = sunspec_devices(catalogue, [f"{PV_ID}=192.0.2.10:1502/3"], timeout_s=1.5)
    assert device.spec.id == PV_ID
    assert device.client.endpoint == SunSpecEndpoint("192.0.2.10", 1502, 3, 1.5)
    for option, problem in (
        ("inverter-PV_9=h:502", "no device 'inverter-PV_9'"),
        ("inverter-W1=h:502", "not controllable"),
        (f"{PV_ID}", "expected DEVICE=HOST"),
        (f"{PV_ID}=h:99999", "port 1…65535"),
    ):
        with pytest.raises(ValueError, match=problem):
            sunspec_devices(catalogue, [option])
