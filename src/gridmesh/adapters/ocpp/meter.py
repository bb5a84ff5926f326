"""OCPP sampled values → :class:`MeterRow`, for both versions (payloads as the ``ocpp`` library hands them).

Defaults follow the specifications: a sampled value without a measurand is the energy import register,
in Wh; OCPP 2.0.1 scales a value by ``10 ** unit_of_measure.multiplier``; OCPP 1.6 sends values as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from gridmesh.adapters.ocpp.sink import MeterRow
from gridmesh.adapters.ocpp.state import ENERGY_REGISTER

DEFAULT_UNIT = "Wh"


def rows_v201(
    charger_id: str, evse: int, transaction_id: str | None, meter_values: Iterable[Mapping[str, Any]]
) -> list[MeterRow]:
    rows = []
    for meter_value in meter_values:
        ts = datetime.fromisoformat(meter_value["timestamp"])
        for sv in meter_value["sampled_value"]:
            unit = sv.get("unit_of_measure") or {}
            rows.append(
                MeterRow(
                    charger_id,
                    evse,
                    transaction_id,
                    ts,
                    sv.get("measurand", ENERGY_REGISTER),
                    float(sv["value"]) * 10.0 ** int(unit.get("multiplier", 0)),
                    unit.get("unit", DEFAULT_UNIT),
                    sv.get("phase"),
                    sv.get("context"),
                )
            )
    return rows


def rows_v16(
    charger_id: str, connector: int, transaction_id: str | None, meter_values: Iterable[Mapping[str, Any]]
) -> list[MeterRow]:
    """1.6 values are strings; a value that is not a number is refused by the caller as a PropertyConstraint."""
    rows = []
    for meter_value in meter_values:
        ts = datetime.fromisoformat(meter_value["timestamp"])
        for sv in meter_value["sampled_value"]:
            rows.append(
                MeterRow(
                    charger_id,
                    connector,
                    transaction_id,
                    ts,
                    sv.get("measurand", ENERGY_REGISTER),
                    float(sv["value"]),
                    sv.get("unit", DEFAULT_UNIT),
                    sv.get("phase"),
                    sv.get("context"),
                )
            )
    return rows
