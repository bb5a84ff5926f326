"""Faults in the live twin and FLISR: inject and repair (operator), cases, confirmation (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gridmesh.api.auth import CentreDep, Operator, Viewer
from gridmesh.api.ports import FaultRequest, FaultView, FlisrCaseView

router = APIRouter(prefix="/api/v1", tags=["self-healing"])
CaseId = Annotated[str, Path(min_length=1)]


@router.post("/faults", status_code=202, summary="Inject a fault into the live twin (operator; simulation)")
def inject_fault(caller: Operator, centre: CentreDep, body: FaultRequest) -> FaultView:
    """202: the order went to the field; protection trips and FLISR cases follow as events."""
    return centre.inject_fault(body, caller.name)


@router.get("/faults", summary="Faults injected, newest first")
def get_faults(_: Viewer, centre: CentreDep) -> list[FaultView]:
    return centre.faults()


@router.post("/faults/{fault_id}/repair", status_code=202, summary="Repair a fault and return to normal (operator)")
def repair_fault(caller: Operator, centre: CentreDep, fault_id: CaseId) -> FaultView:
    return centre.repair_fault(fault_id, caller.name)


@router.get("/flisr", summary="FLISR cases, newest first")
def get_cases(_: Viewer, centre: CentreDep) -> list[FlisrCaseView]:
    return centre.flisr_cases()


@router.get("/flisr/{case_id}", summary="One FLISR case with its timed log (replayable)")
def get_case(_: Viewer, centre: CentreDep, case_id: CaseId) -> FlisrCaseView:
    return centre.flisr_case(case_id)


@router.post("/flisr/{case_id}/confirm", summary="Execute a plan awaiting confirmation (operator)")
def confirm(caller: Operator, centre: CentreDep, case_id: CaseId) -> FlisrCaseView:
    """409 when the grid changed since the plan was made: plan again rather than execute half of it."""
    return centre.confirm_flisr(case_id, caller.name)
