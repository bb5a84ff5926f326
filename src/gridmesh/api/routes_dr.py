"""Demand response over OpenADR 2.0b: events (operator creates and cancels) and measured results (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gridmesh.api.auth import CentreDep, Operator, Viewer
from gridmesh.api.ports import DrEventRequest, DrEventView, DrResultView

router = APIRouter(prefix="/api/v1/dr", tags=["demand response"])
EventId = Annotated[str, Path(min_length=1)]


@router.get("/events", summary="DR events with each VEN's opt answer, in creation order")
def get_events(_: Viewer, centre: CentreDep) -> list[DrEventView]:
    return centre.dr_events()


@router.post("/events", status_code=201, summary="Create a DR event (operator; wall-clock times)")
def create_event(caller: Operator, centre: CentreDep, body: DrEventRequest) -> DrEventView:
    """409 with the reason when the event starts in the past, names an unknown site or has a bad level;
    503 when demand response is off. VENs receive it at their next poll."""
    return centre.create_dr_event(body, caller.name)


@router.delete("/events/{event_id}", summary="Cancel a DR event that has not ended (operator)")
def cancel_event(caller: Operator, centre: CentreDep, event_id: EventId) -> DrEventView:
    return centre.cancel_dr_event(event_id, caller.name)


@router.get("/results", summary="Per event: requested kW, opted-in VENs, delivered kWh against the baseline")
def get_results(_: Viewer, centre: CentreDep) -> list[DrResultView]:
    return centre.dr_results()
