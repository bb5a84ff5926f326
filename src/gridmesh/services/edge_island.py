"""An edge agent's energy management while its microgrid is islanded: one step of the island balance.

:func:`~gridmesh.control.island_balance.balance_island` runs over the look-ahead (present from readings,
then the profiles as forecast) on the grid-forming battery, with a reserve for the critical loads over
that horizon (the agent does not know when the grid returns, so it keeps what the critical loads need
for the horizon); the first step is what the agent orders: the grid-forming battery's setpoint, the
curtailment of each generator, and which loads and EV chargers are shed (critical loads last).

Which battery forms the grid: the largest grid-forming one; a site without one falls back on its
largest battery (a site that truly cannot form a grid is dark anyway, and the plan then says so in the
shed list).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from gridmesh.control.controller import Window
from gridmesh.control.island_balance import balance_island, shed_priority
from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.network import Network

DEFAULT_RESERVE_STEPS = 16  # four hours of 15-minute steps kept for the critical loads


@dataclass(frozen=True)
class IslandStep:
    """The present step of an island: kW, battery in generator convention."""

    battery: str
    battery_kw: float
    curtailed_kw: dict[str, float]  # generator → held back (only those curtailed)
    shed: tuple[str, ...]  # loads and EV chargers shed, in shedding order
    shed_demand_kw: dict[str, float]  # what each shed consumer would draw now (its present demand)
    served_kw: float
    shed_kw: float
    critical_kw: float  # critical demand
    critical_served_kw: float


class IslandPlanner:
    """Island balance for one microgrid's network (:func:`~gridmesh.services.edge_site.site_network`)."""

    def __init__(self, network: Network, *, reserve_steps: int = DEFAULT_RESERVE_STEPS) -> None:
        if not network.batteries:
            raise ValueError(f"{network.name} has no battery to form an island")
        if reserve_steps < 1:
            raise ValueError(f"reserve_steps must be at least 1, got {reserve_steps}")
        loads = list(network.loads.values())
        self.reserve_steps = reserve_steps
        self.consumers = [*network.loads, *network.ev_chargers]
        self._position = {c: i for i, c in enumerate(self.consumers)}
        self.priority = shed_priority(loads, ev_chargers=len(network.ev_chargers))
        self.critical = np.array([x.critical for x in loads] + [False] * len(network.ev_chargers), dtype=bool)
        self.curtailable = np.array([g.curtailable for g in network.generators.values()], dtype=bool)
        self.generators = list(network.generators)
        former = max(network.batteries.values(), key=lambda b: (b.grid_forming, b.p_kw, b.id))
        self.battery = former.id

    def plan(self, window: Window, disconnected: Mapping[str, float] | None = None) -> IslandStep:
        """The island's first step over ``window``'s look-ahead (SOC: ``window.batteries``).

        ``disconnected``: consumers the agent has shed and still holds off, with their demand when shed.
        Their meters now read zero, which is not what they would draw: their present demand is taken as it
        was, or the island would reconnect them at the next step only to shed them again."""
        ahead = window.lookahead(self.reserve_steps) if window.lookahead is not None else window
        demand = np.hstack([ahead.load_p_kw, ahead.ev_p_kw])
        for consumer, kw in (disconnected or {}).items():
            demand[0, self._position[consumer]] = kw
        fleet = ahead.batteries
        k = fleet.ids.index(self.battery)
        unit = BatteryFleet.of([window.network.batteries[self.battery]])
        unit = replace(unit, soc=fleet.soc[k : k + 1].copy())
        critical_kwh = demand[:, self.critical].sum(axis=1) * ahead.dt_h
        reserve = np.cumsum(critical_kwh[::-1])[::-1] / float(unit.eta_discharge[0])
        balance = balance_island(
            demand,
            ahead.gen_p_kw,
            unit,
            priority=self.priority,
            curtailable=self.curtailable,
            dt_h=ahead.dt_h,
            reserve_kwh=reserve,
        )
        served = balance.served[0]
        order = np.argsort(self.priority, kind="stable")
        return IslandStep(
            battery=self.battery,
            battery_kw=float(balance.battery_kw[0]),
            curtailed_kw={
                g: float(kw)
                for g, kw in zip(self.generators, balance.curtailed_kw[0].tolist(), strict=True)
                if kw > 0.0
            },
            shed=tuple(self.consumers[i] for i in order.tolist() if not served[i]),
            shed_demand_kw={self.consumers[i]: float(demand[0, i]) for i in np.flatnonzero(~served).tolist()},
            served_kw=float(balance.served_kw[0].sum()),
            shed_kw=float(balance.shed_kw[0].sum()),
            critical_kw=float(demand[0, self.critical].sum()),
            critical_served_kw=float(balance.served_kw[0, self.critical].sum()),
        )
