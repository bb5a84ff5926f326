"""Read-only views of the grid: network, devices, live state and time series (viewer role)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from gridmesh.api.auth import CentreDep, Viewer
from gridmesh.api.errors import ApiError
from gridmesh.api.ports import DeviceView, NetworkView, NotReady, SeriesView, StateView
from gridmesh.telemetry.quantities import QUANTITIES

router = APIRouter(prefix="/api/v1", tags=["grid"])

MAX_POINTS = 20_000
DEFAULT_WINDOW = timedelta(hours=1)
MIN_EVERY = timedelta(seconds=1)

Start = Annotated[AwareDatetime | None, Query(description="UTC start (ISO 8601 with offset); default end − 1 h")]
End = Annotated[AwareDatetime | None, Query(description="UTC end, exclusive; default now")]


def window(start: datetime | None, end: datetime | None, every: timedelta | None) -> tuple[datetime, datetime]:
    """Fill defaults and check the window: start before end, a bucket width of at least 1 s, not too many points."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = (start or end - DEFAULT_WINDOW).astimezone(UTC)
    if start >= end:
        raise ApiError(
            422, f"start {start.isoformat()} is not before end {end.isoformat()}", "swap or widen the window"
        )
    if every is not None:
        if every < MIN_EVERY:
            raise ApiError(422, f"every={every.total_seconds()} s is below 1 s", "use every=PT1S or more")
        if (end - start) / every > MAX_POINTS:
            raise ApiError(
                422,
                f"{(end - start) / every:.0f} buckets requested, at most {MAX_POINTS}",
                "use a larger `every` or a shorter window",
            )
    return start, end


@router.get("/network", summary="The network as drawn: buses with coordinates, branches, sites")
def get_network(_: Viewer, centre: CentreDep) -> NetworkView:
    return centre.network()


@router.get("/devices", summary="Field devices with their online status")
def get_devices(
    _: Viewer,
    centre: CentreDep,
    site: Annotated[str | None, Query(description="microgrid id, or `grid`")] = None,
    kind: Annotated[str | None, Query(description="meter, inverter, battery, evse, trafo, substation, switch")] = None,
) -> list[DeviceView]:
    return centre.devices(site, kind)


@router.get("/state", summary="The latest estimated grid state")
def get_state(_: Viewer, centre: CentreDep) -> StateView:
    state = centre.state()
    if state is None:
        raise NotReady(
            "no grid state estimated yet", "the first state follows the first telemetry cycle; retry shortly"
        )
    return state


@router.get("/history", summary="A device's readings of one quantity, raw or bucketed")
def get_history(
    _: Viewer,
    centre: CentreDep,
    device: Annotated[str, Query(min_length=1, description="device id")],
    quantity: Annotated[str, Query(description="IEC 61850 name, e.g. TotW, PhV, SocPct")],
    start: Start = None,
    end: End = None,
    every: Annotated[timedelta | None, Query(description="bucket width (ISO 8601 `PT1M` or seconds)")] = None,
) -> SeriesView:
    if quantity not in QUANTITIES:
        raise ApiError(422, f"unknown quantity {quantity!r}", f"use one of {', '.join(QUANTITIES)}")
    first, last = window(start, end, every)
    return centre.history(device, quantity, first, last, every)


@router.get("/substation/history", summary="Substation active power (kW) in buckets")
def get_substation_history(
    _: Viewer,
    centre: CentreDep,
    start: Start = None,
    end: End = None,
    every: Annotated[timedelta, Query(description="bucket width (ISO 8601 `PT1M` or seconds)")] = timedelta(minutes=1),
) -> SeriesView:
    first, last = window(start, end, every)
    return centre.substation_history(first, last, every)
