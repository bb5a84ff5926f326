"""Faults in the live twin: protection trips, reclose sequences on the simulated clock, FPIs through events
and ``FltInd`` telemetry, lockout interlocks, closing onto a fault, and signed fault orders.

The feeder (20 kV, 2 km lines of 0.16 + j0.11 Ω/km rated 300 A, so every device picks up at 600 A)::

    sub ─cbA─ lA1 ─ a1 ─rA─ lA2 ─ a2 ─sA2─ lA3 ─sA3─ a3 ─ lA4 ─ a4
    sub ─cbB─ lB1 ─ b1 ┄tie┄ lT ─ a4
                a1 ─f1─ lF ─ a5     (a fused lateral; the fuse has no communication)

A fault on lA3 sits between the sectionalisers sA2 and sA3: the recloser rA clears it; cbA, rA and sA2
carry fault current, sA3 and cbB do not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Load, Switch
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario
from gridmesh.physics.short_circuit import Fault, FaultError, FaultType
from gridmesh.security.keys import (
    CentreKeyring,
    DeviceSecret,
    FieldKeyring,
    KeyAlgorithm,
    new_secret,
    provision_keyrings,
)
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import InProcessBus
from gridmesh.services.field import GATEWAY, GATEWAY_ACK_TOPIC, GATEWAY_COMMAND_TOPIC, FieldSimulator
from gridmesh.services.field_faults import LOCKED_OUT
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of
from gridmesh.telemetry.envelope import Ack, Command, FaultOrder, encode, topic
from support.live import Recorder

NS = 1_000_000_000
MS = 1_000_000
EVERY_MINUTE = dict.fromkeys(DeviceKind, 60.0)
SK_MVA, UN_KV, C_MAX = 300.0, 20.0, 1.1
R_KM, X_KM, KM = 0.16, 0.11, 2.0
LOADS = ("a1", "a2", "a3", "a4", "a5", "b1")
BEHIND_RA = {"meter-load-a2", "meter-load-a3", "meter-load-a4"}
FEEDER_B = {"meter-load-b1"}
LINE_FAULT = Fault("lA3", "lines", FaultType.THREE_PHASE, position=0.5)


def _line(id_: str, a: str, b: str) -> Line:
    return Line(id=id_, from_bus=a, to_bus=b, length_km=KM, r_ohm_per_km=R_KM, x_ohm_per_km=X_KM, max_i_a=300.0)


def _switch(id_: str, bus: str, line: str, kind: SwitchKind, *, closed: bool = True) -> Switch:
    return Switch(
        id=id_, bus=bus, element=line, element_type=SwitchedElement.LINE, kind=kind, remote=True, normally_closed=closed
    )


def feeder() -> Network:
    return Network.from_elements(
        [
            *(Bus(id=b, vn_kv=UN_KV) for b in ("sub", *LOADS)),
            ExternalGrid(id="grid", bus="sub", sk_mva=SK_MVA, rx_ratio=0.1),
            _line("lA1", "sub", "a1"),
            _line("lA2", "a1", "a2"),
            _line("lA3", "a2", "a3"),
            _line("lA4", "a3", "a4"),
            _line("lB1", "sub", "b1"),
            _line("lT", "b1", "a4"),
            _line("lF", "a1", "a5"),
            _switch("cbA", "sub", "lA1", SwitchKind.BREAKER),
            _switch("rA", "a1", "lA2", SwitchKind.RECLOSER),
            _switch("sA2", "a2", "lA3", SwitchKind.SECTIONALISER),
            _switch("sA3", "a3", "lA3", SwitchKind.SECTIONALISER),
            _switch("cbB", "sub", "lB1", SwitchKind.BREAKER),
            _switch("tie", "b1", "lT", SwitchKind.TIE, closed=False),
            Switch(id="f1", bus="a1", element="lF", element_type=SwitchedElement.LINE, kind=SwitchKind.FUSE),
            *(Load(id=f"load-{b}", bus=b, p_kw=300.0, q_kvar=60.0) for b in LOADS),
        ]
    )


def hand_fault_current_a(line_km: float) -> float:
    """IEC 60909 three-phase current, c·Un/(√3·|Z_Q + Z_lines|), with Z_Q = c·Un²/S''k at R/X 0.1."""
    z_q = C_MAX * UN_KV**2 / SK_MVA
    x_q = z_q / math.sqrt(1 + 0.1**2)
    r, x = 0.1 * x_q + R_KM * line_km, x_q + X_KM * line_km
    return C_MAX * UN_KV * 1e3 / (math.sqrt(3) * math.hypot(r, x))


@pytest.fixture(scope="module")
def feeder_scenario() -> Scenario:
    return Scenario("feeder", feeder())


@pytest.fixture(scope="module")
def feeder_keys(feeder_scenario: Scenario) -> tuple[FieldKeyring, CentreKeyring]:
    """Keys for every device and for the gateway, so that its answers to fault orders are signed."""
    return provision_keyrings([*catalogue_of(feeder_scenario.network).devices, GATEWAY])


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    bus.close()


class FaultRecorder(Recorder):
    """The bus recorder, with the views the fault tests read."""

    def protection(self) -> list[tuple[str, str]]:
        """(device, kind) of the events that are not about meters' supply."""
        return [(e.device, e.kind) for e in self.events() if not e.device.startswith("meter-")]

    def supply(self, kind: str) -> set[str]:
        return {e.device for e in self.events() if e.kind == kind}


def simulator(scenario: Scenario, bus: InProcessBus, keyring: FieldKeyring, tmp_path: Path) -> FieldSimulator:
    sim = FieldSimulator(scenario, bus, keyring, periods=EVERY_MINUTE, noise=0.0, data_dir=tmp_path)
    sim.step(60)  # every device has reported once with the feeder healthy
    return sim


def switch_command(bus: InProcessBus, centre: CentreKeyring, sim: FieldSimulator, switch: str, action: str) -> None:
    now = sim.now_ns()
    command = sign(Command(f"switch-{switch}", 1, now, action, 0.0, now + 60 * NS), centre.command_secret)
    bus.publish(topic("grid", command.device, "command"), encode(command))
    bus.drain()


def order(secret: DeviceSecret, action: str, fault_id: str, **fields: Any) -> FaultOrder:
    return sign(FaultOrder(GATEWAY, 7, 0, action, fault_id, **fields), secret)


def send_order(bus: InProcessBus, message: FaultOrder) -> None:
    bus.publish(GATEWAY_COMMAND_TOPIC, encode(message))
    bus.drain()


def test_temporary_fault_trips_recloses_and_holds_meters_gasp_and_restore(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, feeder_keys[0], tmp_path)
    t0 = sim.now_ns()
    response = sim.inject("tree", Fault("lA3", "lines", FaultType.THREE_PHASE, permanent=False))
    assert response.tripped == "rA" and not response.locked_out
    record.clear()
    sim.step(0.3)  # the trip at 0.1 s falls in this tick, the reclose at 0.6 s does not
    events = record.events()
    assert record.protection() == [
        ("switch-cbA", "fault-passage"),
        ("switch-rA", "fault-passage"),
        ("switch-sA2", "fault-passage"),
        ("switch-rA", "trip"),
    ]
    assert [e.ts for e in events if e.kind == "trip"] == [t0 + 100 * MS]
    assert all(e.detail["fault_id"] == "tree" for e in events if e.kind != "last-gasp")
    assert all(verify(e, feeder_keys[1].credentials[e.device]) for e in events)
    assert record.supply("last-gasp") == BEHIND_RA
    record.clear()
    sim.step(0.5)
    assert record.protection() == [("switch-rA", "reclose"), ("switch-rA", "reclose-success")]
    assert {e.ts for e in record.events() if e.kind.startswith("reclose")} == {t0 + 600 * MS}
    assert record.supply("power-restored") == BEHIND_RA
    assert sim.faults.faults["tree"].present is False  # gone; its FPIs stay latched until the repair


def test_permanent_fault_locks_out_and_close_is_refused_until_repair(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    field, centre = feeder_keys
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, field, tmp_path)
    t0 = sim.now_ns()
    sim.inject("cable", LINE_FAULT)
    record.clear()
    sim.step(5.0)  # in the second dead time: the recloser takes no command while its sequence runs
    switch_command(bus, centre, sim, "rA", "close")
    sim.step(1.0)  # judged at 6 s, before the second reclose (15.7 s)
    sim.step(54.0)  # every remaining shot falls in this one tick and is applied in order
    (ack,) = record.acks()
    assert (ack.device, ack.ok) == ("switch-rA", False)
    assert ack.reason == "reclose sequence in progress after fault cable; wait for it to succeed or lock out"
    sequence = [e for e in record.events() if e.device == "switch-rA" and e.kind != "fault-passage"]
    assert [e.kind for e in sequence] == ["trip", "reclose"] * 3 + ["trip", "lockout"]
    offsets_ms = [0.1, 0.6, 0.7, 15.7, 15.8, 45.8, 45.9, 45.9]  # RecloserSettings defaults, docs/faults.md
    assert [e.ts - t0 for e in sequence] == [round(t * 1000) * MS for t in offsets_ms]
    assert [e.seq for e in sequence] == sorted(e.seq for e in sequence)
    assert record.supply("last-gasp") == BEHIND_RA
    assert record.last_readings("switch-rA")["Pos"] == 1.0
    assert sim.faults.locked_out == {"rA": "cable"}
    record.clear()
    switch_command(bus, centre, sim, "rA", "close")
    sim.step(60)
    assert [(a.ok, a.reason) for a in record.acks()] == [(False, LOCKED_OUT)]
    assert not record.supply("power-restored")
    sim.repair("cable")
    switch_command(bus, centre, sim, "rA", "close")
    sim.step(60)
    assert [(a.ok, a.reason) for a in record.acks()][-1] == (True, "")
    assert record.supply("power-restored") == BEHIND_RA
    assert record.last_readings("switch-rA") == {"Pos": 2.0, "FltInd": 0.0}


def test_fpis_upstream_indicate_and_report_fltind_until_repair(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, feeder_keys[0], tmp_path)
    response = sim.inject("cable", LINE_FAULT)
    assert response.indications == {"cbA": True, "rA": True, "sA2": True, "sA3": False, "cbB": False}
    sim.step(60)
    passages = {e.device: e for e in record.events() if e.kind == "fault-passage"}
    assert set(passages) == {"switch-cbA", "switch-rA", "switch-sA2"}
    # The current they saw: bolted fault mid-way along lA3, behind 2 + 2 + 1 km of line.
    seen = float(re.findall(r"fault current (\d+) A", str(passages["switch-sA2"].detail["note"]))[0])
    assert seen == pytest.approx(hand_fault_current_a(2.5 * KM), abs=1.0)
    fltind = {s: record.last_readings(f"switch-{s}")["FltInd"] for s in ("cbA", "rA", "sA2", "sA3", "cbB")}
    assert fltind == {"cbA": 1.0, "rA": 1.0, "sA2": 1.0, "sA3": 0.0, "cbB": 0.0}
    assert record.last_readings("switch-tie") == {"Pos": 1.0}  # a tie has no FPI
    sim.repair("cable")
    sim.step(60)
    assert {record.last_readings(f"switch-{s}")["FltInd"] for s in ("cbA", "rA", "sA2")} == {0.0}


def test_closing_a_tie_onto_the_faulted_section_trips_the_other_feeder(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    field, centre = feeder_keys
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, field, tmp_path)
    sim.inject("cable", LINE_FAULT)
    sim.step(60)  # rA locked out; a2, a3, a4 dark
    record.clear()
    switch_command(bus, centre, sim, "tie", "close")  # a wrong plan: lA3 is not isolated
    sim.step(60)
    closing = sim.now_ns()  # commands are carried out at the tick after they arrive
    assert [(a.device, a.ok) for a in record.acks()] == [("switch-tie", True)]
    trips = [e for e in record.events() if e.kind in ("trip", "lockout")]
    assert [(e.device, e.kind) for e in trips] == [("switch-cbB", "trip"), ("switch-cbB", "lockout")]
    assert {e.ts for e in trips} == {closing + 100 * MS}
    assert "closing tie re-energised a permanent fault" in str(trips[0].detail["note"])
    assert {e.device for e in record.events() if e.kind == "fault-passage"} == {"switch-cbB", "switch-sA3"}
    assert record.supply("last-gasp") == FEEDER_B  # a2 … a4 were dark already
    assert not record.supply("power-restored")
    assert sim.faults.locked_out == {"rA": "cable", "cbB": "cable"}


def test_isolating_the_fault_lets_flisr_reclose_the_locked_out_recloser_and_transfer(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    field, centre = feeder_keys
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, field, tmp_path)
    sim.inject("cable", LINE_FAULT)
    sim.step(60)
    record.clear()
    for switch, action in (("sA2", "open"), ("sA3", "open"), ("rA", "close"), ("tie", "close")):
        switch_command(bus, centre, sim, switch, action)
    sim.step(60)
    assert [(a.device, a.ok) for a in record.acks()] == [
        ("switch-sA2", True),
        ("switch-sA3", True),
        ("switch-rA", True),
        ("switch-tie", True),
    ]
    assert not [e for e in record.events() if e.kind in ("trip", "lockout")]
    assert record.supply("power-restored") == BEHIND_RA
    assert sim.faults.locked_out == {}  # the close after isolation reset the lockout
    assert "cable" in sim.faults.faults  # the cable is still broken until repaired


def test_direct_calls_refuse_unknown_elements_and_ids(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    sim = simulator(feeder_scenario, bus, feeder_keys[0], tmp_path)
    with pytest.raises(FaultError, match="no such line — name a line of the network"):
        sim.inject("x", Fault("nowhere", "lines", FaultType.THREE_PHASE))
    sim.inject("one", LINE_FAULT)
    with pytest.raises(FaultError, match="'one' is already in the twin — repair it first"):
        sim.inject("one", Fault("a4", "buses", FaultType.LINE_TO_GROUND))
    with pytest.raises(FaultError, match=r"is not in the twin — repair one of the faults present \(one\)"):
        sim.repair("two")


def test_a_signed_fault_order_injects_and_repairs_a_forged_one_is_refused(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    field, centre = feeder_keys
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, field, tmp_path)
    impostor = new_secret("centre", KeyAlgorithm.ED25519)
    inject = {"element": "lA3", "table": "lines", "fault_type": "line-to-ground", "position": 0.25}
    send_order(bus, order(impostor, "inject", "forged", **inject))
    send_order(bus, order(centre.command_secret, "inject", "real", **inject))
    bus.publish(GATEWAY_COMMAND_TOPIC, b'{"device": "field-gateway"')
    bus.drain()
    sim.step(1)  # the gateway carries the orders out at this tick: the fault's inception
    sim.step(59)
    answers = [m for m in record.channel("ack") if m.topic == GATEWAY_ACK_TOPIC]
    decoded = [msgspec.json.decode(m.payload, type=Ack) for m in answers]
    assert [(a.device, a.command_seq, a.ok, a.reason) for a in decoded[:2]] == [
        (GATEWAY, 7, False, "bad signature"),
        (GATEWAY, 7, True, ""),
    ]
    assert not decoded[2].ok and decoded[2].reason.startswith("malformed fault order")
    assert all(verify(a, centre.credentials[GATEWAY]) for a in decoded)
    assert list(sim.faults.faults) == ["real"]
    assert sim.faults.faults["real"].fault == Fault("lA3", "lines", FaultType.LINE_TO_GROUND, position=0.25)
    assert ("switch-rA", "lockout") in record.protection()
    record.clear()
    send_order(bus, order(centre.command_secret, "repair", "real"))
    sim.step(60)
    assert [(a.ok, a.reason) for a in record.acks()] == [(True, "")]
    assert sim.faults.faults == {} and sim.faults.indicated == frozenset()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"element": "lX"}, "fault on 'lX': element: no such line — name a line of the network"),
        ({"element": "lA3", "fault_type": "arc-flash"}, "fault on 'lA3': fault_type: 'arc-flash' is not a fault type"),
        ({"element": "a2", "table": "loads"}, "fault on 'a2': table: 'loads' cannot carry a fault"),
        ({"element": "a2", "table": "buses", "position": 0.5}, "fault on 'a2': position: a bus fault has no position"),
    ],
)
def test_fault_orders_that_make_no_sense_are_refused_with_the_reason(
    feeder_scenario: Scenario,
    feeder_keys: tuple[FieldKeyring, CentreKeyring],
    bus: InProcessBus,
    tmp_path: Path,
    fields: dict[str, Any],
    reason: str,
) -> None:
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, feeder_keys[0], tmp_path)
    send_order(bus, order(feeder_keys[1].command_secret, "inject", "f", **fields))
    sim.step(1)
    (answer,) = record.acks()
    assert not answer.ok and answer.reason.startswith(reason)
    assert sim.faults.faults == {} and not record.protection()


def test_breaker_on_the_microgrid_does_not_reclose_and_answers_unsigned_without_a_gateway_key(
    small_scenario_file: Path, bus: InProcessBus, tmp_path: Path
) -> None:
    scenario = read_scenario(small_scenario_file)
    meters = {d.id for d in catalogue_of(scenario.network).devices.values() if d.kind is DeviceKind.METER}
    field, centre = provision_keyrings(catalogue_of(scenario.network).devices)  # no key for the gateway
    record = FaultRecorder(bus)
    sim = simulator(scenario, bus, field, tmp_path)
    send_order(
        bus,
        order(centre.command_secret, "inject", "lv", element="LV1.101 Bus 4", table="buses", permanent=False),
    )
    sim.step(1)
    sim.step(1)  # the trip 0.1 s after inception falls in the tick after the order's
    (answer,) = record.acks()
    assert (answer.ok, answer.alg, answer.sig) == (True, "none", "")
    pcc = "switch-LV1.101_Switch_9"
    assert [k for d, k in record.protection() if d == pcc] == ["fault-passage", "trip", "lockout"]
    assert record.supply("last-gasp") == meters
    # The temporary fault went with the breaker's trip: a test close by the operator holds.
    record.clear()
    switch_command(bus, centre, sim, "LV1.101_Switch_9", "close")
    sim.step(60)
    assert [(a.ok, a.reason) for a in record.acks()] == [(True, "")]
    assert record.supply("power-restored") == meters
    assert not [k for _, k in record.protection() if k == "trip"]


def test_a_fuse_blows_even_for_a_temporary_fault_and_the_repair_replaces_it(
    feeder_scenario: Scenario, feeder_keys: tuple[FieldKeyring, CentreKeyring], bus: InProcessBus, tmp_path: Path
) -> None:
    record = FaultRecorder(bus)
    sim = simulator(feeder_scenario, bus, feeder_keys[0], tmp_path)
    response = sim.inject("branch", Fault("a5", "buses", FaultType.THREE_PHASE, permanent=False))
    assert (response.tripped, response.locked_out) == ("f1", True)
    sim.step(60)
    assert record.protection() == [("switch-cbA", "fault-passage")]  # the fuse itself cannot tell
    assert record.supply("last-gasp") == {"meter-load-a5"}
    assert sim.faults.locked_out == {"f1": "branch"}
    record.clear()
    sim.repair("branch")
    sim.step(60)
    assert record.supply("power-restored") == {"meter-load-a5"}
    assert sim.faults.locked_out == {} and sim.faults.indicated == frozenset()
