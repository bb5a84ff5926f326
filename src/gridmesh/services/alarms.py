"""The alarm engine: judges each estimated state, groups last gasps into outages, keeps acknowledgements.

Every cycle (5 s) the state estimator's result is handed to :meth:`AlarmEngine.evaluate`. Limits are
checked with numpy over all buses and branches at once (:func:`~gridmesh.services.alarm_rules.grade`);
Python only walks the few elements that are, or were, in violation. Each raise, update, clear and
acknowledgement is an :class:`~gridmesh.services.alarm_records.AlarmChange`; the engine hands a cycle's
changes to ``on_change`` (the centre stores them as ``alarm`` events and pushes them to the WebSocket)
*before* it adopts them, so if storing fails the alarms stay as they were and the next cycle tries again.

Calls may come from several threads (estimator loop, ingest, API); one lock serialises them and
``on_change`` runs under it, so it must be short and must not call back into the engine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from gridmesh.errors import GridmeshError
from gridmesh.services.alarm_records import (
    Alarm,
    AlarmChange,
    AlarmState,
    ChangeKind,
    ObservedState,
    UnknownAlarm,
    alarms_from_events,
    cleared,
    raised,
)
from gridmesh.services.alarm_rules import (
    SEVERITY_RANK,
    AlarmKind,
    AlarmSettings,
    Band,
    FloatArray,
    Severity,
    describe,
    describe_bad_data,
    describe_outage,
    describe_stale,
    frequency_side_upper,
    grade,
    measurement_bands,
)
from gridmesh.services.historian.base import StoredEvent

__all__ = [
    "Alarm",
    "AlarmChange",
    "AlarmEngine",
    "AlarmKind",
    "AlarmSettings",
    "AlarmState",
    "ChangeHandler",
    "ChangeKind",
    "ObservedState",
    "Severity",
    "UnknownAlarm",
]

ChangeHandler = Callable[[Sequence[AlarmChange]], None]
_NEVER = np.iinfo(np.int64).min


class _Positions:
    """Id → position in the state's arrays, rebuilt only when the id tuple changes (topology change)."""

    def __init__(self) -> None:
        self._ids: tuple[str, ...] = ()
        self._index: dict[str, int] = {}

    def of(self, ids: tuple[str, ...]) -> dict[str, int]:
        if ids != self._ids:
            self._ids, self._index = ids, {x: i for i, x in enumerate(ids)}
        return self._index


class AlarmEngine:
    """Raises, updates and clears alarms; groups last gasps into outages; records acknowledgements.

    Args:
        settings: limits, deadbands and delays (defaults: EN 50160, see ``docs/alarms.md``).
        on_change: receives every batch of changes before the engine adopts them (store + push).
        outage_area: bus id → the area an outage is reported for (a feeder); buses not listed are their
            own area.
        history: how many cleared alarms to keep for :meth:`all` and late acknowledgement.
    """

    def __init__(
        self,
        settings: AlarmSettings | None = None,
        *,
        on_change: ChangeHandler | None = None,
        outage_area: Mapping[str, str] | None = None,
        history: int = 10_000,
    ) -> None:
        self.settings = settings or AlarmSettings()
        self._bands = measurement_bands(self.settings)
        self._on_change = on_change
        self._area = dict(outage_area or {})
        self._history = history
        self._lock = threading.RLock()
        self._active: dict[str, Alarm] = {}
        self._cleared: OrderedDict[tuple[str, int], Alarm] = OrderedDict()
        self._positions = {"bus": _Positions(), "branch": _Positions()}
        self._pending: dict[tuple[str, str], int] = {}  # (band, alarm id) → first violation, ns
        self._absent: dict[str, int] = {}  # bad-data alarm id → consecutive cycles without the suspect
        self._first_expected: dict[str, int] = {}  # devices never heard from → when first expected
        self._outage_of: dict[str, str] = {}  # meter → outage alarm id
        self._gasp_ns: dict[str, int] = {}  # meter → when its last gasp was recorded

    # ------------------------------------------------------------------ public
    def evaluate(self, now_ns: int, state: ObservedState) -> list[AlarmChange]:
        """Judge one estimated state; returns (and hands to ``on_change``) the changes it caused."""
        with self._lock:
            changes: list[AlarmChange] = []
            for band in self._bands:
                ids, values = self._inputs(band, state)
                changes += self._evaluate_band(band, ids, values, now_ns)
            changes += self._restored_by_data(now_ns, state.last_seen_ns)
            changes += self._evaluate_stale(now_ns, state)
            changes += self._evaluate_bad_data(now_ns, state.suspects)
            # A frequency swinging across the band clears one instance and raises another with the same id.
            changes.sort(key=lambda c: c.change is not ChangeKind.CLEARED)
            return self._commit(changes)

    def last_gasp(self, device: str, bus: str, ts_ns: int) -> list[AlarmChange]:
        """A meter reported losing supply: it joins (or opens) the outage alarm of its bus's area."""
        with self._lock:
            area = self._area.get(bus, bus)
            alarm_id = f"{AlarmKind.OUTAGE}:{area}"
            held = self._outage_of.get(device)
            if held == alarm_id:
                return []  # the same gasp delivered twice
            changes = [] if held is None else [self._without(held, device, ts_ns)]
            existing = self._active.get(alarm_id)
            meters = tuple(sorted({*existing.devices, device})) if existing else (device,)
            changes.append(self._outage(alarm_id, area, meters, ts_ns, existing))
            return self._commit(changes)

    def restored(self, device: str, ts_ns: int) -> list[AlarmChange]:
        """A meter reported supply back: it leaves its outage, which clears when no meter is left."""
        with self._lock:
            held = self._outage_of.get(device)
            return [] if held is None else self._commit([self._without(held, device, ts_ns)])

    def acknowledge(self, alarm_id: str, user: str, now_ns: int) -> Alarm:
        """An operator has seen the alarm. Acknowledges the active instance, else the latest cleared one
        still unacknowledged; acknowledging twice is harmless and returns the record as it stands."""
        if not user.strip():
            raise ValueError("acknowledge needs the operator's user name, for the audit trail")
        with self._lock:
            instances = [a for a in self._cleared.values() if a.id == alarm_id]
            if alarm_id in self._active:
                instances.append(self._active[alarm_id])
            if not instances:
                raise UnknownAlarm(
                    f"no alarm {alarm_id!r}: never raised, or gone from the history; see active() or all()"
                )
            waiting = [a for a in instances if not a.acknowledged]
            if not waiting:
                return max(instances, key=lambda a: a.raised_ns)
            target = max(waiting, key=lambda a: (a.state is AlarmState.ACTIVE, a.raised_ns))
            acked = replace(target, acked_by=user, acked_ns=now_ns)
            self._commit([AlarmChange(ChangeKind.ACKNOWLEDGED, acked, now_ns)])
            return acked

    def active(self) -> list[Alarm]:
        """Active alarms, most severe first, then oldest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (-SEVERITY_RANK[a.severity], a.raised_ns, a.id))

    def all(self, limit: int = 100) -> list[Alarm]:
        """Active and cleared alarms, the most recently changed first."""
        with self._lock:
            alarms = [*self._active.values(), *self._cleared.values()]
        return sorted(alarms, key=lambda a: (a.last_ns, a.id), reverse=True)[:limit]

    def restore(self, events: Iterable[StoredEvent]) -> int:
        """Rebuild alarms from the stored ``alarm`` events after a restart; returns how many are active.

        Call once on a fresh engine: acknowledgements, outage membership and hysteresis carry on as before.
        """
        with self._lock:
            if self._active or self._cleared:
                raise GridmeshError("restore() rebuilds a fresh engine: call it at start-up, before any alarm")
            for alarm in sorted(alarms_from_events(events), key=lambda a: a.raised_ns):
                if alarm.state is AlarmState.ACTIVE:
                    self._active[alarm.id] = alarm  # a later instance of the same id supersedes
                else:
                    self._remember(alarm)
            for alarm in self._active.values():
                for meter in alarm.devices:
                    self._outage_of[meter] = alarm.id
                    self._gasp_ns[meter] = alarm.updated_ns
            return len(self._active)

    # ------------------------------------------------------------------ measured limits
    def _inputs(self, band: Band, state: ObservedState) -> tuple[tuple[str, ...], FloatArray]:
        if band.kind is AlarmKind.OVERLOAD:
            return tuple(state.branch_ids), state.loading
        if band.kind is AlarmKind.FREQUENCY:
            known = {d: f for d, f in state.frequency_hz.items() if np.isfinite(f)}  # NaN: not measured
            return tuple(known), np.fromiter(known.values(), np.float64, len(known))
        return tuple(state.bus_ids), state.v_pu

    def _in_band(self, band: Band, alarm: Alarm) -> bool:
        if alarm.kind is not band.kind:
            return False
        return band.kind is not AlarmKind.FREQUENCY or frequency_side_upper(self.settings, alarm.value) == band.upper

    def _index(self, band: Band, ids: tuple[str, ...]) -> dict[str, int]:
        if band.kind is AlarmKind.FREQUENCY:
            return {x: i for i, x in enumerate(ids)}  # a few devices, changing from cycle to cycle
        return self._positions["branch" if band.kind is AlarmKind.OVERLOAD else "bus"].of(ids)

    def _evaluate_band(self, band: Band, ids: tuple[str, ...], values: FloatArray, now_ns: int) -> list[AlarmChange]:
        current = np.zeros(len(ids), dtype=np.int8)
        standing = {a.source: a for a in self._active.values() if self._in_band(band, a)}
        if standing:
            index = self._index(band, ids)
            for source, alarm in standing.items():
                if (pos := index.get(source)) is not None:
                    current[pos] = band.severities.index(alarm.severity) + 1
        levels = grade(band, values, current)
        changes: list[AlarmChange] = []
        candidates: set[tuple[str, str]] = set()
        for i in np.flatnonzero((levels > 0) | (current > 0)):
            new, old, value, source = int(levels[i]), int(current[i]), float(values[i]), ids[i]
            alarm_id = f"{band.kind}:{source}"
            previous = standing.get(source)
            if previous is None:
                if self._due(band, alarm_id, now_ns, candidates):
                    message = describe(band, source, value, new)
                    severity, limit = band.severity_of(new), band.limit_of(new)
                    changes.append(raised(band.kind, source, severity, message, value, limit, band.unit, now_ns))
            elif new == 0:
                changes.append(cleared(previous, now_ns))
            elif new != old or abs(value - previous.value) >= band.report_step:
                alarm = self._escalated(previous, band.severity_of(new), now_ns)
                message = describe(band, source, value, new)
                alarm = replace(alarm, message=message, value=value, limit=band.limit_of(new))
                changes.append(AlarmChange(ChangeKind.UPDATED, alarm, now_ns))
        self._pending = {k: t for k, t in self._pending.items() if k[0] != band.name or k in candidates}
        return changes

    def _due(self, band: Band, alarm_id: str, now_ns: int, candidates: set[tuple[str, str]]) -> bool:
        """Whether a new violation has lasted ``raise_delay_s`` (it is remembered until it does)."""
        if self.settings.raise_delay_s <= 0:
            return True
        key = (band.name, alarm_id)
        candidates.add(key)
        first = self._pending.setdefault(key, now_ns)
        return now_ns - first >= self.settings.raise_delay_s * 1e9

    @staticmethod
    def _escalated(alarm: Alarm, severity: Severity, now_ns: int) -> Alarm:
        """A more severe alarm needs a fresh acknowledgement: the operator must see the worse condition."""
        if SEVERITY_RANK[severity] > SEVERITY_RANK[alarm.severity]:
            return replace(alarm, severity=severity, updated_ns=now_ns, acked_by=None, acked_ns=None)
        return replace(alarm, severity=severity, updated_ns=now_ns)

    # ------------------------------------------------------------------ stale devices and bad data
    def _evaluate_stale(self, now_ns: int, state: ObservedState) -> list[AlarmChange]:
        periods = state.expected_period_s
        devices = list(periods)
        n = len(devices)
        period_s = np.fromiter(periods.values(), np.float64, n)
        seen = np.fromiter((state.last_seen_ns.get(d, _NEVER) for d in devices), np.int64, n)
        never = np.flatnonzero(seen == _NEVER)
        self._first_expected = {devices[i]: self._first_expected.get(devices[i], now_ns) for i in never}
        seen[never] = [self._first_expected[devices[i]] for i in never]
        age_s = (now_ns - seen) / 1e9
        limit_s = self.settings.stale_after_periods * period_s
        stale = {
            devices[i]: i for i in np.flatnonzero(age_s > limit_s) if devices[i] not in self._outage_of
        }  # a meter in an outage is silent for a known reason
        changes: list[AlarmChange] = []
        standing = {a.source: a for a in self._active.values() if a.kind is AlarmKind.STALE_DEVICE}
        for device, alarm in standing.items():
            if device not in stale:
                changes.append(cleared(alarm, now_ns))
        for device, i in stale.items():
            if device not in standing:
                age, limit = float(age_s[i]), float(limit_s[i])
                message = describe_stale(device, age, float(period_s[i]), limit)
                kind = AlarmKind.STALE_DEVICE
                changes.append(raised(kind, device, Severity.WARNING, message, age, limit, "s", now_ns))
        return changes

    def _evaluate_bad_data(self, now_ns: int, suspects: Sequence[tuple[str, str, float]]) -> list[AlarmChange]:
        limit = self.settings.bad_data_residual
        present: dict[str, tuple[str, str, float]] = {}
        for element, quantity, residual in suspects:
            alarm_id = f"{AlarmKind.BAD_DATA}:{element}:{quantity}"
            if abs(residual) >= limit and abs(residual) > abs(present.get(alarm_id, ("", "", 0.0))[2]):
                present[alarm_id] = (element, quantity, abs(residual))
        changes: list[AlarmChange] = []
        for alarm_id, alarm in [(k, a) for k, a in self._active.items() if a.kind is AlarmKind.BAD_DATA]:
            if alarm_id in present:
                continue
            absent = self._absent.get(alarm_id, 0) + 1
            if absent >= self.settings.bad_data_clear_cycles:
                self._absent.pop(alarm_id, None)
                changes.append(cleared(alarm, now_ns))
            else:
                self._absent[alarm_id] = absent
        for alarm_id, (element, quantity, residual) in present.items():
            self._absent.pop(alarm_id, None)
            message = describe_bad_data(element, quantity, residual, limit)
            if (previous := self._active.get(alarm_id)) is None:
                key = f"{element}:{quantity}"
                kind = AlarmKind.BAD_DATA
                changes.append(raised(kind, element, Severity.WARNING, message, residual, limit, "", now_ns, key=key))
            elif abs(residual - previous.value) >= self.settings.bad_data_report_step:
                alarm = replace(previous, message=message, value=residual, updated_ns=now_ns)
                changes.append(AlarmChange(ChangeKind.UPDATED, alarm, now_ns))
        return changes

    # ------------------------------------------------------------------ outages
    def _outage(
        self, alarm_id: str, area: str, meters: tuple[str, ...], ts_ns: int, previous: Alarm | None
    ) -> AlarmChange:
        """The outage alarm of ``area`` with ``meters`` still without supply (none: it clears)."""
        critical = len(meters) >= self.settings.outage_critical_meters
        severity = Severity.CRITICAL if critical else Severity.MAJOR
        message = describe_outage(area, meters)
        if previous is None:
            count = float(len(meters))
            return raised(AlarmKind.OUTAGE, area, severity, message, count, None, "customers", ts_ns, devices=meters)
        if not meters:
            alarm = replace(previous, message=message, value=0.0, devices=(), updated_ns=ts_ns, cleared_ns=ts_ns)
            return AlarmChange(ChangeKind.CLEARED, alarm, ts_ns)
        alarm = self._escalated(previous, severity, ts_ns)
        alarm = replace(alarm, message=message, value=float(len(meters)), devices=meters)
        return AlarmChange(ChangeKind.UPDATED, alarm, ts_ns)

    def _without(self, alarm_id: str, meter: str, ts_ns: int) -> AlarmChange:
        previous = self._active[alarm_id]
        meters = tuple(m for m in previous.devices if m != meter)
        return self._outage(alarm_id, previous.source, meters, ts_ns, previous)

    def _restored_by_data(self, now_ns: int, last_seen_ns: Mapping[str, int]) -> list[AlarmChange]:
        """A meter that sends data newer than its last gasp has supply, even if its restore notice was lost."""
        changes: list[AlarmChange] = []
        for alarm in [a for a in self._active.values() if a.kind is AlarmKind.OUTAGE]:
            back = {m for m in alarm.devices if last_seen_ns.get(m, _NEVER) > self._gasp_ns.get(m, alarm.updated_ns)}
            if back:
                meters = tuple(m for m in alarm.devices if m not in back)
                changes.append(self._outage(alarm.id, alarm.source, meters, now_ns, alarm))
        return changes

    # ------------------------------------------------------------------ bookkeeping
    def _commit(self, changes: list[AlarmChange]) -> list[AlarmChange]:
        """Hand the changes on first; adopt them only once that succeeded."""
        if changes and self._on_change is not None:
            self._on_change(changes)
        for change in changes:
            self._apply(change)
        return changes

    def _apply(self, change: AlarmChange) -> None:
        alarm = change.alarm
        previous: Alarm | None = None
        if alarm.state is AlarmState.ACTIVE:
            previous = self._active.get(alarm.id)
            self._active[alarm.id] = alarm
        else:
            current = self._active.get(alarm.id)
            if current is not None and current.raised_ns == alarm.raised_ns:
                previous = self._active.pop(alarm.id)
            self._remember(alarm)
        if alarm.kind is AlarmKind.OUTAGE:
            before = set(previous.devices) if previous else set()
            after = set(alarm.devices) if alarm.state is AlarmState.ACTIVE else set()
            for meter in before - after:
                self._outage_of.pop(meter, None)
                self._gasp_ns.pop(meter, None)
            for meter in after - before:
                self._outage_of[meter] = alarm.id
                self._gasp_ns[meter] = change.ts_ns

    def _remember(self, alarm: Alarm) -> None:
        key = (alarm.id, alarm.raised_ns)
        self._cleared[key] = alarm
        self._cleared.move_to_end(key)
        while len(self._cleared) > self._history:
            self._cleared.popitem(last=False)
