"""Can a normally open tie carry a cut-off part of a feeder? One power flow at peak load says so.

A transfer is accepted when it creates no *new* violation compared with the normal configuration at the
same snapshot: no branch loaded above 100 % that was not already, no bus below its ``v_min_pu`` (or above
``v_max_pu``) that was not already. The snapshot is the planning worst case for a transfer: every load at
its reference power ``p_kw`` and no local generation. Each (isolation, tie) pair is solved once and cached;
a Monte Carlo over thousands of years then only looks the answer up.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from gridmesh.errors import NotConverged
from gridmesh.model.network import Network
from gridmesh.physics.powerflow import STUDY_OUTPUTS, Injections, PowerFlow, PowerFlowResult

BoolArray = npt.NDArray[np.bool_]
OVERLOAD = 1.0 + 1e-6


class TieCapacity:
    """Cached transfer checks on one network in its normal switching state."""

    def __init__(self, network: Network) -> None:
        normal = [sw.model_copy(update={"closed": None}) for sw in network.switches.values() if sw.closed is not None]
        self.network = network.with_elements(normal) if normal else network
        self._cache: dict[tuple[frozenset[str], str], bool] = {}
        base = self._solve(self.network)
        if base is None:
            raise NotConverged([0], ["the normal configuration at peak load does not converge; check the network"])
        self._base = _violations(self.network, base)

    @property
    def checks(self) -> int:
        """Power flows solved so far (one per distinct transfer)."""
        return len(self._cache)

    def accepts(self, opened: Iterable[str], tie: str) -> bool:
        """Whether closing ``tie`` with the switches ``opened`` open keeps the grid within its limits."""
        key = (frozenset(opened), tie)
        if key not in self._cache:
            switches = self.network.switches
            changed = [switches[s].model_copy(update={"closed": False}) for s in sorted(key[0])]
            changed.append(switches[tie].model_copy(update={"closed": True}))
            result = self._solve(self.network.with_elements(changed))
            self._cache[key] = result is not None and not np.any(_violations(self.network, result) & ~self._base)
        return self._cache[key]

    @staticmethod
    def _solve(network: Network) -> PowerFlowResult | None:
        engine = PowerFlow(network, outputs=STUDY_OUTPUTS, threading=1)
        base = engine.base_injections()
        peak = Injections(
            base.load_p_kw,
            base.load_q_kvar,
            np.zeros_like(base.gen_p_kw),
            np.zeros_like(base.gen_q_kvar),
            base.ev_p_kw,
            np.zeros_like(base.battery_p_kw),
        )
        result = engine.run(peak)
        return None if result.failed else result


def _violations(network: Network, result: PowerFlowResult) -> BoolArray:
    """One flag per bus, line and transformer (in the result's index order): outside its limits."""
    index = result.index
    v_min = np.fromiter((network.buses[b].v_min_pu for b in index.buses), dtype=np.float64, count=len(index.buses))
    v_max = np.fromiter((network.buses[b].v_max_pu for b in index.buses), dtype=np.float64, count=len(index.buses))
    v = result.v_pu[0]
    live = result.energized[0]
    buses = live & ((v < v_min - 1e-9) | (v > v_max + 1e-9))
    lines = np.nan_to_num(result.line_loading[0]) > OVERLOAD
    trafos = np.nan_to_num(result.trafo_loading[0]) > OVERLOAD
    flags: BoolArray = np.concatenate([buses, lines, trafos])
    return flags
