"""The field simulator on the small microgrid over an in-process bus: signed telemetry that equals the
physics (checked by hand from the profiles and against an independent pandapower power flow), persisted
sequence numbers, commands, last gasp and the accelerated clock."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec
import numpy as np
import pandapower as pp
import pytest

from gridmesh.control.resync import SideState, ieee1547_limits, synchronise, wrap_deg
from gridmesh.model.io.pandapower import to_pandapower
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.physics.short_circuit import Fault, FaultType
from gridmesh.security.keys import (
    CentreKeyring,
    DeviceSecret,
    FieldKeyring,
    KeyAlgorithm,
    new_secret,
    provision_keyrings,
)
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.field import GATEWAY_STATE_TOPIC, FieldSimulator
from gridmesh.services.field_grid import FieldGrid
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of
from gridmesh.telemetry.envelope import Command, Envelope, encode, topic
from support.live import Recorder

EVERY_MINUTE = dict.fromkeys(DeviceKind, 60.0)
NS = 1_000_000_000
PCC = "switch-LV1.101_Switch_9"  # the remote breaker between the transformer and the microgrid
BATTERY = "battery-bess"  # 40 kW / 80 kWh, η charge 0.95, SOC 0.5


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


@pytest.fixture(scope="module")
def keyrings(scenario: Scenario) -> tuple[FieldKeyring, CentreKeyring]:
    return provision_keyrings(catalogue_of(scenario.network).devices)


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    bus.close()


def simulator(
    scenario: Scenario, bus: InProcessBus, keyring: FieldKeyring, tmp_path: Path, **options: object
) -> FieldSimulator:
    settings: dict[str, object] = {"periods": EVERY_MINUTE, "noise": 0.0, "data_dir": tmp_path}
    settings.update(options)
    return FieldSimulator(scenario, bus, keyring, **settings)  # type: ignore[arg-type]


def latest(envelopes: Sequence[Envelope], device: str) -> dict[str, float]:
    last = [e for e in envelopes if e.device == device][-1]
    return {r.q: r.v for r in last.readings}


def command(centre: CentreKeyring, sim: FieldSimulator, device: str, action: str, value: float = 0.0) -> Command:
    now = sim.now_ns()
    return sign(Command(device, 1, now, action, value, now + 60 * NS), centre.command_secret)


def send(bus: InProcessBus, message: Command) -> None:
    site = "mg"
    bus.publish(topic(site, message.device, "command"), encode(message))
    bus.drain()


def interpolated(scenario: Scenario, profile: str | None, when: datetime) -> float:
    """A profile's value at ``when``, linear between its points (computed here, not by the simulator)."""
    if profile is None:
        return 1.0
    p = scenario.profiles
    position = (when - p.start) / p.resolution
    first = math.floor(position)
    column = p.names.index(profile)
    a, b = float(p.values[first, column]), float(p.values[first + 1, column])
    return a + (position - first) * (b - a)


def test_every_device_reports_once_per_period_signed_for_the_centre(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    field, centre = keyrings
    record = Recorder(bus)
    sim = simulator(scenario, bus, field, tmp_path, noise=0.005)
    sim.step(60)
    sim.step(60)
    envelopes = record.telemetry()
    catalogue = catalogue_of(scenario.network)
    assert sorted(e.device for e in envelopes) == sorted(list(catalogue.devices) * 2)
    assert all(verify(e, centre.credentials[e.device]) for e in envelopes)
    assert not any(verify(e, centre.credentials[BATTERY]) for e in envelopes if e.device != BATTERY)
    assert {e.ts for e in envelopes} == {sim.now_ns() - 60 * NS, sim.now_ns()}
    for e in envelopes:
        assert [r.q for r in e.readings] == list(catalogue.devices[e.device].reports)


def test_readings_equal_the_physics_at_the_simulated_time(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    start = datetime(2016, 6, 1, 12, 0)
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path, start=start)
    sim.step(60)
    when = start + timedelta(seconds=60)  # 1/15 of the way from 12:00 to 12:15
    envelopes = record.telemetry()
    net = scenario.network
    # Meters and inverters: element rating × profile interpolated by hand.
    for load in net.loads.values():
        reading = latest(envelopes, f"meter-{load.id.replace(' ', '_')}")
        assert reading["TotW"] == pytest.approx(load.p_kw * 1e3 * interpolated(scenario, load.p_profile, when))
        assert reading["TotVAr"] == pytest.approx(load.q_kvar * 1e3 * interpolated(scenario, load.q_profile, when))
    available = {g.id: g.p_kw * 1e3 * interpolated(scenario, g.profile, when) for g in net.generators.values()}
    assert max(available.values()) > 1_000  # noon in June: the PV produces
    for gen in net.generators.values():
        assert latest(envelopes, f"inverter-{gen.id.replace(' ', '_')}")["TotW"] == pytest.approx(available[gen.id])
    # The grid's response against an independent pandapower power flow of the same snapshot.
    pp_net = to_pandapower(net)
    demand = {
        x.id: (x.p_kw * interpolated(scenario, x.p_profile, when), x.q_kvar * interpolated(scenario, x.q_profile, when))
        for x in net.loads.values()
    }
    demand["ev"] = (latest(envelopes, "evse-ev")["TotW"] / 1e3, 0.0)  # the charger's own state, not a flow
    pp_net.load["p_mw"] = [demand[name][0] / 1e3 for name in pp_net.load.name]
    pp_net.load["q_mvar"] = [demand[name][1] / 1e3 for name in pp_net.load.name]
    pp_net.sgen["p_mw"] = [available[name] / 1e6 for name in pp_net.sgen.name]
    pp.runpp(pp_net, calculate_voltage_angles=True, trafo_model="pi")
    trafo = latest(envelopes, "trafo-MV1.101-LV1.101-Trafo_1")
    assert trafo["TotW"] == pytest.approx(pp_net.res_trafo.p_hv_mw.iloc[0] * 1e6, rel=1e-5, abs=0.5)
    assert trafo["TotVAr"] == pytest.approx(pp_net.res_trafo.q_hv_mvar.iloc[0] * 1e6, rel=1e-5, abs=0.5)
    assert trafo["A"] == pytest.approx(pp_net.res_trafo.i_hv_ka.iloc[0] * 1e3, rel=1e-5)
    substation = latest(envelopes, "substation-MV1.101_grid_at_LV1.101")
    assert substation["TotW"] == pytest.approx(pp_net.res_ext_grid.p_mw.iloc[0] * 1e6, rel=1e-5, abs=0.5)
    assert substation["Hz"] == 50.0
    vm = pp_net.res_bus.set_index(pp_net.bus.name).vm_pu
    for load in net.loads.values():
        phv = latest(envelopes, f"meter-{load.id.replace(' ', '_')}")["PhV"]
        assert phv == pytest.approx(vm[load.bus] * 400 / math.sqrt(3), abs=1e-3)


def test_noise_is_relative_and_seeded(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], tmp_path: Path
) -> None:
    runs: list[dict[str, float]] = []
    for noise, seed in ((0.0, 7), (0.01, 7), (0.01, 7), (0.01, 8)):
        bus = InProcessBus()
        record = Recorder(bus)
        data = tmp_path / str(len(runs))
        simulator(scenario, bus, keyrings[0], data, noise=noise, seed=seed).step(60)
        runs.append({e.device: e.readings[2].v for e in record.telemetry() if e.device.startswith("meter")})
        bus.close()
    exact, noisy, same, other = (np.array([r[d] for d in sorted(runs[0])]) for r in runs)
    relative = noisy / exact - 1
    assert 0 < np.abs(relative).max() < 0.05  # 1 % noise: five sigma
    assert np.array_equal(noisy, same) and not np.array_equal(noisy, other)


def test_sequence_numbers_survive_a_restart(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    first = simulator(scenario, bus, keyrings[0], tmp_path)
    first.step(60)
    first.step(60)
    first.stop()
    second = simulator(scenario, bus, keyrings[0], tmp_path)
    second.step(60)
    seqs = [e.seq for e in record.telemetry() if e.device == BATTERY]
    assert seqs == [1, 2, 3]


def test_a_signed_set_power_moves_the_battery_next_tick(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    sim.step(60)
    assert latest(record.telemetry(), BATTERY)["TotW"] == 0.0
    order = command(keyrings[1], sim, BATTERY, "set-power", -20_000.0)  # charge at 20 kW
    send(bus, order)
    sim.step(60)
    ack = record.acks()[-1]
    assert (ack.device, ack.command_seq, ack.ok, ack.reason) == (BATTERY, order.seq, True, "")
    assert verify(ack, keyrings[1].credentials[BATTERY])
    reading = latest(record.telemetry(), BATTERY)
    assert reading["TotW"] == -20_000.0 and reading["WSpt"] == -20_000.0
    # 20 kW for one minute at η 0.95 into 80 kWh: +0.3958 percentage points.
    assert reading["SocPct"] == pytest.approx(50.0 + 20 * (60 / 3600) * 0.95 / 80 * 100)
    send(bus, command(keyrings[1], sim, BATTERY, "release"))
    sim.step(60)
    assert record.acks()[-1].ok
    assert latest(record.telemetry(), BATTERY)["TotW"] == 0.0


def test_opening_a_meters_supply_relay_disconnects_its_load_until_closed(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    meter, load = "meter-LV1.101_Load_1", "LV1.101 Load 1"
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    position = sim.grid.engine.index.loads.index(load)
    sim.step(60)
    assert latest(record.telemetry(), meter)["TotW"] > 0
    send(bus, command(keyrings[1], sim, meter, "open"))
    sim.step(60)
    assert record.acks()[-1].ok
    opened = latest(record.telemetry(), meter)
    assert opened["TotW"] == 0.0 and opened["TotVAr"] == 0.0 and opened["PhV"] > 0  # the meter still measures
    assert sim.last_state is not None and sim.last_state.load_p_kw[position] == 0.0  # the power flow without it
    send(bus, command(keyrings[1], sim, meter, "close"))
    sim.step(60)
    assert record.acks()[-1].ok
    demand_kw = sim.grid.profile_values(sim.now).load_p_kw[0, position]
    assert latest(record.telemetry(), meter)["TotW"] == pytest.approx(demand_kw * 1000) and demand_kw > 0


@pytest.mark.parametrize(
    ("device", "action", "value", "reason"),
    [
        (BATTERY, "set-power", 90_000.0, "setpoint 90 kW exceeds rating 40 kW"),
        (BATTERY, "dance", 0.0, "unknown action 'dance'; a battery takes set-power or release"),
        ("evse-ev", "set-power", 5_000.0, "setpoint 5 kW: an EV charger cannot discharge (charging is ≤ 0 W)"),
        ("meter-LV1.101_Load_1", "set-power", 0.0, "unknown action 'set-power'; a meter takes open or close"),
        ("trafo-MV1.101-LV1.101-Trafo_1", "open", 0.0, "trafo-MV1.101-LV1.101-Trafo_1 (trafo) takes no commands"),
    ],
)
def test_commands_out_of_rating_or_meaning_are_refused_with_the_reason(
    scenario: Scenario,
    keyrings: tuple[FieldKeyring, CentreKeyring],
    bus: InProcessBus,
    tmp_path: Path,
    device: str,
    action: str,
    value: float,
    reason: str,
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    send(bus, command(keyrings[1], sim, device, action, value))
    sim.step(60)
    (ack,) = record.acks()
    assert (ack.ok, ack.reason) == (False, reason)
    assert latest(record.telemetry(), BATTERY)["TotW"] == 0.0


def test_forged_and_expired_commands_are_refused(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    now = sim.now_ns()
    impostor: DeviceSecret = new_secret("centre", KeyAlgorithm.ED25519)
    send(bus, sign(Command(BATTERY, 1, now, "set-power", 10_000.0, now + 60 * NS), impostor))
    send(bus, sign(Command(BATTERY, 2, now, "set-power", 10_000.0, now + 30 * NS), keyrings[1].command_secret))
    tampered = msgspec.structs.replace(command(keyrings[1], sim, BATTERY, "set-power", 1_000.0), value=30_000.0)
    send(bus, tampered)
    bus.publish(topic("mg", BATTERY, "command"), b'{"device": "battery-bess"')
    bus.drain()
    sim.step(60)  # the second command expired 30 s into this minute
    answers = [(a.command_seq, a.ok, a.reason) for a in record.acks()]
    assert answers[:3] == [(1, False, "bad signature"), (2, False, "expired"), (1, False, "bad signature")]
    assert answers[3][:2] == (0, False) and answers[3][2].startswith("malformed command")
    assert latest(record.telemetry(), BATTERY)["TotW"] == 0.0


def test_curtailment_caps_an_inverter(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path, start=datetime(2016, 6, 1, 12, 0))
    sim.step(60)
    assert latest(record.telemetry(), "inverter-extra-pv")["TotW"] > 2_000
    send(bus, command(keyrings[1], sim, "inverter-extra-pv", "set-power", 2_000.0))
    sim.step(60)
    assert latest(record.telemetry(), "inverter-extra-pv")["TotW"] == 2_000.0


def test_opening_the_pcc_makes_meters_gasp_and_closing_restores_them(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    meters = {d.id for d in catalogue_of(scenario.network).devices.values() if d.kind is DeviceKind.METER}
    sim.step(60)
    send(bus, command(keyrings[1], sim, PCC, "open"))
    record.clear()
    sim.step(60)
    assert record.acks()[0].ok
    gasps = record.events()
    assert {e.device for e in gasps} == meters and {e.kind for e in gasps} == {"last-gasp"}
    assert all(verify(e, keyrings[1].credentials[e.device]) for e in gasps)
    reported = {e.device: {r.q: r.v for r in e.readings} for e in record.telemetry()}
    assert not meters & reported.keys()  # silent without supply
    assert reported[PCC]["Pos"] == 1.0 and reported[BATTERY]["PhV"] == 0.0
    states = [msgspec.json.decode(m.payload) for m in record.channel("state")]
    assert {s["device"] for s in states if not s["online"]} == meters
    record.clear()
    sim.step(60)
    assert not record.events() and not meters & {e.device for e in record.telemetry()}  # one gasp only
    send(bus, command(keyrings[1], sim, PCC, "close"))
    sim.step(60)
    restored = record.events()
    assert {e.device for e in restored} == meters and {e.kind for e in restored} == {"power-restored"}
    assert meters <= {e.device for e in record.telemetry()}
    assert latest(record.telemetry(), PCC)["Pos"] == 2.0


def test_gateway_state_and_will(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = Recorder(bus)
    sim = simulator(scenario, bus, keyrings[0], tmp_path)
    will_topic, will_payload = sim.will()
    assert will_topic == GATEWAY_STATE_TOPIC == "gridmesh/v1/grid/field-gateway/state"
    assert msgspec.json.decode(will_payload)["online"] is False
    sim.step(0)
    gateway = [msgspec.json.decode(m.payload) for m in record.channel("state") if m.topic == GATEWAY_STATE_TOPIC]
    assert [g["online"] for g in gateway] == [True]
    assert len(record.channel("state")) == len(catalogue_of(scenario.network)) + 1
    sim.stop()
    late = Recorder(bus)  # a later subscriber gets the retained state: offline
    offline = [msgspec.json.decode(m.payload) for m in late.channel("state") if m.topic == GATEWAY_STATE_TOPIC]
    assert [g["online"] for g in offline] == [False]


def test_speed_maps_wall_time_to_simulated_time(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    wall = [1_000.0]
    start = datetime(2016, 6, 1, 6, 0)
    target = (start + timedelta(minutes=2) - datetime(1970, 1, 1)) // timedelta(microseconds=1) * 1_000
    arrived = threading.Event()

    def watch(batch: Sequence[Message]) -> None:
        if any(msgspec.json.decode(m.payload, type=Envelope).ts == target for m in batch):
            arrived.set()

    bus.subscribe("gridmesh/v1/+/+/telemetry", watch)
    sim = simulator(scenario, bus, keyrings[0], tmp_path, speed=60.0, start=start, clock=lambda: wall[0], tick_s=0.01)
    sim.start()
    wall[0] += 2.0  # two wall seconds at speed 60: two simulated minutes
    assert arrived.wait(timeout=30)
    sim.stop()
    assert sim.now == start + timedelta(minutes=2)


def test_a_live_run_today_follows_the_profiles_season_and_time_of_day(scenario: Scenario) -> None:
    grid = FieldGrid(scenario)
    today = grid.profile_values(datetime(2025, 6, 1, 12, 7))
    in_profile_year = grid.profile_values(datetime(2016, 6, 1, 12, 7))
    np.testing.assert_array_equal(today.load_p_kw, in_profile_year.load_p_kw)
    load = next(iter(scenario.network.loads.values()))
    expected = load.p_kw * interpolated(scenario, load.p_profile, datetime(2016, 6, 1, 12, 7))
    assert in_profile_year.load_p_kw[0, 0] == pytest.approx(expected)


class Forming(NamedTuple):
    scenario: Scenario
    centre: CentreKeyring
    record: Recorder
    sim: FieldSimulator


def _forming(small_scenario_file: Path, tmp_path: Path, bus: InProcessBus) -> Forming:
    """The small microgrid with its battery grid-forming, simulated from an evening (no PV)."""
    text = small_scenario_file.read_text().replace("eta_discharge: 0.93}", "eta_discharge: 0.93, grid_forming: true}")
    path = tmp_path / "forming.yaml"
    path.write_text(text)
    forming = read_scenario(path)
    field_ring, centre_ring = provision_keyrings(catalogue_of(forming.network).devices)
    record = Recorder(bus)
    return Forming(
        forming, centre_ring, record, simulator(forming, bus, field_ring, tmp_path, start=datetime(2016, 6, 1, 20))
    )


def test_a_grid_forming_battery_holds_its_microgrid_when_the_pcc_opens(
    small_scenario_file: Path, tmp_path: Path, bus: InProcessBus
) -> None:
    forming, centre_ring, record, sim = _forming(small_scenario_file, tmp_path, bus)
    meters = {d.id for d in catalogue_of(forming.network).devices.values() if d.kind is DeviceKind.METER}
    sim.step(60)
    soc = float(sim.grid.fleet.soc[0])
    send(bus, command(centre_ring, sim, PCC, "open"))
    record.clear()
    sim.step(60)
    assert [i.former for i in sim.grid.islands] == ["bess"]
    assert not record.events()  # no meter lost its supply: the battery holds the island
    state = sim.last_state
    assert state is not None and not state.failed
    island = {b for i in sim.grid.islands for b in i.buses}
    buses = np.array(sim.grid.engine.index.buses)
    load_in, gen_in = np.isin(buses[sim.grid.load_bus], list(island)), np.isin(buses[sim.grid.gen_bus], list(island))
    ev_in = np.isin(buses[sim.grid.ev_bus], list(island))
    # the battery delivers what the island draws: its loads and EVs less its generation, plus the losses (> 0,
    # a few per cent), and its SOC pays for it
    net_kw = state.load_p_kw[load_in].sum() + state.ev_p_kw[ev_in].sum() - state.gen_p_kw[gen_in].sum()
    drawn = float(state.battery_p_kw[0])
    assert net_kw > 0 and net_kw < drawn < 1.1 * net_kw
    assert float(sim.grid.fleet.soc[0]) < soc
    reported = latest(record.telemetry(), BATTERY)
    assert reported["TotW"] == pytest.approx(drawn * 1e3, rel=1e-6)
    assert meters & {e.device for e in record.telemetry()}  # meters keep reporting inside the island
    # a fault inside the island: the grid-forming inverter's protection gives it up, the island goes dark
    fault = Fault(forming.network.batteries["bess"].bus, "buses", FaultType.THREE_PHASE)
    sim.grid.set_faults([fault])
    assert sim.grid.islands == ()
    record.clear()
    sim.step(60)
    assert {e.kind for e in record.events()} == {"last-gasp"}
    assert "Hz" not in latest(record.telemetry(), BATTERY)  # no supply: no frequency to measure
    sim.grid.set_faults([])  # repaired: the battery forms its island again
    assert [i.former for i in sim.grid.islands] == ["bess"]
    send(bus, command(centre_ring, sim, PCC, "close"))
    sim.step(60)
    assert sim.grid.islands == ()
    assert sim.last_state is not None and sim.last_state.battery_p_kw[0] == pytest.approx(0.0)


def test_an_island_runs_at_its_droop_frequency_and_is_synchronised_when_the_pcc_closes(
    small_scenario_file: Path, tmp_path: Path, bus: InProcessBus
) -> None:
    _, centre_ring, record, sim = _forming(small_scenario_file, tmp_path, bus)
    sim.step(60)
    assert latest(record.telemetry(), BATTERY)["Hz"] == 50.0  # on the grid: the grid's frequency
    send(bus, command(centre_ring, sim, PCC, "open"))
    hz, q_kvar, v_pu = [], [], []
    for _ in range(2):
        sim.step(60)
        state = sim.last_state
        assert state is not None
        drawn_kw = float(state.battery_p_kw[0])
        # P-droop 1 %: 0.5 Hz below 50 Hz at the battery's full 40 kW
        assert latest(record.telemetry(), BATTERY)["Hz"] == pytest.approx(50.0 - 0.5 * drawn_kw / 40.0)
        hz.append(50.0 - 0.5 * drawn_kw / 40.0)
        q_kvar.append(float(state.flow.grid_q_kvar[0][sim.grid.engine.index.sources.index("island:bess")]))
        v_pu.append(float(state.flow.v_pu[0][sim.grid.battery_bus[0]]))
    assert hz[0] < 50.0
    # Q-V droop 5 % (Q rated = P rated): the battery holds its bus at the set-point for the Q it delivered
    # at the previous instant (nominal when the island formed).
    assert v_pu == pytest.approx([1.0, 1.0 - 0.05 * q_kvar[0] / 40.0]) and q_kvar[0] > 0
    record.clear()
    send(bus, command(centre_ring, sim, PCC, "close"))
    sim.step(60)
    assert sim.grid.islands == ()
    (event,) = [e for e in record.events() if e.kind == "resync"]
    # Formed in phase; the angle then turned at the first minute's frequency difference.
    angle = wrap_deg(360.0 * (hz[0] - 50.0) * 60.0)
    assert event.device == PCC
    assert event.detail["df_hz"] == pytest.approx(hz[1] - 50.0, abs=1e-4)
    assert event.detail["dangle_deg"] == pytest.approx(angle, abs=0.01)
    expected = synchronise(SideState(1.0, hz[1], angle), SideState(1.0, 50.0, 0.0), ieee1547_limits(40.0))
    assert event.detail["seconds"] == pytest.approx(expected.seconds, abs=1e-3)
    assert not expected.before.allowed and expected.seconds > 0  # out of the window: synchronising took time
    assert latest(record.telemetry(), BATTERY)["Hz"] == 50.0
