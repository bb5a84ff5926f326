"""Islands formed by grid-forming batteries, their power flow and their droop.

When the upstream supply is lost (external grids out) or a PCC opens, every de-energised part of the
grid that holds an in-service grid-forming battery keeps its voltage: that battery becomes the island's
voltage source. For the power flow it is an ideal source (an :class:`ExternalGrid` at its bus, as
pandapower's ext_grid) whose power is the battery's output; its voltage set-point follows the Q-droop and
the island's frequency follows the P-droop of that output (a single grid-forming unit sets both).

Topology comes from :mod:`gridmesh.model.graph`; nothing here loops over buses in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import Element, ExternalGrid
from gridmesh.model.graph import connectivity
from gridmesh.model.network import Network
from gridmesh.physics.powerflow import FloatArray, Injections, PowerFlow, PowerFlowResult

SOURCE_PREFIX = "island:"  # id of the external grid that stands for a grid-forming battery


@dataclass(frozen=True)
class Island:
    """A de-energised part of the grid held up by one grid-forming battery (``former``)."""

    buses: tuple[str, ...]
    former: str

    @property
    def source_id(self) -> str:
        return SOURCE_PREFIX + self.former


@dataclass(frozen=True)
class Droop:
    """Droop of a grid-forming unit: ``f = f0 − (P/P_rated)·p_droop·f0`` and ``V = V0 − (Q/Q_rated)·q_droop``.

    P and Q in generator convention (discharging / exporting reactive power > 0), rated values in kW and
    kvar (an inverter's Q rating is taken equal to its P rating). The 1 % P-droop keeps an island inside
    EN 50549-1's continuous band (49.5 … 50.5 Hz) over the battery's whole power range.
    """

    f0_hz: float = 50.0
    p_droop: float = 0.01
    v0_pu: float = 1.0
    q_droop: float = 0.05

    def frequency_hz(self, p_kw: npt.ArrayLike, p_rated_kw: npt.ArrayLike) -> FloatArray:
        share = np.asarray(p_kw, dtype=np.float64) / np.asarray(p_rated_kw, dtype=np.float64)
        f: FloatArray = self.f0_hz - share * self.p_droop * self.f0_hz
        return f

    def voltage_pu(self, q_kvar: npt.ArrayLike, q_rated_kvar: npt.ArrayLike) -> FloatArray:
        share = np.asarray(q_kvar, dtype=np.float64) / np.asarray(q_rated_kvar, dtype=np.float64)
        v: FloatArray = self.v0_pu - share * self.q_droop
        return v


def outage_network(network: Network, *, open_switches: Iterable[str] = (), upstream_lost: bool = False) -> Network:
    """The network during an outage: ``open_switches`` open, and every external grid out if ``upstream_lost``."""
    opened = set(open_switches)
    unknown = sorted(opened - set(network.switches))
    if unknown:
        raise ScenarioError(
            [Issue(f"switches[{s}]", "id", "no such switch", "name a switch of the scenario") for s in unknown]
        )
    changed: list[Element] = [network.switches[s].model_copy(update={"closed": False}) for s in sorted(opened)]
    if upstream_lost:
        changed += [g.model_copy(update={"in_service": False}) for g in network.external_grids.values()]
    return network.with_elements(changed)


def find_islands(network: Network, *, formers: Iterable[str] | None = None) -> tuple[Island, ...]:
    """Every de-energised component (present switch states) that holds an in-service grid-forming battery.

    The largest such battery (by power rating, then id) forms the island; others in it follow. ``formers``
    limits which batteries may form one (the rest trip on loss of mains, as anti-islanding protection does).
    """
    allowed = None if formers is None else set(formers)
    conn = connectivity(network)
    label_of = dict(zip(conn.bus_ids, conn.labels.tolist(), strict=True))
    live = dict(zip(conn.bus_ids, conn.energized.tolist(), strict=True))
    former_of: dict[int, str] = {}
    candidates = sorted(
        (
            b
            for b in network.batteries.values()
            if b.grid_forming and b.in_service and not live[b.bus] and (allowed is None or b.id in allowed)
        ),
        key=lambda b: (-b.p_kw, b.id),
    )
    for battery in candidates:
        former_of.setdefault(label_of[battery.bus], battery.id)
    labels = np.array(list(former_of), dtype=np.int64)
    buses = np.array(conn.bus_ids, dtype=object)
    return tuple(
        Island(buses=tuple(buses[conn.labels == label].tolist()), former=former_of[int(label)]) for label in labels
    )


def with_island_sources(network: Network, islands: Sequence[Island], *, v_set_pu: float = 1.0) -> Network:
    """The network with each island's grid-forming battery added as an ideal voltage source at its bus.

    The battery itself stays in the input (its injection must then be zero: the source carries its power).
    """
    sources = [
        ExternalGrid(id=i.source_id, bus=network.batteries[i.former].bus, vm_pu=v_set_pu, va_degree=0.0)
        for i in islands
    ]
    return network.with_elements(sources)


@dataclass(frozen=True)
class IslandFlowResult:
    """The power flow of a window with islands; island arrays are ``(steps, islands)`` in island order."""

    result: PowerFlowResult
    p_kw: FloatArray  # each grid-forming battery's output (discharge > 0)
    q_kvar: FloatArray
    v_set_pu: FloatArray  # the Q-droop voltage set-point the source held
    frequency_hz: FloatArray
    losses_kw: FloatArray  # series losses inside each island
    droop_residual_pu: FloatArray  # |V_set − droop(Q)|: how far the last pass is from the droop's fixed point


class IslandFlow:
    """Batch power flow of a network holding islands, with the grid-forming units' droop.

    The voltage set-point depends on the reactive power the island draws, which depends on the set-point:
    ``passes`` fixed-point passes (one batch power flow each) settle it; the residual is reported.
    """

    def __init__(
        self, network: Network, islands: Sequence[Island], *, droop: Droop | None = None, method: str = "newton_raphson"
    ) -> None:
        self.islands = tuple(islands)
        self.droop = droop or Droop()
        self.network = with_island_sources(network, self.islands, v_set_pu=self.droop.v0_pu)
        self.engine = PowerFlow(self.network, method=method)
        index = self.engine.index
        self._source_cols = np.array([index.sources.index(i.source_id) for i in self.islands], dtype=np.int64)
        self._base_u = np.array([self.network.external_grids[s].vm_pu for s in index.sources])
        self.rated_kw = np.array([network.batteries[i.former].p_kw for i in self.islands])
        self.former_cols = np.array([index.batteries.index(i.former) for i in self.islands], dtype=np.int64)
        in_island = [set(i.buses) for i in self.islands]
        lines = [self.network.lines[x] for x in index.lines]
        trafos = [self.network.transformers[x] for x in index.transformers]
        n = len(self.islands)
        line_mask = [[ln.from_bus in s and ln.to_bus in s for s in in_island] for ln in lines]
        trafo_mask = [[t.hv_bus in s and t.lv_bus in s for s in in_island] for t in trafos]
        self._line_mask = np.array(line_mask, dtype=np.float64).reshape(len(lines), n)
        self._trafo_mask = np.array(trafo_mask, dtype=np.float64).reshape(len(trafos), n)

    def run(self, injections: Injections, *, passes: int = 3) -> IslandFlowResult:
        """Power flow of every step; the grid-forming batteries' own injections are forced to zero."""
        battery = injections.battery_p_kw.copy()
        battery[:, self.former_cols] = 0.0
        inj = Injections(
            injections.load_p_kw,
            injections.load_q_kvar,
            injections.gen_p_kw,
            injections.gen_q_kvar,
            injections.ev_p_kw,
            battery,
        )
        u = np.broadcast_to(self._base_u, (inj.steps, len(self._base_u))).copy()
        result = self.engine.run(inj, source_u_pu=u)
        for _ in range(passes - 1):
            u[:, self._source_cols] = self.droop.voltage_pu(result.grid_q_kvar[:, self._source_cols], self.rated_kw)
            result = self.engine.run(inj, source_u_pu=u)
        p, q = result.grid_p_kw[:, self._source_cols], result.grid_q_kvar[:, self._source_cols]
        v_set = u[:, self._source_cols]
        return IslandFlowResult(
            result=result,
            p_kw=p,
            q_kvar=q,
            v_set_pu=v_set,
            frequency_hz=self.droop.frequency_hz(p, self.rated_kw),
            losses_kw=self._losses(result),
            droop_residual_pu=np.abs(v_set - self.droop.voltage_pu(q, self.rated_kw)),
        )

    def _losses(self, result: PowerFlowResult) -> FloatArray:
        lines = np.nan_to_num(result.line_p_from_kw + result.line_p_to_kw) @ self._line_mask
        trafos = np.nan_to_num(result.trafo_p_from_kw + result.trafo_p_to_kw) @ self._trafo_mask
        losses: FloatArray = (lines + trafos).astype(np.float64)
        return losses
