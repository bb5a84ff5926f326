"""Per-site energy flows of a window: consumption, generation, battery, and exchange with the grid.

A microgrid's exchange is the power measured through its PCC (so it includes the microgrid's own
losses). A group or VPP nets its members' balances step by step: energy shared between members does
not count as import or export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.kinds import SiteLevel, SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers, member_positions
from gridmesh.physics.pgm_input import ModelIndex
from gridmesh.physics.powerflow import PowerFlowResult

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Pcc:
    """Where the PCC flow is read: a result array, its column, and the sign that makes import positive."""

    array: str
    column: int
    sign: float


@dataclass(frozen=True)
class _SiteColumns:
    site: str
    level: SiteLevel
    loads: IntArray
    gens: IntArray
    evs: IntArray
    batteries: IntArray
    pcc: _Pcc | None


def pcc_reading(network: Network, index: ModelIndex, pcc: str, buses: frozenset[str]) -> _Pcc:
    """How to read the import into the microgrid through switch ``pcc`` from power-flow results.

    A switch sits at bus ``b`` on one end of a branch (or between two buses). If ``b`` is inside the
    microgrid, import is the power leaving the branch into ``b`` (−p at that end); otherwise it is the
    power entering the branch from ``b`` (+p at that end).
    """
    sw = network.switches[pcc]
    sign = -1.0 if sw.bus in buses else 1.0
    if sw.element_type is SwitchedElement.BUS:
        return _Pcc("link_p_from_kw", index.links.index(sw.id), sign)
    if sw.element_type is SwitchedElement.LINE:
        line = network.lines[sw.element]
        end = "line_p_from_kw" if line.from_bus == sw.bus else "line_p_to_kw"
        return _Pcc(end, index.lines.index(sw.element), sign)
    trafo = network.transformers[sw.element]
    end = "trafo_p_from_kw" if trafo.hv_bus == sw.bus else "trafo_p_to_kw"
    return _Pcc(end, index.transformers.index(sw.element), sign)


class SiteFlows:
    """Column positions of every site, resolved once per study."""

    def __init__(self, network: Network, sites: Mapping[str, SiteMembers], index: ModelIndex) -> None:
        self.sites = [
            _SiteColumns(
                site=site,
                level=m.level,
                loads=member_positions(index.loads, m.elements["loads"]),
                gens=member_positions(index.generators, m.elements["generators"]),
                evs=member_positions(index.ev_chargers, m.elements["ev_chargers"]),
                batteries=member_positions(index.batteries, m.elements["batteries"]),
                pcc=pcc_reading(network, index, network.sites[site].pcc or "", m.buses)
                if m.level is SiteLevel.MICROGRID
                else None,
            )
            for site, m in sites.items()
        ]

    def frame(
        self,
        times: pd.DatetimeIndex,
        load_kw: FloatArray,
        gen_kw: FloatArray,
        ev_kw: FloatArray,
        battery_kw: FloatArray,
        soc: FloatArray,
        fleet: BatteryFleet,
        result: PowerFlowResult,
    ) -> pd.DataFrame:
        """Long table (time, site, level, consumption_kw, generation_kw, battery_kw, import_kw, soc)."""
        parts = []
        for s in self.sites:
            consumption = load_kw[:, s.loads].sum(axis=1) + ev_kw[:, s.evs].sum(axis=1)
            generation = gen_kw[:, s.gens].sum(axis=1)
            battery = battery_kw[:, s.batteries].sum(axis=1)
            if s.pcc is not None:
                exchange = s.pcc.sign * getattr(result, s.pcc.array)[:, s.pcc.column]
            else:
                exchange = consumption - generation - battery
            energy = fleet.e_kwh[s.batteries]
            mean_soc = (
                (soc[:, s.batteries] @ energy) / energy.sum() if s.batteries.size else np.full(len(times), np.nan)
            )
            parts.append(
                pd.DataFrame(
                    {
                        "time": times,
                        "site": s.site,
                        "level": int(s.level),
                        "consumption_kw": consumption,
                        "generation_kw": generation,
                        "battery_kw": battery,
                        "import_kw": exchange,
                        "soc": mean_soc,
                    }
                )
            )
        if not parts:
            return pd.DataFrame(
                columns=["time", "site", "level", "consumption_kw", "generation_kw", "battery_kw", "import_kw", "soc"]
            )
        return pd.concat(parts, ignore_index=True)
