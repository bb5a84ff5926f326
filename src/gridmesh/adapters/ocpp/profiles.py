"""Charging limits as OCPP charging profiles, both ways: a plan in kW → a profile, a profile → the limit now.

The centre limits a whole station (``ChargingStationMaxProfile`` on EVSE 0 in 2.0.1,
``ChargePointMaxProfile`` on connector 0 in 1.6), absolute from the moment it is sent, in watts. The
simulated station reads any profile it is given (W or A, absolute or relative, any purpose) and limits
its power to the lowest limit that applies now, as OCPP 2.0.1 §K "composite schedule" prescribes for
the station maximum over the transaction limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from ocpp.v16 import datatypes as dt16
from ocpp.v16 import enums as en16
from ocpp.v201 import datatypes as dt201
from ocpp.v201 import enums as en201

STATION_PROFILE_ID = 1  # one id per purpose: a new plan replaces the previous one (same id and stack level)
VOLTS = 230.0  # phase voltage to turn an ampere limit into watts
DEFAULT_PHASES = 3

# A plan: a constant limit in kW, or periods ((seconds from now, kW), …) starting with second 0.
Plan = float | Sequence[tuple[int, float]]


def plan_periods(charger_id: str, plan: Plan) -> tuple[tuple[int, float], ...]:
    """The plan as periods with the first at second 0, in watts; a clear error names the charger."""
    periods = ((0, float(plan)),) if isinstance(plan, int | float) else tuple((int(s), float(p)) for s, p in plan)
    if not periods or periods[0][0] != 0:
        raise ValueError(f"charging plan for {charger_id}: the first period must start at second 0")
    if any(b[0] <= a[0] for a, b in pairwise(periods)):
        raise ValueError(f"charging plan for {charger_id}: period starts must increase")
    if any(not p >= 0 for _, p in periods):
        raise ValueError(f"charging plan for {charger_id}: limits must be ≥ 0 kW")
    return tuple((s, round(p * 1000.0, 1)) for s, p in periods)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def station_profile_v201(periods_w: Sequence[tuple[int, float]], start: datetime) -> dt201.ChargingProfileType:
    return dt201.ChargingProfileType(
        id=STATION_PROFILE_ID,
        stack_level=0,
        charging_profile_purpose=en201.ChargingProfilePurposeEnumType.charging_station_max_profile,
        charging_profile_kind=en201.ChargingProfileKindEnumType.absolute,
        charging_schedule=[
            dt201.ChargingScheduleType(
                id=STATION_PROFILE_ID,
                charging_rate_unit=en201.ChargingRateUnitEnumType.watts,
                start_schedule=_iso(start),
                charging_schedule_period=[
                    dt201.ChargingSchedulePeriodType(start_period=s, limit=w) for s, w in periods_w
                ],
            )
        ],
    )


def station_profile_v16(periods_w: Sequence[tuple[int, float]], start: datetime) -> dt16.ChargingProfile:
    return dt16.ChargingProfile(
        charging_profile_id=STATION_PROFILE_ID,
        stack_level=0,
        charging_profile_purpose=en16.ChargingProfilePurposeType.charge_point_max_profile,
        charging_profile_kind=en16.ChargingProfileKindType.absolute,
        charging_schedule=dt16.ChargingSchedule(
            charging_rate_unit=en16.ChargingRateUnitType.watts,
            start_schedule=_iso(start),
            charging_schedule_period=[dt16.ChargingSchedulePeriod(start_period=s, limit=w) for s, w in periods_w],
        ),
    )


@dataclass(frozen=True, slots=True)
class ActiveProfile:
    """A received profile reduced to what limits power: purpose, stack level, start, periods in W."""

    profile_id: int
    purpose: str
    stack_level: int
    start: datetime | None  # None: relative, counted from ``received``
    received: datetime
    duration_s: float | None
    periods_w: tuple[tuple[float, float], ...]

    def limit_w(self, now: datetime) -> float | None:
        """This profile's limit at ``now``; None before its start or after its duration."""
        elapsed = (now - (self.start or self.received)).total_seconds()
        if elapsed < 0 or (self.duration_s is not None and elapsed >= self.duration_s):
            return None
        current = None
        for start_s, limit in self.periods_w:
            if start_s <= elapsed:
                current = limit
        return current


def parse_profile(profile: Mapping[str, Any], received: datetime) -> ActiveProfile:
    """A profile as the ``ocpp`` library hands it to a handler (snake_case dict), either version.

    Raises:
        ValueError: the profile has no schedule or an unknown rate unit.
    """
    schedules = profile["charging_schedule"]
    schedule = schedules[0] if isinstance(schedules, list) else schedules  # 2.0.1: a list; 1.6: one
    unit = schedule["charging_rate_unit"]
    if unit not in ("W", "A"):
        raise ValueError(f"unknown charging rate unit {unit!r}")
    periods = []
    for period in schedule["charging_schedule_period"]:
        watts = float(period["limit"])
        if unit == "A":
            watts *= VOLTS * int(period.get("number_phases") or DEFAULT_PHASES)
        periods.append((float(period["start_period"]), watts))
    start = schedule.get("start_schedule")
    relative = profile["charging_profile_kind"] == "Relative"
    return ActiveProfile(
        profile_id=int(profile.get("id", profile.get("charging_profile_id", 0))),
        purpose=str(profile["charging_profile_purpose"]),
        stack_level=int(profile["stack_level"]),
        start=None if relative or start is None else datetime.fromisoformat(start),
        received=received,
        duration_s=None if schedule.get("duration") is None else float(schedule["duration"]),
        periods_w=tuple(sorted(periods)),
    )


def limit_kw(profiles: Sequence[ActiveProfile], now: datetime) -> float | None:
    """The lowest limit over purposes (kW), each purpose's from its highest stack level in force now."""
    best: dict[str, tuple[int, float]] = {}
    for profile in profiles:
        watts = profile.limit_w(now)
        if watts is None:
            continue
        held = best.get(profile.purpose)
        if held is None or profile.stack_level > held[0]:
            best[profile.purpose] = (profile.stack_level, watts)
    if "TxProfile" in best:  # a transaction's own profile overrules the default one (OCPP 2.0.1 K01.FR.05)
        best.pop("TxDefaultProfile", None)
    return min(w for _, w in best.values()) / 1000.0 if best else None
