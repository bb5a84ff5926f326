"""Register maps from pysunspec2's definitions and the value codec, against hand-computed registers."""

from __future__ import annotations

import pytest

from gridmesh.adapters.modbus.sunspec_map import (
    COMMON,
    CONTROLS,
    INVERTER_THREE_PHASE,
    NAMEPLATE,
    STORAGE,
    SunSpecMapError,
    decode_model,
    decode_raw,
    encode_model,
    encode_point,
    model_map,
    scale,
)


def test_model_lengths_are_those_of_the_sunspec_specification() -> None:
    # Model lengths L published by the SunSpec Alliance (information model reference).
    expected = {COMMON: 66, INVERTER_THREE_PHASE: 50, NAMEPLATE: 26, CONTROLS: 24, STORAGE: 24}
    assert {m: model_map(m).length for m in expected} == expected


def test_inverter_offsets_match_the_well_known_register_addresses() -> None:
    # Vendor tables (1-based, model 103 after a 65-register common model, e.g. Fronius int+SF) put the
    # model ID at 40070, W at 40084, Hz at 40086, WH at 40094 (acc32, two registers) and St at 40108:
    # 0-based, ID at 40069 and each point one lower.
    inverter = model_map(INVERTER_THREE_PHASE)
    addresses = {name: 40069 + inverter.point(name).offset for name in ("W", "Hz", "WH", "St")}
    assert addresses == {"W": 40083, "Hz": 40085, "WH": 40093, "St": 40107}
    assert inverter.point("WH").size == 2
    assert inverter.point("W").sf == "W_SF"
    assert model_map(CONTROLS).point("WMaxLimPct").writable
    assert not inverter.point("W").writable


def test_scale_factor_hand_case_both_ways() -> None:
    inverter = model_map(INVERTER_THREE_PHASE)
    w = inverter.point("W")
    # -1234.5 W at W_SF = -1 is raw -12345, the int16 register 65536 - 12345 = 53191 (0xCFC7).
    assert encode_point(w, -1234.5, -1) == [0xCFC7]
    assert decode_raw(w, [0xCFC7]) == -12345
    assert scale(-12345, -1) == -1234.5
    # 230.1 V at V_SF = -1 is 2301; 50.02 Hz at Hz_SF = -2 is 5002; 12 kW at W_SF = 1 is 1200.
    registers = encode_model(
        inverter, {"PhVphA": 230.1, "V_SF": -1, "Hz": 50.02, "Hz_SF": -2, "W": 12_000.0, "W_SF": 1}
    )
    assert registers[inverter.point("PhVphA").offset] == 2301
    assert registers[inverter.point("Hz").offset] == 5002
    assert registers[inverter.point("W").offset] == 1200
    assert registers[inverter.point("W_SF").offset] == 1
    values = decode_model(inverter, registers)
    assert (values["PhVphA"], values["Hz"], values["W"]) == (230.1, 50.02, 12_000.0)


def test_not_implemented_values_read_as_missing() -> None:
    inverter = model_map(INVERTER_THREE_PHASE)
    registers = encode_model(inverter, {"W": 1000.0, "W_SF": 0, "PhVphA": 230.0, "V_SF": 0})
    registers[inverter.point("W").offset] = 0x8000  # int16 sentinel
    registers[inverter.point("PhVphA").offset] = 0xFFFF  # uint16 sentinel
    values = decode_model(inverter, registers)
    assert values["W"] is None
    assert values["PhVphA"] is None
    assert values["Hz"] is None  # never given: encoded as its sentinel
    assert values["ID"] == 103
    assert values["L"] == 50


def test_a_missing_scale_factor_makes_its_points_missing() -> None:
    inverter = model_map(INVERTER_THREE_PHASE)
    registers = encode_model(inverter, {"W": 1000.0, "W_SF": 0})
    registers[inverter.point("W_SF").offset] = 0x8000  # sunssf "not implemented"
    assert decode_model(inverter, registers)["W"] is None


def test_a_value_that_does_not_fit_is_refused_naming_model_and_point() -> None:
    w = model_map(INVERTER_THREE_PHASE).point("W")
    with pytest.raises(SunSpecMapError, match=r"model 103 point W \(int16\): 40000 → raw 40000 outside"):
        encode_point(w, 40_000.0, 0, model=103)
    with pytest.raises(SunSpecMapError, match="scale factor W_SF is not implemented"):
        encode_point(w, 1.0, None, model=103)


def test_models_gridmesh_cannot_map_are_refused() -> None:
    with pytest.raises(SunSpecMapError, match="no definition of SunSpec model 9999"):
        model_map(9999)
    with pytest.raises(SunSpecMapError, match="repeating groups"):
        model_map(704)
    with pytest.raises(SunSpecMapError, match="has no point 'Watts'"):
        model_map(INVERTER_THREE_PHASE).point("Watts")
