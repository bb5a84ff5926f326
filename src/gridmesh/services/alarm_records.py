"""What crosses the alarm engine's boundary: the state it judges, the alarm record, the change notices it
emits, and their round trip through the event log.

An :class:`Alarm` is immutable: each change produces a new record, so a record handed to the historian or
the WebSocket never changes under the reader. The id is stable per condition (``voltage-high:<bus>``); a
condition that clears and comes back is a new *instance* with the same id and a later ``raised_ns``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from gridmesh.errors import GridmeshError
from gridmesh.services.alarm_rules import AlarmKind, FloatArray, Severity
from gridmesh.services.historian.base import StoredEvent

EVENT_KIND = "alarm"


IdList = Sequence[str] | npt.NDArray[np.str_]


def _ids(values: IdList) -> tuple[str, ...]:
    if isinstance(values, np.ndarray):
        return tuple(str(v) for v in values.tolist())
    return tuple(values)


@dataclass(frozen=True)
class ObservedState:
    """What the alarms judge, one estimator cycle: bus voltages (pu; NaN = de-energised), branch loadings
    (fraction of rating; NaN = out of service), frequencies per device (Hz), when each device last sent
    data (UTC ns) and how often it should (s), and the estimator's bad-data suspects
    ``(element, quantity, normalised residual)``.

    An element absent from the state is not judged, so its alarm stands; only devices listed in
    ``expected_period_s`` are watched for staleness.
    """

    bus_ids: IdList = ()
    v_pu: FloatArray = field(default_factory=lambda: np.empty(0))
    branch_ids: IdList = ()
    loading: FloatArray = field(default_factory=lambda: np.empty(0))
    frequency_hz: Mapping[str, float] = field(default_factory=dict)
    last_seen_ns: Mapping[str, int] = field(default_factory=dict)
    expected_period_s: Mapping[str, float] = field(default_factory=dict)
    suspects: Sequence[tuple[str, str, float]] = ()

    def __post_init__(self) -> None:
        for ids_name, values_name in (("bus_ids", "v_pu"), ("branch_ids", "loading")):
            ids = _ids(getattr(self, ids_name))
            values = np.asarray(getattr(self, values_name), dtype=np.float64)
            if values.ndim != 1 or len(values) != len(ids):
                raise ValueError(
                    f"{values_name} has shape {values.shape} but there are {len(ids)} {ids_name}: "
                    f"give one value per id, in the same order"
                )
            object.__setattr__(self, ids_name, ids)
            object.__setattr__(self, values_name, values)
        bad = [d for d, p in self.expected_period_s.items() if not p > 0]
        if bad:
            raise ValueError(f"expected_period_s must be > 0 s; fix the reporting period of {bad[:5]}")


class AlarmState(StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"


class ChangeKind(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"


class UnknownAlarm(GridmeshError, KeyError):
    """No alarm with this id can be acknowledged (never raised, or cleared and already acknowledged)."""

    def __str__(self) -> str:  # KeyError would quote the whole sentence
        return str(self.args[0]) if self.args else "unknown alarm"


class CorruptAlarmEvent(GridmeshError):
    """A stored alarm event cannot be read back into an alarm."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm instance. Times are UTC ns. ``value`` and ``limit`` are in ``unit`` (``""``: a fraction,
    e.g. loading; outages count customers and have no limit). ``devices`` lists the meters of an outage.
    """

    id: str
    kind: AlarmKind
    source: str
    severity: Severity
    message: str
    value: float
    limit: float | None
    unit: str
    raised_ns: int
    updated_ns: int
    cleared_ns: int | None = None
    acked_by: str | None = None
    acked_ns: int | None = None
    devices: tuple[str, ...] = ()

    @property
    def state(self) -> AlarmState:
        return AlarmState.ACTIVE if self.cleared_ns is None else AlarmState.CLEARED

    @property
    def acknowledged(self) -> bool:
        return self.acked_ns is not None

    @property
    def last_ns(self) -> int:
        """When anything last happened to this instance (raise, update, clear or acknowledgement)."""
        return max(self.updated_ns, self.cleared_ns or 0, self.acked_ns or 0)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (enums as strings, ``devices`` as a list)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "source": self.source,
            "severity": str(self.severity),
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "raised_ns": self.raised_ns,
            "updated_ns": self.updated_ns,
            "cleared_ns": self.cleared_ns,
            "acked_by": self.acked_by,
            "acked_ns": self.acked_ns,
            "devices": list(self.devices),
            "state": str(self.state),
            "acknowledged": self.acknowledged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alarm:
        """Inverse of :meth:`as_dict` (derived fields ``state``/``acknowledged`` are ignored)."""
        try:
            limit = data["limit"]
            return cls(
                id=str(data["id"]),
                kind=AlarmKind(data["kind"]),
                source=str(data["source"]),
                severity=Severity(data["severity"]),
                message=str(data["message"]),
                value=float(data["value"]),
                limit=None if limit is None else float(limit),
                unit=str(data["unit"]),
                raised_ns=int(data["raised_ns"]),
                updated_ns=int(data["updated_ns"]),
                cleared_ns=_optional_int(data.get("cleared_ns")),
                acked_by=None if data.get("acked_by") is None else str(data["acked_by"]),
                acked_ns=_optional_int(data.get("acked_ns")),
                devices=tuple(str(d) for d in data.get("devices", ())),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptAlarmEvent(
                f"stored alarm {data.get('id', '?')!r} cannot be read ({exc!r}); it was written by an "
                "incompatible version: drop that event or migrate the event log"
            ) from exc


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What happened to an alarm and when; ``alarm`` is the record after the change."""

    change: ChangeKind
    alarm: Alarm
    ts_ns: int

    def to_event(self) -> StoredEvent:
        """The event-log line the centre stores (kind ``alarm``, ``data`` = the alarm plus ``change``)."""
        alarm = self.alarm
        if self.change is ChangeKind.ACKNOWLEDGED:
            message = f"acknowledged by {alarm.acked_by}: {alarm.message}"
        else:
            message = f"{self.change}: {alarm.message}"
        severity = str(alarm.severity) if self.change in (ChangeKind.RAISED, ChangeKind.UPDATED) else "info"
        data = {"change": str(self.change), **alarm.as_dict()}
        return StoredEvent(
            ts_ns=self.ts_ns, kind=EVENT_KIND, source=alarm.source, message=message, severity=severity, data=data
        )


def alarms_from_events(events: Iterable[StoredEvent]) -> list[Alarm]:
    """The latest record of every alarm instance found in an event log (other event kinds are skipped).

    Instances are told apart by ``(id, raised_ns)``; the event stored last (by time, then log order) wins.
    """
    latest: dict[tuple[str, int], Alarm] = {}
    ordered = sorted((e for e in events if e.kind == EVENT_KIND), key=lambda e: e.ts_ns)
    for event in ordered:
        if event.data is None:
            raise CorruptAlarmEvent(
                f"alarm event at {event.ts_ns} from {event.source!r} has no data; drop it or migrate the log"
            )
        alarm = Alarm.from_dict(event.data)
        latest[(alarm.id, alarm.raised_ns)] = alarm
    return list(latest.values())


def raised(
    kind: AlarmKind,
    source: str,
    severity: Severity,
    message: str,
    value: float,
    limit: float | None,
    unit: str,
    ts_ns: int,
    *,
    key: str | None = None,
    devices: tuple[str, ...] = (),
) -> AlarmChange:
    """A new alarm instance, its id ``<kind>:<key>`` (``key`` defaults to the source)."""
    alarm_id = f"{kind}:{source if key is None else key}"
    alarm = Alarm(alarm_id, kind, source, severity, message, value, limit, unit, ts_ns, ts_ns, devices=devices)
    return AlarmChange(ChangeKind.RAISED, alarm, ts_ns)


def cleared(alarm: Alarm, ts_ns: int) -> AlarmChange:
    return AlarmChange(ChangeKind.CLEARED, replace(alarm, cleared_ns=ts_ns), ts_ns)
