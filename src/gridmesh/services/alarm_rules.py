"""Alarm kinds, their settings and the pure, vectorised rule that grades values against graded limits.

Nothing here keeps state: :func:`grade` takes the levels alarms stand at now and returns the levels they
should stand at, so the engine (:mod:`gridmesh.services.alarms`) can run it over 5,000 buses in one numpy
pass every cycle and touch Python only for the few elements whose level changed.

Defaults and their sources are explained in ``docs/alarms.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
LevelArray = npt.NDArray[np.int8]


class AlarmKind(StrEnum):
    VOLTAGE_LOW = "voltage-low"
    VOLTAGE_HIGH = "voltage-high"
    OVERLOAD = "overload"
    FREQUENCY = "frequency"
    STALE_DEVICE = "stale-device"
    OUTAGE = "outage"
    BAD_DATA = "bad-data"


class Severity(StrEnum):
    """Ordered from least to most urgent (see :data:`SEVERITY_RANK`)."""

    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


SEVERITY_RANK: dict[Severity, int] = {Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


class AlarmSettings(BaseModel):
    """Limits, deadbands and delays of every alarm kind. Voltages in pu of nominal, frequency in Hz,
    loading as a fraction of the element's rating (1.0 = 100 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    voltage_low_pu: float = Field(0.90, gt=0, description="EN 50160 4.2.2/5.2.2: Un -10 %")
    voltage_high_pu: float = Field(1.10, gt=0, description="EN 50160 4.2.2/5.2.2: Un +10 %")
    voltage_critical_low_pu: float = Field(0.85, gt=0, description="EN 50160: Un -15 %, 100 % of the time")
    voltage_critical_high_pu: float = Field(1.15, gt=0, description="EN 50160 5.2.2 (MV): Un +15 %, 100 % of time")
    voltage_deadband_pu: float = Field(0.005, ge=0, description="back inside the band by this much to clear")
    voltage_report_step_pu: float = Field(0.01, gt=0, description="value change that re-reports an active alarm")

    loading_warning: float = Field(0.90, gt=0, description="pre-alarm: 90 % of rating")
    loading_major: float = Field(1.00, gt=0, description="thermal rating exceeded")
    loading_critical: float = Field(1.50, gt=0, description="IEC 60076-7 normal cyclic loading current limit")
    loading_deadband: float = Field(0.02, ge=0)
    loading_report_step: float = Field(0.05, gt=0)

    frequency_low_hz: float = Field(49.5, gt=0, description="EN 50160 4.2.1: 50 Hz -1 % (99.5 % of a year)")
    frequency_high_hz: float = Field(50.5, gt=0, description="EN 50160 4.2.1: 50 Hz +1 % (99.5 % of a year)")
    frequency_critical_low_hz: float = Field(47.0, gt=0, description="EN 50160 4.2.1: 50 Hz -6 % (100 %)")
    frequency_critical_high_hz: float = Field(52.0, gt=0, description="EN 50160 4.2.1: 50 Hz +4 % (100 %)")
    frequency_deadband_hz: float = Field(0.02, ge=0)
    frequency_report_step_hz: float = Field(0.1, gt=0)

    stale_after_periods: float = Field(3.0, gt=0, description="no data for this many reporting periods")
    bad_data_residual: float = Field(3.0, gt=0, description="largest-normalised-residual test threshold")
    bad_data_clear_cycles: int = Field(3, ge=1, description="cycles a suspect must be absent before clearing")
    bad_data_report_step: float = Field(1.0, gt=0)
    outage_critical_meters: int = Field(50, ge=1, description="meters in one outage that make it critical")
    raise_delay_s: float = Field(0.0, ge=0, description="a violation must last this long before it is raised")

    @model_validator(mode="after")
    def _ordered(self) -> AlarmSettings:
        problems: list[str] = []

        def check(values: tuple[float, ...], names: str) -> None:
            if any(a >= b for a, b in pairwise(values)):
                problems.append(f"need {names} in increasing order, got {values}")

        check(
            (self.voltage_critical_low_pu, self.voltage_low_pu, self.voltage_high_pu, self.voltage_critical_high_pu),
            "voltage_critical_low_pu < voltage_low_pu < voltage_high_pu < voltage_critical_high_pu",
        )
        check(
            (self.loading_warning, self.loading_major, self.loading_critical),
            "loading_warning < loading_major < loading_critical",
        )
        check(
            (
                self.frequency_critical_low_hz,
                self.frequency_low_hz,
                self.frequency_high_hz,
                self.frequency_critical_high_hz,
            ),
            "frequency_critical_low_hz < frequency_low_hz < frequency_high_hz < frequency_critical_high_hz",
        )
        if 2 * self.voltage_deadband_pu >= self.voltage_high_pu - self.voltage_low_pu:
            problems.append("voltage_deadband_pu must be under half the voltage band, or alarms never clear")
        if 2 * self.frequency_deadband_hz >= self.frequency_high_hz - self.frequency_low_hz:
            problems.append("frequency_deadband_hz must be under half the frequency band, or alarms never clear")
        if self.loading_deadband >= self.loading_warning:
            problems.append("loading_deadband must be below loading_warning, or overload alarms never clear")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True, slots=True)
class Band:
    """One side of a graded limit: level ``k`` (1-based) stands while the value is beyond ``limits[k-1]``.

    ``upper`` bands alarm above their limits, lower bands below. ``limits`` go from the least to the most
    severe. An alarm at level ``k`` drops to a lower level only once the value is back by ``deadband``
    (hysteresis), so a value hovering at a limit does not make the alarm chatter.
    """

    name: str
    kind: AlarmKind
    upper: bool
    limits: tuple[float, ...]
    severities: tuple[Severity, ...]
    deadband: float
    report_step: float
    unit: str

    def limit_of(self, level: int) -> float:
        return self.limits[level - 1]

    def severity_of(self, level: int) -> Severity:
        return self.severities[level - 1]


def grade(band: Band, values: FloatArray, current: LevelArray) -> LevelArray:
    """The level each value stands at, given the level its alarm stands at now (0: none).

    A rising value takes the highest limit it exceeds; a falling one keeps its current level until it is
    back past that limit by the deadband. NaN values grade 0 (no alarm).
    """
    sign = 1.0 if band.upper else -1.0
    x = sign * np.asarray(values, dtype=np.float64)[:, None]
    limits = sign * np.asarray(band.limits, dtype=np.float64)[None, :]
    raised = (x > limits).sum(axis=1, dtype=np.int8)
    held = (x > limits - band.deadband).sum(axis=1, dtype=np.int8)
    levels: LevelArray = np.where(raised >= current, raised, np.minimum(current, held)).astype(np.int8)
    return levels


def measurement_bands(settings: AlarmSettings) -> tuple[Band, ...]:
    """The graded bands of the measured quantities: bus voltage, branch loading, frequency."""
    s = settings
    major_critical = (Severity.MAJOR, Severity.CRITICAL)
    return (
        Band(
            "voltage-high",
            AlarmKind.VOLTAGE_HIGH,
            True,
            (s.voltage_high_pu, s.voltage_critical_high_pu),
            major_critical,
            s.voltage_deadband_pu,
            s.voltage_report_step_pu,
            "pu",
        ),
        Band(
            "voltage-low",
            AlarmKind.VOLTAGE_LOW,
            False,
            (s.voltage_low_pu, s.voltage_critical_low_pu),
            major_critical,
            s.voltage_deadband_pu,
            s.voltage_report_step_pu,
            "pu",
        ),
        Band(
            "overload",
            AlarmKind.OVERLOAD,
            True,
            (s.loading_warning, s.loading_major, s.loading_critical),
            (Severity.WARNING, Severity.MAJOR, Severity.CRITICAL),
            s.loading_deadband,
            s.loading_report_step,
            "",
        ),
        Band(
            "frequency-high",
            AlarmKind.FREQUENCY,
            True,
            (s.frequency_high_hz, s.frequency_critical_high_hz),
            major_critical,
            s.frequency_deadband_hz,
            s.frequency_report_step_hz,
            "Hz",
        ),
        Band(
            "frequency-low",
            AlarmKind.FREQUENCY,
            False,
            (s.frequency_low_hz, s.frequency_critical_low_hz),
            major_critical,
            s.frequency_deadband_hz,
            s.frequency_report_step_hz,
            "Hz",
        ),
    )


def frequency_side_upper(settings: AlarmSettings, value_hz: float) -> bool:
    """Whether a frequency alarm with this value belongs to the upper band (both share one alarm id)."""
    return value_hz > (settings.frequency_low_hz + settings.frequency_high_hz) / 2


def describe(band: Band, source: str, value: float, level: int) -> str:
    """The operator's sentence for a graded alarm: what, where, value against the limit in force."""
    limit = band.limit_of(level)
    if band.kind is AlarmKind.OVERLOAD:
        what = "loading near its rating" if level == 1 else "overloaded"
        return f"{source} {what}: {value:.0%} of rating (limit {limit:.0%})"
    direction = "above" if band.upper else "below"
    if band.kind is AlarmKind.FREQUENCY:
        return f"Frequency at {source} {direction} band: {value:.2f} Hz (limit {limit:.2f} Hz)"
    word = "high" if band.upper else "low"
    return f"Voltage {word} at bus {source}: {value:.3f} pu {direction} the {limit:.3f} pu limit"


def describe_stale(device: str, age_s: float, period_s: float, limit_s: float) -> str:
    return f"No data from {device} for {age_s:.0f} s (reports every {period_s:g} s; limit {limit_s:g} s)"


def describe_bad_data(element: str, quantity: str, residual: float, limit: float) -> str:
    return (
        f"Suspected bad data: {quantity} at {element} has normalised residual {residual:.1f} "
        f"(limit {limit:.1f}); check the sensor"
    )


def describe_outage(area: str, meters: tuple[str, ...], shown: int = 5) -> str:
    """Names the first ``shown`` meters; the full list travels in the alarm's ``devices``."""
    if not meters:
        return f"Supply restored at {area}"
    listed = ", ".join(meters[:shown])
    more = f" (+{len(meters) - shown} more)" if len(meters) > shown else ""
    plural = "s" if len(meters) != 1 else ""
    return f"Outage at {area}: {len(meters)} customer{plural} without supply (last gasp from {listed}{more})"
