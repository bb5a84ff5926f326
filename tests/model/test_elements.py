"""Per-field schema of the elements: ranges, cross-field checks, derived properties."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridmesh.model.elements import (
    ELEMENT_TYPES,
    TABLES,
    Battery,
    Bus,
    Generator,
    Line,
    Site,
    Switch,
    Transformer,
)
from gridmesh.model.kinds import GeneratorKind, SiteLevel, VoltageLevel

TRAFO = {
    "id": "t",
    "hv_bus": "a",
    "lv_bus": "b",
    "sn_kva": 400,
    "vn_hv_kv": 20,
    "vn_lv_kv": 0.4,
    "vk_percent": 6,
    "vkr_percent": 1,
}
LINE = {
    "id": "l",
    "from_bus": "a",
    "to_bus": "b",
    "length_km": 1,
    "r_ohm_per_km": 0.2,
    "x_ohm_per_km": 0.1,
    "max_i_a": 200,
}


def _failed_fields(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in err["loc"]) for err in exc.value.errors()}


def test_tables_name_every_element_type_once() -> None:
    assert set(TABLES.values()) == set(ELEMENT_TYPES)
    assert len(TABLES) == len(ELEMENT_TYPES)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_i_a", -1.0), ("max_i_a", 0.0), ("length_km", 0.0), ("r_ohm_per_km", -0.1), ("parallel", 0)],
)
def test_line_rejects_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as exc:
        Line.model_validate(LINE | {field: value})
    assert _failed_fields(exc) == {field}


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        Line.model_validate(LINE | {"max_i_ka": 0.2})
    assert _failed_fields(exc) == {"max_i_ka"}


def test_elements_are_frozen() -> None:
    line = Line.model_validate(LINE)
    with pytest.raises(ValidationError):
        line.max_i_a = 10.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vkr_percent": 6}, "vkr_percent must be smaller than vk_percent"),
        ({"tap_min": -2, "tap_max": 2, "tap_pos": 3}, "tap_pos must lie between"),
        ({"shift_degree": 45}, "multiple of 30"),
    ],
)
def test_transformer_cross_field_checks(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Transformer.model_validate(TRAFO | change)


def test_transformer_accepts_reversed_tap_range_and_dyn5() -> None:
    trafo = Transformer.model_validate(TRAFO | {"tap_min": 2, "tap_max": -2, "tap_pos": 1, "shift_degree": 150})
    assert (trafo.tap_pos, trafo.shift_degree) == (1, 150)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"soc_min": 0.9, "soc_max": 0.5}, "soc_min must be smaller than soc_max"),
        ({"soc_init": 0.95}, "soc_init must lie in the SOC window"),
        ({"eta_charge": 1.2}, "less than or equal to 1"),
    ],
)
def test_battery_checks(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Battery.model_validate({"id": "b", "bus": "x", "e_kwh": 10, "p_kw": 5} | change)


@pytest.mark.parametrize(
    ("vn_kv", "level"),
    [
        (0.4, VoltageLevel.LV),
        (1.0, VoltageLevel.LV),
        (20.0, VoltageLevel.MV),
        (110.0, VoltageLevel.HV),
        (380.0, VoltageLevel.EHV),
    ],
)
def test_bus_voltage_level_is_derived_from_vn_kv(vn_kv: float, level: VoltageLevel) -> None:
    assert Bus(id="b", vn_kv=vn_kv).voltage_level is level


def test_bus_voltage_level_given_wins() -> None:
    assert Bus(id="b", vn_kv=0.4, level=VoltageLevel.MV).voltage_level is VoltageLevel.MV


@pytest.mark.parametrize(
    ("normally_closed", "closed", "expected"),
    [(True, None, True), (False, None, False), (True, False, False), (False, True, True)],
)
def test_switch_present_state_defaults_to_normal_state(
    normally_closed: bool, closed: bool | None, expected: bool
) -> None:
    sw = Switch(id="s", bus="a", element="b", normally_closed=normally_closed, closed=closed)
    assert sw.is_closed is expected


def test_enum_fields_parse_from_strings() -> None:
    gen = Generator.model_validate({"id": "g", "bus": "a", "kind": "micro_hydro", "p_kw": 10})
    site = Site.model_validate({"id": "s", "level": 2, "members": ["m"]})
    assert gen.kind is GeneratorKind.MICRO_HYDRO
    assert site.level is SiteLevel.GROUP
    assert not GeneratorKind.CHP.renewable
    assert GeneratorKind.PV.renewable
