"""The controllers a command line can name (studies and the live platform share the list)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from gridmesh.control.controller import Controller, NoControl
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.control.rules import PeakShaving, TimeOfUseArbitrage
from gridmesh.control.self_consumption import SelfConsumption


class ControllerName(StrEnum):
    NONE = "none"
    SELF_CONSUMPTION = "self-consumption"
    PEAK_SHAVING = "peak-shaving"
    TOU = "tou"
    MPC = "mpc"


CONTROLLERS: dict[ControllerName, Callable[[], Controller]] = {
    ControllerName.NONE: NoControl,
    ControllerName.SELF_CONSUMPTION: SelfConsumption,
    ControllerName.PEAK_SHAVING: PeakShaving,
    ControllerName.TOU: TimeOfUseArbitrage,
    ControllerName.MPC: ModelPredictiveControl,
}
