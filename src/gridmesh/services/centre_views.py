"""Conversions from the centre's internal records to the API's views (pure functions).

Kept apart from :mod:`gridmesh.services.centre` so the wiring reads as wiring; everything here is a
straight mapping with rounding (the live state goes to every browser every cycle, so it is kept small).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from gridmesh.api.ports import (
    AlarmView,
    BranchView,
    BusView,
    ControlStepView,
    ControlView,
    CoordinationRunView,
    DeadLetterView,
    EventView,
    FaultView,
    FlisrCaseView,
    FlisrStepView,
    NetworkView,
    RefusalView,
    ResidualView,
    SiteView,
)
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers
from gridmesh.services.alarms import Alarm
from gridmesh.services.coordination_desk import CoordinationRun
from gridmesh.services.fault_desk import FaultRecord
from gridmesh.services.flisr_service import FlisrCase
from gridmesh.services.live_control import LiveControl

NS_PER_S = 1_000_000_000


def utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC)


def network_view(network: Network, sites: Mapping[str, SiteMembers]) -> NetworkView:
    site_of_bus = {b: s for s, m in sites.items() if m.level is SiteLevel.MICROGRID for b in m.buses}
    return NetworkView(
        name=network.name,
        buses=[
            BusView(id=b.id, x=b.x, y=b.y, vn_kv=b.vn_kv, site=site_of_bus.get(b.id)) for b in network.buses.values()
        ],
        branches=[
            *(BranchView(id=x.id, kind="line", from_bus=x.from_bus, to_bus=x.to_bus) for x in network.lines.values()),
            *(
                BranchView(id=t.id, kind="transformer", from_bus=t.hv_bus, to_bus=t.lv_bus)
                for t in network.transformers.values()
            ),
        ],
        sites=[
            SiteView(id=s.id, name=s.name or s.id, level=int(s.level), pcc=s.pcc) for s in network.sites.values()
        ],
    )


def rounded(values: np.ndarray, digits: int) -> list[float | None]:
    """JSON-ready list: NaN → None, rounded (a demo state is 11,000 numbers per push)."""
    out: list[float | None] = [None if math.isnan(v) else v for v in np.round(values, digits).tolist()]
    return out


_SEVERITY = {"warning": "warning", "major": "major", "critical": "critical"}


def alarm_view(alarm: Alarm) -> AlarmView:
    return AlarmView(
        id=alarm.id,
        kind=str(alarm.kind),
        severity=_SEVERITY.get(str(alarm.severity), "warning"),
        source=alarm.source,
        message=alarm.message,
        raised=utc(alarm.raised_ns),
        cleared=utc(alarm.cleared_ns) if alarm.cleared_ns is not None else None,
        value=alarm.value,
        acknowledged_by=alarm.acked_by,
        acknowledged_at=utc(alarm.acked_ns) if alarm.acked_ns is not None else None,
    )


def event_views(frame: pd.DataFrame) -> list[EventView]:
    return [
        EventView(
            ts=row["ts"],
            kind=row["kind"],
            source=row["source"],
            message=row["message"],
            severity=row.get("severity", "info"),
            data=_data(row.get("data")),
        )
        for row in frame.to_dict("records")
    ]


def _data(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return None


def dead_letter_views(frame: pd.DataFrame) -> list[DeadLetterView]:
    return [
        DeadLetterView(
            received=row["received"],
            topic=row["topic"],
            reason=row["reason"],
            detail=row["detail"],
            size=int(row["size"]),
            device=row.get("device") or "",
        )
        for row in frame.to_dict("records")
    ]


def fault_view(record: FaultRecord) -> FaultView:
    return FaultView(
        id=record.id,
        element=record.element,
        table=record.table,
        fault_type=record.fault_type,
        permanent=record.permanent,
        position=record.position,
        injected=utc(record.injected_ns),
        injected_by=record.injected_by,
        repaired=utc(record.repaired_ns) if record.repaired_ns is not None else None,
        repaired_by=record.repaired_by,
    )


def case_view(case: FlisrCase) -> FlisrCaseView:
    outcome = {(s.switch, str(s.action)): o for s, o in case.done}
    chosen = case.plan.chosen if case.plan is not None and case.kind == "fault" else None
    return FlisrCaseView(
        id=case.id,
        kind=case.kind,
        status=case.status.value,
        opened=utc(case.opened_ns),
        trips=list(case.trips),
        steps=[
            FlisrStepView(
                switch=s.switch,
                action=str(s.action),
                purpose=str(s.purpose),
                outcome=outcome.get((s.switch, str(s.action))),
            )
            for s in case.steps
        ],
        plan_ms=round(case.plan_ms, 1),
        restored_customers=chosen.restored_customers if chosen else None,
        unrestored_customers=chosen.unrestored_customers if chosen else None,
        restored_kw=round(chosen.restored_kw, 1) if chosen else None,
        message=case.message,
        log=[{**entry, "ts": utc(entry["ts_ns"]).isoformat()} for entry in case.log],
    )


def control_view(control: LiveControl | None, limit: int) -> ControlView:
    """The live control cycle's controllers and latest decisions (disabled without controllers)."""
    if control is None:
        return ControlView(enabled=False, controllers=[], step_minutes=None, steps=[])
    controllers = sorted(control.cycle.controllers, key=lambda c: -c.priority)
    return ControlView(
        enabled=True,
        controllers=[c.name for c in controllers],
        step_minutes=control.step / timedelta(minutes=1),
        steps=[
            ControlStepView(
                time=d.time.replace(tzinfo=UTC),
                setpoints_kw=d.setpoints_kw,
                curtailed_kw=d.curtailed_kw,
                commands=len(d.commands),
                refusals=[
                    RefusalView(
                        device=r.battery,
                        requested_kw=r.requested_kw,
                        applied_kw=r.applied_kw if math.isfinite(r.applied_kw) else None,
                        reason=r.reason,
                        source="command" if r.source == "command" else "safety",
                    )
                    for r in d.refusals
                ],
                cycle_ms=d.cycle_ms,
                failed=list(d.failed),
                fallbacks=d.fallbacks,
            )
            for d in control.recent(limit)
        ],
    )


def run_view(run: CoordinationRun) -> CoordinationRunView:
    """The API's view of a coordination run (the running one: its rounds so far)."""
    rounds = list(run.rounds)
    return CoordinationRunView(
        id=run.id,
        state=run.state,
        day=run.day,
        requested_by=run.requested_by,
        started=run.started,
        finished=run.finished,
        agents=list(run.agents),
        iterations=len(rounds),
        residuals=[
            ResidualView(
                iteration=r.iteration,
                primal=r.primal,
                dual=r.dual,
                eps_primal=r.eps_primal,
                eps_dual=r.eps_dual,
                rho=r.rho,
            )
            for r in rounds
        ],
        converged=run.converged,
        objective_eur=run.objective_eur,
        centralised_eur=run.centralised_eur,
        gap=run.gap,
        price_eur_per_kw=run.price_eur_per_kw,
        pcc_kw=run.pcc_kw,
        plans_sent=list(run.plans_sent),
        error=run.error,
    )
