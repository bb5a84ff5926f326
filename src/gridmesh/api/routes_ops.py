"""Operations: alarms (acknowledge needs operator), events, ingest counters, dead letters, commands."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from gridmesh.api.auth import CentreDep, Operator, Viewer
from gridmesh.api.ports import AlarmView, CommandView, DeadLetterView, EventView

router = APIRouter(prefix="/api/v1", tags=["operations"])


class CommandRequest(BaseModel):
    """``set-power`` needs ``value`` in W (generator convention); ``open``/``close``/``release`` take none."""

    action: Literal["set-power", "open", "close", "release"]
    value: float | None = Field(None, description="W, for set-power")

    @model_validator(mode="after")
    def _value_fits_action(self) -> CommandRequest:
        if self.action == "set-power" and (self.value is None or not math.isfinite(self.value)):
            raise ValueError("set-power needs a finite `value` in W")
        if self.action != "set-power" and self.value is not None:
            raise ValueError(f"{self.action} takes no `value`")
        return self


@router.get("/alarms", summary="Alarms, active ones by default")
def get_alarms(
    _: Viewer, centre: CentreDep, active_only: Annotated[bool, Query(description="only uncleared alarms")] = True
) -> list[AlarmView]:
    return centre.alarms(active_only)


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm (operator)")
def acknowledge(caller: Operator, centre: CentreDep, alarm_id: Annotated[str, Path(min_length=1)]) -> AlarmView:
    return centre.acknowledge(alarm_id, caller.name)


@router.get("/events", summary="The event log, newest first")
def get_events(
    _: Viewer,
    centre: CentreDep,
    since: Annotated[AwareDatetime | None, Query(description="only events at or after (UTC, ISO 8601)")] = None,
    kind: Annotated[str | None, Query(description="e.g. alarm-raised, device-offline, command-sent")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[EventView]:
    return centre.events(since, kind, limit)


@router.get("/counters", summary="Ingest counters: accepted, rejected per reason, duplicates…")
def get_counters(_: Viewer, centre: CentreDep) -> dict[str, int]:
    return centre.counters()


@router.get("/dead-letters", summary="Rejected messages with the reason, newest first")
def get_dead_letters(
    _: Viewer,
    centre: CentreDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    reason: Annotated[str | None, Query(description="e.g. bad-signature, out-of-range, replay")] = None,
) -> list[DeadLetterView]:
    return centre.dead_letters(limit, reason)


@router.post("/devices/{device_id}/commands", status_code=202, summary="Send a command to a device (operator)")
def send_command(
    caller: Operator, centre: CentreDep, device_id: Annotated[str, Path(min_length=1)], body: CommandRequest
) -> CommandView:
    """202: the centre signed and sent it; the device's acknowledgement arrives later as an event."""
    return centre.command(device_id, body.action, body.value or 0.0, caller.name)
