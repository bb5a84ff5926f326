"""The one small interface through which controllers plug into studies (and, later, the live cycle).

A controller *requests*; it never writes a device. The battery model (and, later, the arbitration and
safety layer) turns requests into what devices actually do, clamped to ratings and SOC windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    """What a controller sees when it plans a window: the forecast-free truth of a study.

    ``load_p_kw``/``gen_p_kw``/``ev_p_kw`` are ``(steps, n)`` in the network's table order; ``batteries``
    is read-only state at the start of the window.
    """

    network: Network
    sites: Mapping[str, SiteMembers]
    times: pd.DatetimeIndex
    dt_h: float
    load_p_kw: FloatArray
    gen_p_kw: FloatArray
    ev_p_kw: FloatArray
    batteries: BatteryFleet

    @property
    def steps(self) -> int:
        return len(self.times)


class Controller(Protocol):
    """Requests battery power for every step of a window (kW, generator convention; NaN = no request)."""

    name: str

    def battery_requests(self, window: Window) -> FloatArray: ...


class NoControl:
    """Batteries stay idle: the baseline every controller is compared with."""

    name = "none"

    def battery_requests(self, window: Window) -> FloatArray:
        return np.full((window.steps, len(window.batteries)), np.nan)
