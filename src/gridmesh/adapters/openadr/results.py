"""What a DR event achieved: requested kW, who opted in, and the delivered energy against each VEN's
baseline (``analytics.dr_baseline``), from the telemetry the VENs reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from gridmesh.adapters.openadr.events import DrEvent
from gridmesh.analytics.dr_baseline import BaselineMethod, baseline_kw, measured_response
from gridmesh.errors import ProfileError


class Opt(StrEnum):
    """A VEN's answer to an event (OpenADR ``optType``); PENDING until it answers."""

    IN = "optIn"
    OUT = "optOut"
    PENDING = "pending"


@dataclass(frozen=True)
class VenResult:
    """One VEN's part: its answer, the kW asked of it, and (when measurable) what it delivered."""

    ven: str
    opt: Opt
    requested_kw: float | None
    delivered_kwh: float | None = None
    mean_reduction_kw: float | None = None
    percent_of_requested: float | None = None
    note: str = ""


@dataclass(frozen=True)
class EventResult:
    """An event's outcome; delivered figures sum the opted-in VENs whose response could be measured."""

    event: DrEvent
    cancelled: bool
    vens: tuple[VenResult, ...]

    @property
    def opted_in(self) -> tuple[str, ...]:
        return tuple(v.ven for v in self.vens if v.opt is Opt.IN)

    @property
    def requested_kw(self) -> float | None:
        """kW asked of the VENs that opted in (None for price and SIMPLE-level events)."""
        asked = [v.requested_kw for v in self.vens if v.opt is Opt.IN and v.requested_kw is not None]
        return float(sum(asked)) if self.event.signal.sheds_kw else None

    @property
    def delivered_kwh(self) -> float | None:
        measured = [v.delivered_kwh for v in self.vens if v.delivered_kwh is not None]
        return float(sum(measured)) if measured else None


def readings_series(readings: Sequence[tuple[dt.datetime, float]], interval: dt.timedelta) -> pd.Series:
    """Reported kW samples → mean kW per interval, labelled by interval start (UTC)."""
    if not readings:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    stamps, values = zip(*readings, strict=True)
    series = pd.Series(values, index=pd.DatetimeIndex(stamps).tz_convert("UTC"), dtype=float)
    return series.resample(pd.Timedelta(interval)).mean().dropna()


def event_result(
    event: DrEvent,
    *,
    cancelled: bool,
    opts: Mapping[str, Opt],
    actual_kw: Mapping[str, pd.Series],
    history_kw: Mapping[str, pd.Series],
    method: BaselineMethod,
    excluded_days: Sequence[dt.date] = (),
) -> EventResult:
    """Per VEN: baseline from ``history_kw`` (past days, same interval grid as ``actual_kw``), measured
    response over the event from ``actual_kw``. A VEN whose response cannot be measured (opted out,
    cancelled, too little history, missing telemetry) gets a ``note`` saying why instead of figures."""
    vens = []
    for ven, level in event.levels.items():
        opt = opts.get(ven, Opt.PENDING)
        requested = level if event.signal.sheds_kw else None
        if cancelled or opt is not Opt.IN:
            vens.append(VenResult(ven, opt, requested, note="cancelled" if cancelled else f"not opted in ({opt})"))
            continue
        actual, history = actual_kw.get(ven), history_kw.get(ven)
        if actual is None or actual.empty or history is None or history.empty:
            missing = "telemetry" if actual is None or actual.empty else "history"
            vens.append(VenResult(ven, opt, requested, note=f"no {missing} to measure the response"))
            continue
        try:
            base = baseline_kw(history.combine_first(actual), event.start, event.end, method=method,
                               excluded_days=excluded_days)
            response = measured_response(actual, base, requested_kw=requested)
        except ProfileError as err:
            vens.append(VenResult(ven, opt, requested, note=str(err)))
            continue
        vens.append(VenResult(ven, opt, requested, response.energy_kwh, response.mean_kw,
                              response.percent_of_requested))
    return EventResult(event, cancelled, tuple(vens))
