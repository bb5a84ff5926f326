"""Protection on a radial 20 kV feeder: breaker → recloser r1 → sectionaliser s1 → recloser r2 →
sectionaliser s2 → sectionaliser s3, with a fused lateral behind r1 … r2 (bus b3).

Lines are rated 300 A, so every device picks up at 600 A by default; a bolted fault anywhere draws
several kA, a 200 Ω ground fault about 60 A.
"""

from __future__ import annotations

import math

import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Switch
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network
from gridmesh.physics.protection import (
    Action,
    ProtectionResponse,
    ProtectionSettings,
    RecloserSettings,
    pickup_a,
    protection_response,
    reclose_sequence,
)
from gridmesh.physics.short_circuit import Fault, FaultType, ShortCircuit

DEVICES = {  # switch id: (kind, bus, line)
    "cb": (SwitchKind.BREAKER, "b0", "l1"),
    "r1": (SwitchKind.RECLOSER, "b1", "l2"),
    "s1": (SwitchKind.SECTIONALISER, "b2", "l3"),
    "r2": (SwitchKind.RECLOSER, "b3", "l4"),
    "s2": (SwitchKind.SECTIONALISER, "b4", "l5"),
    "s3": (SwitchKind.SECTIONALISER, "b5", "l6"),
    "f1": (SwitchKind.FUSE, "b3", "l7"),
}


@pytest.fixture(scope="module")
def feeder() -> Network:
    buses = [Bus(id=f"b{k}", vn_kv=20.0) for k in range(8)]
    spans = [(f"l{k}", f"b{k - 1}", f"b{k}") for k in range(1, 7)] + [("l7", "b3", "b7")]
    lines = [
        Line(id=i, from_bus=a, to_bus=b, length_km=1.0, r_ohm_per_km=0.2, x_ohm_per_km=0.35, max_i_a=300.0)
        for i, a, b in spans
    ]
    switches = [
        Switch(id=s, bus=bus, element=line, element_type=SwitchedElement.LINE, kind=kind, remote=True)
        for s, (kind, bus, line) in DEVICES.items()
    ]
    grid = ExternalGrid(id="grid", bus="b0", sk_mva=500.0)
    return Network.from_elements([*buses, *lines, *switches, grid])


@pytest.fixture(scope="module")
def model(feeder: Network) -> ShortCircuit:
    return ShortCircuit(feeder)


def _respond(
    feeder: Network, model: ShortCircuit, fault: Fault, settings: ProtectionSettings | None = None
) -> ProtectionResponse:
    return protection_response(feeder, fault, model.currents([fault]), settings=settings)


def test_fault_beyond_second_recloser_trips_only_it(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("b5", "buses", FaultType.THREE_PHASE))
    assert response.tripped == "r2"
    assert [e.switch for e in response.events if e.action is Action.TRIP] == ["r2"] * 4
    assert response.indications == {"cb": True, "r1": True, "s1": True, "r2": True, "s2": True, "s3": False}
    fpis = [e.switch for e in response.events if e.action is Action.FPI]
    assert fpis == ["cb", "r1", "r2", "s1", "s2"]
    assert all(e.t_s == 0.0 for e in response.events if e.action is Action.FPI)


def test_fault_between_reclosers_trips_the_first(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("l3", "lines", FaultType.LINE_TO_GROUND, position=0.4))
    assert response.tripped == "r1"
    assert response.indications == {"cb": True, "r1": True, "s1": True, "r2": False, "s2": False, "s3": False}


def test_fault_on_fused_lateral_blows_the_fuse(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("b7", "buses", FaultType.LINE_TO_LINE, permanent=False))
    assert response.tripped == "f1"
    assert response.locked_out  # a fuse does not reclose, even for a temporary fault
    assert [e.action for e in response.events if e.switch == "f1"] == [Action.TRIP, Action.LOCKOUT]
    assert response.indications["r1"] and not response.indications["r2"]


def test_fault_ahead_of_recloser_trips_the_breaker(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("b1", "buses", FaultType.THREE_PHASE))
    assert response.tripped == "cb"
    assert response.locked_out


def test_nearest_device_below_pickup_lets_the_next_one_trip(feeder: Network, model: ShortCircuit) -> None:
    settings = ProtectionSettings(pickup_a={"r2": 1e6})
    response = _respond(feeder, model, Fault("b5", "buses", FaultType.THREE_PHASE), settings)
    assert response.tripped == "r1"
    assert response.indications["r2"] is False  # its FPI shares the raised pickup


def test_temporary_fault_clears_on_first_reclose(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("b5", "buses", FaultType.THREE_PHASE, permanent=False))
    sequence = [(e.t_s, e.action) for e in response.events if e.switch == "r2" and e.action is not Action.FPI]
    assert sequence == [(0.1, Action.TRIP), (0.6, Action.RECLOSE), (0.6, Action.SUCCESS)]
    assert not response.locked_out


def test_permanent_fault_locks_out_after_three_shots(feeder: Network, model: ShortCircuit) -> None:
    response = _respond(feeder, model, Fault("b5", "buses", FaultType.THREE_PHASE))
    actions = [e.action for e in response.events if e.action is not Action.FPI]
    assert actions == [Action.TRIP, Action.RECLOSE] * 3 + [Action.TRIP, Action.LOCKOUT]
    times = [e.t_s for e in response.events if e.action is not Action.FPI]
    assert times == pytest.approx([0.1, 0.6, 0.7, 15.7, 15.8, 45.8, 45.9, 45.9])
    assert response.locked_out


def test_high_impedance_fault_trips_nothing_and_says_so(feeder: Network, model: ShortCircuit) -> None:
    fault = Fault("b5", "buses", FaultType.LINE_TO_GROUND, r_ohm=200.0)
    currents = model.currents([fault])
    assert 0.0 < currents.fault_ka(fault) * 1e3 < 600.0
    response = protection_response(feeder, fault, currents)
    assert response.tripped is None
    assert not response.locked_out
    assert not any(response.indications.values())
    assert "high-impedance" in response.note
    assert response.events == []


def test_pickup_defaults_and_overrides(feeder: Network) -> None:
    assert pickup_a(feeder, "r1") == pytest.approx(600.0)
    rated = feeder.with_elements([feeder.switches["r1"].model_copy(update={"rated_i_a": 400.0})])
    assert pickup_a(rated, "r1") == pytest.approx(800.0)
    assert pickup_a(feeder, "r1", ProtectionSettings(pickup_factor=3.0)) == pytest.approx(900.0)
    assert pickup_a(feeder, "r1", ProtectionSettings(pickup_a={"r1": 250.0})) == pytest.approx(250.0)


def test_reclose_sequence_with_custom_settings() -> None:
    settings = RecloserSettings(shots=1, dead_times_s=(2.0,), trip_time_s=0.05)
    events = reclose_sequence(Fault("b5", "buses", FaultType.THREE_PHASE), settings, switch="r")
    assert [(e.action, e.t_s) for e in events] == [
        (Action.TRIP, 0.05),
        (Action.RECLOSE, 2.05),
        (Action.TRIP, pytest.approx(2.1)),
        (Action.LOCKOUT, pytest.approx(2.1)),
    ]
    with pytest.raises(ValueError, match="dead times"):
        RecloserSettings(shots=3, dead_times_s=(1.0,))


def test_bolted_fault_current_matches_hand_calculation(feeder: Network, model: ShortCircuit) -> None:
    """Sanity check of the feeder itself: 5 km of 0.2 + j0.35 Ω/km behind a 500 MVA (R/X 0.1) grid."""
    z_grid = 1.1 * 20.0**2 / 500.0  # IEC 60909: Z_Q = c·U²/S''_kQ
    x_q = z_grid / math.sqrt(1 + 0.1**2)
    z = complex(0.1 * x_q + 5 * 0.2, x_q + 5 * 0.35)
    fault = Fault("b5", "buses", FaultType.THREE_PHASE)
    assert model.currents([fault]).fault_ka(fault) == pytest.approx(1.1 * 20.0 / (math.sqrt(3) * abs(z)), rel=1e-6)
