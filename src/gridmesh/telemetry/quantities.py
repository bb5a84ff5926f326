"""The measured quantities a device may report, with their unit and plausible range.

Names follow the IEC 61850-7-4 data objects of MMXU (measurements) and MMTR (metering) where one exists
(``TotW``, ``TotVAr``, ``PhV``, ``A``, ``Hz``, ``TotWh``), and IEC 61850-7-420 / XCBR names for storage and
switches. A reading outside its range is physically implausible for a distribution grid and is rejected
at ingest (the range is wide on purpose: it catches unit mistakes and corrupt values, not abnormal states,
which are the alarms' business).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """IEC 61850 phase reference: a single phase, neutral, or the three-phase total/positive sequence."""

    TOTAL = ""
    A = "A"
    B = "B"
    C = "C"
    NEUTRAL = "N"


class Quality(StrEnum):
    """IEC 61850 quality validity of one reading."""

    GOOD = "good"
    QUESTIONABLE = "questionable"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str
    low: float
    high: float
    description: str


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("TotW", "W", -1e9, 1e9, "total active power (generator convention for sources, load for meters)"),
        Quantity("TotVAr", "var", -1e9, 1e9, "total reactive power"),
        Quantity("TotVA", "VA", 0.0, 1e9, "total apparent power"),
        Quantity("TotPF", "1", -1.0, 1.0, "power factor"),
        Quantity("PhV", "V", 0.0, 1e6, "phase-to-neutral voltage magnitude (phase given) or line-to-line equivalent"),
        Quantity("PPV", "V", 0.0, 1e6, "phase-to-phase voltage magnitude"),
        Quantity("A", "A", 0.0, 1e5, "current magnitude"),
        Quantity("Hz", "Hz", 40.0, 70.0, "frequency"),
        Quantity("TotWh", "Wh", 0.0, 1e15, "active energy register"),
        Quantity("SocPct", "%", 0.0, 100.0, "battery state of charge (IEC 61850-7-420)"),
        Quantity("WSpt", "W", -1e9, 1e9, "active power setpoint in force"),
        Quantity("Pos", "1", 0.0, 3.0, "switch position (XCBR/XSWI Dbpos: 0 intermediate, 1 open, 2 closed, 3 bad)"),
        Quantity("FltInd", "1", 0.0, 1.0, "fault passage indicator (1: fault current passed)"),
        Quantity("Tmp", "°C", -60.0, 200.0, "temperature"),
    )
}

# Switch positions as IEC 61850 Dbpos values.
POS_INTERMEDIATE, POS_OPEN, POS_CLOSED, POS_BAD = 0.0, 1.0, 2.0, 3.0
