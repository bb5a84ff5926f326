"""Demand-response events as gridmesh values: what an operator (or the peak trigger) asks for, checked
before anything is sent to a VEN.

Pure logic, no I/O: the VTN turns a checked ``DrEvent`` into openleadr events, one per VEN.
Signals and their payloads (OpenADR 2.0b signal name / signal type):

* ``LOAD_DISPATCH`` / ``delta``: reduce the site's load by ``level`` kW.
* ``SIMPLE`` / ``level``: the 0–3 shed level of the simple signal (0 normal, 3 maximum shed).
* ``ELECTRICITY_PRICE`` / ``price``: the price in the programme's currency per kWh.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.errors import CommandRefused

SIMPLE_LEVELS = (0, 1, 2, 3)


class DrSignal(StrEnum):
    """The DR signals gridmesh sends; the value is OpenADR's signal name."""

    LOAD_DISPATCH = "LOAD_DISPATCH"
    SIMPLE = "SIMPLE"
    ELECTRICITY_PRICE = "ELECTRICITY_PRICE"

    @property
    def signal_type(self) -> str:
        """OpenADR signal type that goes with the name."""
        return {"LOAD_DISPATCH": "delta", "SIMPLE": "level", "ELECTRICITY_PRICE": "price"}[self.value]

    @property
    def sheds_kw(self) -> bool:
        """Whether the payload is a requested reduction in kW (so a response can be compared with it)."""
        return self is DrSignal.LOAD_DISPATCH


class EventRefused(CommandRefused):
    """An event the VTN will not send (in the past, empty, unknown VEN, bad level); says why and the fix."""


@dataclass(frozen=True)
class DrEvent:
    """A checked DR event: one signal with one level per VEN over ``[start, start + duration)``.

    ``levels`` maps VEN id (= site id) to the signal payload for that VEN (kW to shed for
    ``LOAD_DISPATCH``, 0–3 for ``SIMPLE``, price per kWh for ``ELECTRICITY_PRICE``).
    """

    event_id: str
    signal: DrSignal
    start: dt.datetime
    duration: dt.timedelta
    levels: Mapping[str, float]

    @property
    def end(self) -> dt.datetime:
        return self.start + self.duration

    @property
    def vens(self) -> tuple[str, ...]:
        return tuple(self.levels)

    @property
    def requested_kw(self) -> float | None:
        """Total reduction asked of all VENs (kW), or None for signals that are not a kW amount."""
        return float(sum(self.levels.values())) if self.signal.sheds_kw else None


def _refuse(event_id: str, field: str, problem: str, fix: str) -> EventRefused:
    return EventRefused(f"event {event_id}: {field}: {problem}", fix)


def check_event(
    event_id: str,
    signal: DrSignal | str,
    start: dt.datetime,
    duration: dt.timedelta,
    levels: Mapping[str, float],
    *,
    now: dt.datetime,
    known_vens: Collection[str],
) -> DrEvent:
    """A ``DrEvent`` if the request can be sent, else ``EventRefused`` naming the field and the fix.

    Refused: an unknown signal, a naive or past ``start`` (before ``now``), a non-positive ``duration``,
    no VEN, a VEN not in ``known_vens``, a non-finite level, a non-positive kW for ``LOAD_DISPATCH``,
    a ``SIMPLE`` level outside 0–3.
    """
    try:
        kind = DrSignal(signal)
    except ValueError:
        raise _refuse(event_id, "signal", f"unknown signal {signal!r}",
                      f"use one of {', '.join(s.value for s in DrSignal)}") from None
    if start.tzinfo is None:
        raise _refuse(event_id, "start", "start has no time zone", "give an aware datetime (UTC)")
    if start < now:
        raise _refuse(event_id, "start", f"starts in the past ({start.isoformat()} < now {now.isoformat()})",
                      "choose a start at or after now")
    if duration <= dt.timedelta(0):
        raise _refuse(event_id, "duration", f"duration must be positive, got {duration}", "give a positive duration")
    if not levels:
        raise _refuse(event_id, "vens", "no VEN chosen", "name at least one site")
    unknown = sorted(set(levels) - set(known_vens))
    if unknown:
        raise _refuse(event_id, "vens", f"unknown VEN(s) {', '.join(unknown)}", "use the scenario's site ids")
    values = np.fromiter(levels.values(), dtype=float, count=len(levels))
    if not np.isfinite(values).all():
        raise _refuse(event_id, "level", "level must be a finite number", "give a number")
    if kind is DrSignal.LOAD_DISPATCH and (values <= 0).any():
        raise _refuse(event_id, "level", "a load shed must be a positive number of kW", "give kW > 0")
    if kind is DrSignal.SIMPLE and not np.isin(values, SIMPLE_LEVELS).all():
        raise _refuse(event_id, "level", "the SIMPLE signal takes levels 0, 1, 2 or 3", "give 0–3")
    return DrEvent(event_id, kind, start.astimezone(dt.UTC), duration, dict(levels))


def _shares(vens: Sequence[str], weights: Mapping[str, float] | None) -> npt.NDArray[np.float64]:
    w = np.ones(len(vens)) if weights is None else np.array([weights.get(v, 0.0) for v in vens], dtype=float)
    total = w.sum()
    if not np.isfinite(w).all() or (w < 0).any() or total <= 0:
        raise EventRefused("peak trigger: weights must be non-negative with a positive sum",
                           "give each VEN a weight, e.g. its flexible kW")
    return np.asarray(w / total, dtype=float)


def events_for_peaks(
    forecast_kw: pd.Series,
    threshold_kw: float,
    *,
    vens: Sequence[str],
    weights: Mapping[str, float] | None = None,
    prefix: str = "peak",
    min_shed_kw: float = 0.0,
) -> list[tuple[str, dt.datetime, dt.timedelta, dict[str, float]]]:
    """Events that cover every run of forecast intervals above ``threshold_kw``.

    ``forecast_kw`` is a substation's or a site's load (kW) on a regular, time-zone aware index whose
    labels are interval starts. Each contiguous run of intervals above the threshold becomes one
    ``LOAD_DISPATCH`` event from the run's first interval to the end of its last, asking for the run's
    largest excess over the threshold, split over ``vens`` in proportion to ``weights`` (equal shares if
    None). Runs whose excess is at most ``min_shed_kw`` are skipped. Returns ``(event_id, start,
    duration, levels)`` tuples for ``DrVtn.create_event`` (or ``check_event``), earliest first.
    """
    if forecast_kw.empty:
        return []
    index = forecast_kw.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise EventRefused("peak trigger: forecast index must be time-zone aware timestamps", "localise it to UTC")
    steps = np.diff(index.asi8)
    if steps.size == 0 or steps[0] <= 0 or (steps != steps[0]).any():
        raise EventRefused("peak trigger: forecast must be on a regular, increasing grid of at least 2 intervals",
                           "resample it, e.g. to 15 min")
    interval = dt.timedelta(microseconds=int(steps[0]) // 1000)
    if not math.isfinite(threshold_kw):
        raise EventRefused("peak trigger: threshold must be a finite kW value", "give a number")
    shares = _shares(vens, weights)
    excess = forecast_kw.to_numpy(dtype=float) - threshold_kw
    above = np.concatenate(([False], excess > 0, [False]))
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    starts, stops = edges[::2], edges[1::2]  # run i covers positions [starts[i], stops[i])
    if starts.size == 0:
        return []
    # a run's maximum: outside runs the excess is <= 0, so each reduceat segment's maximum lies in its run
    peak = np.maximum.reduceat(excess, starts)
    keep = peak > min_shed_kw
    out: list[tuple[str, dt.datetime, dt.timedelta, dict[str, float]]] = []
    for first, stop, shed in zip(starts[keep], stops[keep], peak[keep], strict=True):
        start = index[first].to_pydatetime()
        levels = {v: float(shed * s) for v, s in zip(vens, shares, strict=True) if s > 0}
        out.append((f"{prefix}-{start:%Y%m%dT%H%M}", start, interval * int(stop - first), levels))
    return out
