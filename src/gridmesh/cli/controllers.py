"""The controllers a command line can name (studies and the live platform share the list).

Most controllers need nothing to be built; ``mpc-forecast`` trains its forecasters on the scenario's
profiles before the study start, so it is built by :func:`build_controller` with the scenario in hand.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import typer

from gridmesh.control.controller import Controller, NoControl
from gridmesh.control.forecast_lookahead import ForecastingMpc
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.control.rules import PeakShaving, TimeOfUseArbitrage
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.model.scenario import Scenario


class ControllerName(StrEnum):
    NONE = "none"
    SELF_CONSUMPTION = "self-consumption"
    PEAK_SHAVING = "peak-shaving"
    TOU = "tou"
    MPC = "mpc"
    MPC_FORECAST = "mpc-forecast"


def _needs_scenario() -> Controller:
    raise typer.BadParameter(
        "mpc-forecast trains on the scenario's profiles before the study start and runs in studies only: "
        "use `gridmesh simulate <scenario> --controller mpc-forecast`, or `--controller mpc` here",
        param_hint="--controller",
    )


CONTROLLERS: dict[ControllerName, Callable[[], Controller]] = {
    ControllerName.NONE: NoControl,
    ControllerName.SELF_CONSUMPTION: SelfConsumption,
    ControllerName.PEAK_SHAVING: PeakShaving,
    ControllerName.TOU: TimeOfUseArbitrage,
    ControllerName.MPC: ModelPredictiveControl,
    ControllerName.MPC_FORECAST: _needs_scenario,
}
"""Factories that need no context; ``mpc-forecast``'s refuses with what to do instead (the live platform)."""


def build_controller(name: ControllerName, scenario: Scenario | None = None) -> Controller:
    """The named controller for a study of ``scenario`` (``mpc-forecast`` trains on it; others ignore it)."""
    if name is ControllerName.MPC_FORECAST and scenario is not None:
        return ForecastingMpc.from_scenario(scenario)
    return CONTROLLERS[name]()
