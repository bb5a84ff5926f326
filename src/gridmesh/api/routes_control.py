"""Optimal control: the live control cycle's controllers and its latest decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridmesh.api.auth import CentreDep, Viewer
from gridmesh.api.ports import ControlView

router = APIRouter(prefix="/api/v1", tags=["control"])


@router.get("/control", summary="The live control cycle: controllers and latest steps, newest first")
def get_control(
    _: Viewer, centre: CentreDep, limit: Annotated[int, Query(ge=1, le=672, description="steps to return")] = 96
) -> ControlView:
    return centre.control(limit)
