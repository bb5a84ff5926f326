"""The flexibility envelope of a VPP: what aggregate dispatch it can promise, per interval, and at what cost.

The envelope is a small *virtual* plant: one virtual battery (charge and discharge bounds per interval, one
power rating, a stored-energy window, efficiency bounds) plus virtual curtailment (down only, per-interval
bound). An aggregate dispatch ``p`` (kW, ``> 0`` up: more injection) is inside the envelope when it splits as
``p = d − c − u`` with::

    0 ≤ d ≤ discharge_kw,  0 ≤ c ≤ charge_kw,  c + d ≤ storage_kw,  0 ≤ u ≤ curtail_kw
    Σ (η_c,lo·c − d/η_d,lo)·dt ≥ −energy_below_kwh      (pessimistic losses: never below the floor)
    Σ (η_c,hi·c − d/η_d,hi)·dt ≤  energy_above_kwh      (optimistic losses: never above the ceiling)

Feasibility guarantee (an inner approximation). Give battery i the share ``α_i`` of ``c`` and ``d`` and give
generator g the share ``avail_g/Σavail`` of ``u``. Then every battery stays within its rating
(``storage_kw = min p_i/α_i``) and SOC window (``energy_below = min (soc0_i − soc_min_i)·E_i/α_i``, likewise
above, and its own efficiency lies between the bounds), every generator within its forecast, and the sum is
``p``. The per-interval bounds are the largest box whose *every corner* keeps each linearised network limit
(:func:`gridmesh.optim.vpp.network_rows`); the limits are linear, so the whole box does. Hence any ``p``
inside the envelope has a feasible disaggregation, and the least-cost LP finds one at least as cheap. The
envelope is exact (for the power and energy sums) when batteries share SOC fractions and efficiencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from gridmesh.optim.lp import LpStatus, SparseLp
from gridmesh.optim.vpp import FloatArray, VppFleet, network_rows, participation


class Direction(StrEnum):
    UP = "up"  # more injection / less consumption
    DOWN = "down"


class ClipReason(StrEnum):
    """Why an interval of an award could not be delivered in full."""

    UP_CAPABILITY = "above the up capability"
    DOWN_CAPABILITY = "below the down capability"
    STORAGE_EMPTY = "storage energy exhausted"
    STORAGE_FULL = "storage full"


@dataclass(frozen=True)
class CostSegment:
    """One step of the cost curve: ``kw`` (per interval) of flexibility at ``eur_per_kwh``."""

    direction: Direction
    resource: str
    eur_per_kwh: float
    kw: FloatArray


@dataclass(frozen=True)
class Envelope:
    """Per-interval bounds (kW, arrays over T) and the virtual storage's energy window (kWh stored)."""

    dt_h: float
    discharge_kw: FloatArray
    charge_kw: FloatArray
    curtail_kw: FloatArray
    storage_kw: float
    stored_kwh: float  # the fleet's stored energy at the start
    energy_below_kwh: float  # how far the virtual stored energy may fall
    energy_above_kwh: float  # how far it may rise
    eta_charge: tuple[float, float]  # (lowest, highest) of the fleet
    eta_discharge: tuple[float, float]
    costs: tuple[CostSegment, ...]
    share: FloatArray  # α per battery
    limited_by: tuple[str, ...] = ()  # per interval: the network limits that shrank the bounds ("" for none)

    @property
    def steps(self) -> int:
        return int(self.discharge_kw.shape[0])

    @property
    def up_kw(self) -> FloatArray:
        """Largest aggregate increase of injection per interval, kW."""
        return self.discharge_kw

    @property
    def down_kw(self) -> FloatArray:
        """Largest aggregate decrease of injection per interval, kW (≥ 0)."""
        result: FloatArray = self.charge_kw + self.curtail_kw
        return result

    def energy_up_kwh(self) -> FloatArray:
        """Most energy the VPP can deliver up by the end of each interval (cumulative, grid side, kWh)."""
        return np.minimum(
            np.cumsum(self.discharge_kw) * self.dt_h, self.energy_below_kwh * self.eta_discharge[0]
        ).astype(np.float64)

    def energy_down_kwh(self) -> FloatArray:
        """Most energy the VPP can take down by the end of each interval (cumulative, grid side, kWh)."""
        storage = np.minimum(np.cumsum(self.charge_kw) * self.dt_h, self.energy_above_kwh / self.eta_charge[1])
        return (storage + np.cumsum(self.curtail_kw) * self.dt_h).astype(np.float64)


@dataclass(frozen=True)
class Fit:
    """An award brought inside the envelope: ``target = award − shortfall`` with the virtual split of it."""

    award_kw: FloatArray
    target_kw: FloatArray
    shortfall_kw: FloatArray  # > 0: less up (or more down) than awarded
    reasons: tuple[str, ...]  # per interval, "" where delivered in full
    discharge_kw: FloatArray
    charge_kw: FloatArray
    curtail_kw: FloatArray

    @property
    def inside(self) -> bool:
        return not any(self.reasons)


def vpp_envelope(fleet: VppFleet) -> Envelope:
    """The envelope of ``fleet`` (see the module docstring), one LP over all intervals."""
    t, dt = fleet.steps, fleet.dt_h
    share = participation(fleet)
    used = share > 0
    storage_kw = float(np.min(fleet.p_max_kw[used] / share[used])) if used.any() else 0.0
    below = float(np.min(((fleet.soc0 - fleet.soc_min) * fleet.e_kwh)[used] / share[used])) if used.any() else 0.0
    above = float(np.min(((fleet.soc_max - fleet.soc0) * fleet.e_kwh)[used] / share[used])) if used.any() else 0.0
    available = fleet.gen_available_kw.sum(axis=1)
    gen_share = np.divide(
        fleet.gen_available_kw,
        available[:, None],
        out=np.zeros_like(fleet.gen_available_kw),
        where=available[:, None] > 0,
    )
    rows = network_rows(fleet)
    b = fleet.n_batteries
    per_storage = rows.d_dp[:, :b] @ share  # (M,) per kW of virtual storage injection
    per_curtail = -(gen_share @ rows.d_dp[:, b:].T)  # (T, M) per kW of virtual curtailment

    lp = SparseLp()
    discharge = lp.variables(t, upper=storage_kw, cost=-1.0)
    charge = lp.variables(t, upper=storage_kw, cost=-1.0)
    curtail = lp.variables(t, upper=available, cost=-1.0)
    pos, neg = np.maximum(per_storage, 0.0)[None, :], np.maximum(-per_storage, 0.0)[None, :]
    # Every corner of the box within the headroom: the largest rise and the largest fall.
    corners = (
        (rows.upper, pos, neg, np.maximum(per_curtail, 0.0)),
        (-rows.lower, neg, pos, np.maximum(-per_curtail, 0.0)),
    )
    for bound, d_coef, c_coef, u_coef in corners:
        block = lp.rows(bound.shape, upper=bound)
        lp.terms(block, discharge[:, None], d_coef)
        lp.terms(block, charge[:, None], c_coef)
        lp.terms(block, curtail[:, None], u_coef)
    solution = lp.solve()
    if solution.status is not LpStatus.OPTIMAL:  # the zero box is always feasible: a solver failure
        raise RuntimeError(f"VPP envelope LP: {solution.message}")
    x = solution.x
    discharge_kw = np.clip(x[discharge], 0.0, storage_kw) + 0.0  # + 0.0: no negative zeros in reports
    charge_kw = np.clip(x[charge], 0.0, storage_kw) + 0.0
    curtail_kw = np.clip(x[curtail], 0.0, available) + 0.0
    tight = np.zeros(rows.lower.shape, dtype=bool)  # (T, M): limits the box touches
    for bound, d_coef, c_coef, u_coef in corners:
        used_kw = d_coef * discharge_kw[:, None] + c_coef * charge_kw[:, None] + u_coef * curtail_kw[:, None]
        tight |= (bound - used_kw <= 1e-7 * np.maximum(1.0, np.abs(bound))) & (d_coef + c_coef + u_coef > 0)
    return Envelope(
        dt_h=dt,
        discharge_kw=discharge_kw,
        charge_kw=charge_kw,
        curtail_kw=curtail_kw,
        storage_kw=storage_kw,
        stored_kwh=float((fleet.soc0 * fleet.e_kwh).sum()),
        energy_below_kwh=below,
        energy_above_kwh=above,
        eta_charge=_bounds(fleet.eta_charge[used]),
        eta_discharge=_bounds(fleet.eta_discharge[used]),
        limited_by=tuple(", ".join(n for n, hit in zip(rows.names, row, strict=True) if hit) for row in tight),
        costs=_costs(fleet, share, discharge_kw, charge_kw, curtail_kw),
        share=share,
    )


def _bounds(values: FloatArray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (1.0, 1.0)


def _costs(
    fleet: VppFleet, share: FloatArray, discharge: FloatArray, charge: FloatArray, curtail: FloatArray
) -> tuple[CostSegment, ...]:
    """Merit order per direction: each battery's share of the storage bounds at its degradation cost,
    curtailment at its price; cheapest first."""
    segments = [
        CostSegment(direction, f"battery {bid}", float(cost), kw * a)
        for bid, cost, a in zip(fleet.battery_ids, fleet.degradation_eur_per_kwh, share, strict=True)
        if a > 0
        for direction, kw in ((Direction.UP, discharge), (Direction.DOWN, charge))
    ]
    if fleet.n_generators:
        segments.append(CostSegment(Direction.DOWN, "curtailment", fleet.curtailment_eur_per_kwh, curtail))
    order = {Direction.UP: 0, Direction.DOWN: 1}
    return tuple(sorted(segments, key=lambda s: (order[s.direction], s.eur_per_kwh, s.resource)))


def fit_award(envelope: Envelope, award_kw: FloatArray, *, tolerance_kw: float = 1e-6) -> Fit:
    """The deliverable trajectory nearest to ``award_kw`` (least absolute shortfall); where some must be
    cut, earlier intervals are served first (a battery empties at the end of a long call, not the start)."""
    award = np.asarray(award_kw, dtype=np.float64).reshape(-1)
    t, dt, e = envelope.steps, envelope.dt_h, envelope
    if award.shape != (t,) or not np.isfinite(award).all():
        raise ValueError(f"award must be {t} finite values (kW per interval), got shape {award.shape}")
    lp = SparseLp()
    weight = 1.0 + 0.01 * (t - np.arange(t)) / max(t, 1)
    d = lp.variables(t, upper=e.discharge_kw, cost=1e-6)
    c = lp.variables(t, upper=e.charge_kw, cost=1e-6)
    u = lp.variables(t, upper=e.curtail_kw)
    over, under = lp.variables(t, cost=weight), lp.variables(t, cost=weight)
    both = lp.rows(t, upper=e.storage_kw)
    lp.terms(both, d)
    lp.terms(both, c)
    balance = lp.rows(t, lower=award, upper=award)  # d − c − u − over + under = award
    for var, sign in ((d, 1.0), (c, -1.0), (u, -1.0), (over, -1.0), (under, 1.0)):
        lp.terms(balance, var, sign)
    for (eta_c, eta_d), lower, upper in (
        ((e.eta_charge[0], e.eta_discharge[0]), -e.energy_below_kwh, np.inf),
        ((e.eta_charge[1], e.eta_discharge[1]), -np.inf, e.energy_above_kwh),
    ):
        stored = lp.variables(t, lower=lower, upper=upper)  # virtual stored energy relative to the start
        dynamics = lp.rows(t, lower=0.0, upper=0.0)
        lp.terms(dynamics, stored, 1.0)
        lp.terms(dynamics[1:], stored[:-1], -1.0)
        lp.terms(dynamics, c, -eta_c * dt)
        lp.terms(dynamics, d, dt / eta_d)
    solution = lp.solve()
    if solution.status is not LpStatus.OPTIMAL:  # zero dispatch is always inside: a solver failure
        raise RuntimeError(f"VPP award fit LP: {solution.message}")
    x = solution.x
    discharge, charge, curtail = (
        np.clip(x[v], 0.0, hi) for v, hi in ((d, e.discharge_kw), (c, e.charge_kw), (u, e.curtail_kw))
    )
    shortfall = x[under] - x[over]
    shortfall[np.abs(shortfall) <= tolerance_kw] = 0.0
    target = award - shortfall
    return Fit(award, target, shortfall, _reasons(envelope, award, shortfall, tolerance_kw), discharge, charge, curtail)


def _reasons(envelope: Envelope, award: FloatArray, shortfall: FloatArray, tolerance: float) -> tuple[str, ...]:
    reason = np.where(
        award > envelope.up_kw + tolerance,
        ClipReason.UP_CAPABILITY.value,
        np.where(
            award < -envelope.down_kw - tolerance,
            ClipReason.DOWN_CAPABILITY.value,
            np.where(shortfall > 0, ClipReason.STORAGE_EMPTY.value, ClipReason.STORAGE_FULL.value),
        ),
    )
    return tuple(str(r) if s != 0 else "" for r, s in zip(reason, shortfall, strict=True))


def sample_inside(envelope: Envelope, count: int, *, seed: int = 0) -> FloatArray:
    """``(count, T)`` aggregate dispatches inside the envelope, for checking its guarantee.

    The first rows are corners (idle, all up until empty, all down until full, up then down, down then up);
    the rest are random walks: each sample keeps a direction for a random stretch and takes either the
    extreme of what the virtual storage still allows or a uniform draw below it, plus random curtailment.
    """
    rng = np.random.default_rng(seed)
    e, t = envelope, envelope.steps
    half = np.arange(t) < t // 2
    corners = np.array([np.zeros(t), np.ones(t), -np.ones(t), np.where(half, 1.0, -1.0), np.where(half, -1.0, 1.0)])
    walks = rng.choice([-1.0, 1.0], size=(max(count - len(corners), 0), 1)) * np.ones((1, t))
    flips = rng.random(walks.shape) < 0.08
    walks *= np.cumprod(np.where(flips, -1.0, 1.0), axis=1)
    direction = np.vstack([corners, walks])[:count]
    n = direction.shape[0]
    extreme = np.ones(n, dtype=bool)
    extreme[len(corners) :] = rng.random(n - len(corners)) < 0.5
    scale = np.where(extreme[:, None], 1.0, rng.random((n, t)))
    level = np.where(extreme[:, None], rng.integers(0, 2, size=(n, t)), rng.random((n, t)))
    level[: len(corners)] = direction[: len(corners)] < 0  # corners curtail fully while going down
    curtail = level * e.curtail_kw[None, :]
    low = np.zeros(n)  # virtual stored energy change under pessimistic and optimistic losses
    high = np.zeros(n)
    out = np.zeros((n, t))
    for k in range(t):  # the storage state is sequential; vectorised over samples
        can_discharge = np.minimum(e.discharge_kw[k], (e.energy_below_kwh + low) * e.eta_discharge[0] / e.dt_h)
        can_charge = np.minimum(e.charge_kw[k], (e.energy_above_kwh - high) / (e.eta_charge[1] * e.dt_h))
        storage = np.where(direction[:, k] > 0, can_discharge, -can_charge) * scale[:, k]
        storage = np.clip(storage, -np.maximum(can_charge, 0.0), np.maximum(can_discharge, 0.0))
        discharge, charge = np.maximum(storage, 0.0), np.maximum(-storage, 0.0)
        low += (e.eta_charge[0] * charge - discharge / e.eta_discharge[0]) * e.dt_h
        high += (e.eta_charge[1] * charge - discharge / e.eta_discharge[1]) * e.dt_h
        out[:, k] = storage - curtail[:, k]
    return out
