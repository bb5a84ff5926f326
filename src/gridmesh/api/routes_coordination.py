"""Distributed coordination: microgrid edge agents, day-ahead coordination runs (operator starts one) and
the VPP's flexibility envelope and the delivery of an award (``docs/coordination.md``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from gridmesh.api.auth import CentreDep, Operator, Viewer
from gridmesh.api.ports import (
    CoordinationRequest,
    CoordinationRunView,
    MicrogridView,
    VppDispatchRequest,
    VppDispatchView,
    VppEnvelopeView,
    VppSiteView,
)

router = APIRouter(prefix="/api/v1", tags=["coordination"])
SiteId = Annotated[str, Path(min_length=1)]


@router.get("/microgrids", summary="Microgrids with their edge agent's mode and the live PCC import")
def get_microgrids(_: Viewer, centre: CentreDep) -> list[MicrogridView]:
    return centre.microgrids()


@router.get("/coordination", summary="Day-ahead coordination runs, newest first, with their ADMM residuals")
def get_runs(_: Viewer, centre: CentreDep) -> list[CoordinationRunView]:
    return centre.coordination_runs()


@router.post("/coordination", status_code=202, summary="Start a day-ahead coordination run (operator)")
def start_run(caller: Operator, centre: CentreDep, body: CoordinationRequest | None = None) -> CoordinationRunView:
    """202: the run goes on in the background (poll GET /api/v1/coordination); converged, each microgrid's
    edge agent is sent its PCC schedule. 409 while another run is in progress."""
    return centre.start_coordination(body.day if body is not None else None, caller.name)


@router.get("/vpp", summary="The virtual power plants (level-3 sites)")
def get_vpps(_: Viewer, centre: CentreDep) -> list[VppSiteView]:
    return centre.vpp_sites()


@router.get("/vpp/{site}/envelope", summary="A VPP's up/down flexibility per interval of a day")
def get_envelope(
    _: Viewer,
    centre: CentreDep,
    site: SiteId,
    day: Annotated[date | None, Query(description="default: the grid's current day")] = None,
) -> VppEnvelopeView:
    """Computed on first request for a site and day (about a second), then kept. 404 for an unknown VPP."""
    return centre.vpp_envelope(site, day)


@router.post("/vpp/{site}/dispatch", summary="Disaggregate an award to the VPP's assets and report its delivery")
def dispatch(caller: Operator, centre: CentreDep, site: SiteId, body: VppDispatchRequest) -> VppDispatchView:
    """The award is clipped to the envelope (with the reason per interval), allocated at least cost to the
    assets of every owner, and run through the day's twin: delivery is measured by the full power flow."""
    return centre.vpp_dispatch(site, body, caller.name)
