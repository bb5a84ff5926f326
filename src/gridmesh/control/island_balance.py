"""Energy management of an island: the grid-forming battery balances, then curtailment, then load shedding.

Per step (generator convention for the battery, ``p > 0`` discharges; kW; ``dt`` in hours):

* **deficit** (load + losses > generation): the battery discharges within its power and SOC limits; what it
  cannot cover is shed, whole loads in priority order (EV chargers first, then by load class, critical
  loads last), as an under-frequency load-shedding scheme does. A critical load is only shed when the
  battery's available discharge plus the generation cannot carry the critical demand alone.
* **surplus**: the battery charges within its limits; the rest is curtailed from the curtailable generators
  (the same share of each one's available power); if even that is not enough the non-curtailable ones
  reduce too (IEEE 1547 over-frequency droop), reported apart as ``forced_kw``.

Every quantity but the SOC is computed for the whole window at once; the SOC makes time sequential, so
one short loop runs over steps (never over loads), as in :class:`~gridmesh.devices.battery.BatteryFleet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gridmesh.devices.battery import BatteryFleet
from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import Load
from gridmesh.model.kinds import LoadClass

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Shedding rank per load class, low ranks go first. Households stay longest among non-critical loads
# (heating, medical devices at home); EV charging (rank 0) is shed before any of them.
CLASS_RANK: Mapping[LoadClass, int] = {
    LoadClass.COMMERCIAL: 1,
    LoadClass.INDUSTRIAL: 2,
    LoadClass.AGRICULTURAL: 3,
    LoadClass.RESIDENTIAL: 4,
}
EV_RANK = 0
CRITICAL_RANK = 100
TOLERANCE_KW = 1e-9


def shed_priority(
    loads: Sequence[Load], *, ev_chargers: int = 0, class_rank: Mapping[LoadClass, int] = CLASS_RANK
) -> IntArray:
    """Rank of each load (then ``ev_chargers`` EV chargers): lower ranks are shed first, critical loads last."""
    ranks = [CRITICAL_RANK if x.critical else class_rank[x.load_class] for x in loads]
    return np.array(ranks + [EV_RANK] * ev_chargers, dtype=np.int64)


@dataclass(frozen=True)
class IslandBalance:
    """What the island did per step: loads ``(steps, loads)``, generators ``(steps, gens)``, battery ``(steps,)``."""

    served: BoolArray
    served_kw: FloatArray
    shed_kw: FloatArray
    gen_kw: FloatArray  # injected, after curtailment
    curtailed_kw: FloatArray
    forced_kw: FloatArray  # (steps,) of the curtailment taken from non-curtailable generators
    battery_kw: FloatArray
    soc: FloatArray  # after each step

    def residual_kw(self, losses_kw: FloatArray) -> FloatArray:
        """generation + discharge − served load − losses per step: zero when the island balances."""
        residual: FloatArray = self.gen_kw.sum(axis=1) + self.battery_kw - self.served_kw.sum(axis=1) - losses_kw
        return residual


def balance_island(
    load_kw: FloatArray,
    gen_kw: FloatArray,
    battery: BatteryFleet,
    *,
    priority: IntArray,
    curtailable: BoolArray,
    dt_h: float,
    losses_kw: FloatArray | None = None,
    reserve_kwh: FloatArray | None = None,
) -> IslandBalance:
    """Balance one island over a window; ``battery`` (the grid-forming one, a fleet of one) is advanced.

    ``load_kw`` ``(steps, loads)`` is the demand (load convention, loads and EV chargers alike),
    ``gen_kw`` ``(steps, gens)`` the available generation, ``priority`` the rank of each load
    (:func:`shed_priority`), ``curtailable`` a flag per generator and ``losses_kw`` ``(steps,)`` the network
    losses the battery must also cover (zero by default; the power flow gives them). ``reserve_kwh``
    ``(steps,)`` is stored energy (above ``soc_min``) kept for the critical loads from each step on, that
    step included: only critical load may draw it, so non-critical loads are shed when the store runs
    down to it.
    """
    steps, n_loads = load_kw.shape
    if len(battery) != 1:
        raise ScenarioError(
            [Issue("batteries", "grid_forming", f"{len(battery)} given", "balance one unit per island")]
        )
    if priority.shape != (n_loads,) or curtailable.shape != (gen_kw.shape[1],) or gen_kw.shape[0] != steps:
        raise ValueError("priority must have one rank per load, curtailable one flag per generator, same steps")
    losses = np.zeros(steps) if losses_kw is None else np.asarray(losses_kw, dtype=np.float64)
    reserve = np.zeros(steps) if reserve_kwh is None else np.asarray(reserve_kwh, dtype=np.float64)
    order = np.argsort(priority, kind="stable")  # shed-first order
    demand = np.clip(load_kw[:, order], 0.0, None)
    shed_cum = np.cumsum(demand, axis=1)
    total = shed_cum[:, -1] if n_loads else np.zeros(steps)
    n_nc = int((priority < CRITICAL_RANK).sum())  # critical loads come last in the shed order
    total_nc = shed_cum[:, n_nc - 1] if n_nc else np.zeros(steps)
    generation = gen_kw.sum(axis=1)
    shed_count = np.zeros(steps, dtype=np.int64)
    battery_kw, soc = np.zeros(steps), np.zeros(steps)
    for t in range(steps):  # SOC is sequential; each step is O(loads) numpy work
        discharge_max, charge_max = battery.limits_kw(dt_h)
        above_reserve = max(float((battery.soc[0] - battery.soc_min[0]) * battery.e_kwh[0]) - reserve[t], 0.0)
        discharge_nc = min(float(discharge_max[0]), above_reserve * float(battery.eta_discharge[0]) / dt_h)
        # Shed enough that the battery can carry the rest, and that non-critical load stays off the reserve.
        need = max(
            total[t] + losses[t] - generation[t] - float(discharge_max[0]),
            min(total_nc[t] + losses[t] - generation[t] - discharge_nc, total_nc[t]),
        )
        if need > TOLERANCE_KW:
            shed_count[t] = min(int(np.searchsorted(shed_cum[t], need - TOLERANCE_KW, side="left")) + 1, n_loads)
        shed_t = shed_cum[t, shed_count[t] - 1] if shed_count[t] else 0.0
        net = total[t] - shed_t + losses[t] - generation[t]
        battery_kw[t] = float(battery.step(np.array([max(net, -float(charge_max[0]))]), dt_h)[0])
        soc[t] = float(battery.soc[0])
    shed_sorted = np.arange(n_loads)[None, :] < shed_count[:, None]
    served = np.empty_like(shed_sorted)
    served[:, order] = ~shed_sorted
    served_kw = np.where(served, load_kw, 0.0)
    # What the battery and the loads leave over is curtailed: curtailable generators first, pro rata.
    surplus = generation + battery_kw - served_kw.sum(axis=1) - losses
    surplus = np.where(surplus > TOLERANCE_KW, surplus, 0.0)
    flexible = (gen_kw * curtailable).sum(axis=1)
    from_flexible = np.minimum(surplus, flexible)
    forced = surplus - from_flexible
    rigid = generation - flexible
    share_flex = np.divide(from_flexible, flexible, out=np.zeros(steps), where=flexible > 0)
    share_rigid = np.divide(forced, rigid, out=np.zeros(steps), where=rigid > 0)
    curtailed = gen_kw * np.where(curtailable, share_flex[:, None], share_rigid[:, None])
    return IslandBalance(
        served=served,
        served_kw=served_kw,
        shed_kw=load_kw - served_kw,
        gen_kw=gen_kw - curtailed,
        curtailed_kw=curtailed,
        forced_kw=forced,
        battery_kw=battery_kw,
        soc=soc,
    )


def rehearse(battery: BatteryFleet) -> BatteryFleet:
    """A copy of the battery's state for a trial pass (the power flow's losses are not known yet)."""
    return replace(battery, soc=battery.soc.copy())
