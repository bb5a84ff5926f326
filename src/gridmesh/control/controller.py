"""The one small interface through which controllers plug into the control cycle.

A controller *requests*; it never writes a device. It returns a :class:`Request` for a window of steps:
setpoints it would like (NaN where it has no opinion) and bounds it insists on. Arbitration merges the
requests of all controllers by priority, and the safety layer clamps the result to what devices can do
(:mod:`gridmesh.control.cycle`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    """The frozen process image a controller plans on: element powers for the window's steps.

    ``load_p_kw``/``gen_p_kw``/``ev_p_kw`` are ``(steps, n)`` in the network's table order, before any
    dispatch (generators at their available power, loads before any deferral); ``batteries`` and
    ``flexible`` are state at the start of the window and must not be changed by controllers.
    """

    network: Network
    sites: Mapping[str, SiteMembers]
    times: pd.DatetimeIndex
    dt_h: float
    load_p_kw: FloatArray
    gen_p_kw: FloatArray
    ev_p_kw: FloatArray
    batteries: BatteryFleet
    tariff: TimeOfUseTariff = field(default_factory=TimeOfUseTariff)
    # The same image over a longer horizon from the same start (clipped at the study's end): what a
    # forecaster would provide. Studies give perfect information here; live operation gives forecasts.
    lookahead: Callable[[int], Window] | None = None
    # Reactive powers of loads and generators, for controllers that run their own power flow.
    load_q_kvar: FloatArray | None = None
    gen_q_kvar: FloatArray | None = None
    flexible: FlexibleLoads | None = None
    @property
    def steps(self) -> int:
        return len(self.times)

    def nothing(self) -> FloatArray:
        """A ``(steps, batteries)`` array of NaN: no opinion."""
        return np.full((self.steps, len(self.batteries)), np.nan)


@dataclass(frozen=True)
class Request:
    """What a controller asks for over the window; NaN everywhere means no opinion.

    ``setpoint_kw``: battery power (kW, generator convention), ``(steps, batteries)``. ``lower_kw``/``upper_kw``
    are battery limits the controller insists on (NaN: none); a higher-priority controller's limits narrow
    every lower-priority setpoint. ``curtail_kw``: generation to hold back, ``(steps, generators)`` in the
    network's order. ``flex_kw``: consumption of the window's flexible loads to defer (+) or catch up (−),
    ``(steps, flexible loads)``.
    """

    setpoint_kw: FloatArray
    lower_kw: FloatArray | None = None
    upper_kw: FloatArray | None = None
    curtail_kw: FloatArray | None = None
    flex_kw: FloatArray | None = None


class Controller(Protocol):
    """A single-purpose planner. ``priority``: higher wins in arbitration."""

    name: str
    priority: int

    def plan(self, window: Window) -> Request: ...


class NoControl:
    """Batteries stay idle: the baseline every controller is compared with."""

    name = "none"
    priority = 0

    def plan(self, window: Window) -> Request:
        return Request(window.nothing())
