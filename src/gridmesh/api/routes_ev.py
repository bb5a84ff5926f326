"""EV charging over OCPP: chargers, sessions and the smart-charging pushes (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridmesh.api.auth import CentreDep, Viewer
from gridmesh.api.ports import ChargerView, EvSessionView, PushView

router = APIRouter(prefix="/api/v1/ev", tags=["ev charging"])


@router.get("/chargers", summary="OCPP chargers: connection, status, site, bus, power and accepted limit")
def get_chargers(_: Viewer, centre: CentreDep) -> list[ChargerView]:
    return centre.ev_chargers()


@router.get("/sessions", summary="Charging sessions, newest first (grid time)")
def get_sessions(
    _: Viewer, centre: CentreDep, limit: Annotated[int, Query(ge=1, le=1000, description="sessions")] = 100
) -> list[EvSessionView]:
    return centre.ev_sessions(limit)


@router.get("/pushes", summary="Smart-charging plans pushed, newest first: accepted / rejected / timeout, wall time")
def get_pushes(
    _: Viewer, centre: CentreDep, limit: Annotated[int, Query(ge=1, le=50, description="pushes")] = 10
) -> list[PushView]:
    return centre.ev_pushes(limit)
