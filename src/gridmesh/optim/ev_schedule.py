"""Smart charging: share the grid's headroom between plugged-in EVs with linear programmes (HiGHS).

Variables are the power of every session at every step it is plugged in (kW, ``0 … p_max``), one shortfall
per session (kWh not delivered) and one worst shortfall fraction ``z``. Rows:

* energy: ``Σ_t p·dt + shortfall = requested`` per session;
* fairness: ``shortfall − unavoidable ≤ z · basis`` per session, where ``unavoidable`` is what the session
  could not get even alone (request minus ``p_max`` × its plugged steps in the horizon) and ``basis`` is what
  it could get alone (a re-plan keeps the first plan's basis, judging vehicles by what they could have had,
  not by what is left). A car that leaves too early for its request thus does not set ``z`` for everyone;
* headroom: for every constraint group (a transformer, a feeder or a site's PCC) and step, the sum of the
  powers of the sessions on the group's chargers ``≤ headroom`` (kW; negative headroom means no charging).

The objective is weighted so that its terms act nearly lexicographically, each weight far below the one
before: (1) shortfall, 10³ × the highest price per kWh; (2) the worst shortfall fraction, 10² × the highest
price × the mean basis per unit of fraction (so energy is given up for fairness only below 0.1 × the mean
basis per unit: 10 points off the worst fraction may cost at most 1 % of a mean basis); (3) the energy
cost at the tariff, plus optionally each group's peak use of its headroom at a demand charge; (4) 10⁻³ × the
highest price per kW of change of a group's EV power between consecutive steps, which keeps what a
transformer sees steady where prices are flat.

Every row and bound is built as numpy blocks; no Python loop runs per session or step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from gridmesh.devices.ev import Sessions
from gridmesh.optim.lp import INF, FloatArray, IntArray, LpStatus, SparseLp

BoolArray = npt.NDArray[np.bool_]

__all__ = ["ChargingPlan", "ChargingProblem", "deliverable_kwh", "replan", "schedule"]


@dataclass(frozen=True)
class ChargingProblem:
    """What the scheduler allocates: sessions, their limits, the grid's headroom and the prices.

    Attributes:
        sessions: plug-in sessions; ``arrival``/``departure`` are absolute steps of the time grid.
        p_max_kw: ``(S,)`` most power each session may draw (the connector's or the car's limit).
        groups: ``(G, C)`` which chargers sit behind each constraint group (True: behind it).
        headroom_kw: ``(T, G)`` power the EVs behind each group may draw at each step in total.
        price_eur_per_kwh: ``(T,)`` energy price at each step.
        dt_h: step length in hours.
        first_step: absolute step of row 0 of ``headroom_kw`` (sessions outside the horizon are clipped).
        basis_kwh: ``(S,)`` energy the fairness fraction is measured against; if None, what each session could
            get alone (:func:`deliverable_kwh`).
        ids: session names for error messages (``session 3`` if None).
        group_names: group names for error messages.
        peak_eur_per_kw: cost of each group's peak use of its headroom (0: none), e.g. the demand charge.
    """

    sessions: Sessions
    p_max_kw: FloatArray
    groups: BoolArray
    headroom_kw: FloatArray
    price_eur_per_kwh: FloatArray
    dt_h: float
    first_step: int = 0
    basis_kwh: FloatArray | None = None
    ids: tuple[str, ...] | None = None
    group_names: tuple[str, ...] | None = None
    peak_eur_per_kw: float = 0.0

    @property
    def steps(self) -> int:
        return int(self.headroom_kw.shape[0])

    @property
    def n_chargers(self) -> int:
        return int(self.groups.shape[1])

    def name(self, s: int) -> str:
        return f"session {self.ids[s]!r}" if self.ids is not None else f"session {s}"


@dataclass(frozen=True)
class ChargingPlan:
    """Power per session and step (kW) over the problem's horizon, and what it achieves.

    ``session_kw`` is ``(S, T)``; a session's columns outside its plug-in time are zero. When the solve
    fails (``status`` not optimal) every power is zero, the safe setpoint for any headroom.
    ``max_shortfall_fraction`` is the worst avoidable shortfall over the fairness basis (what the LP equalises).
    """

    status: LpStatus
    message: str
    charger: IntArray
    session_kw: FloatArray
    delivered_kwh: FloatArray
    shortfall_kwh: FloatArray
    max_shortfall_fraction: float
    cost_eur: float
    seconds: float
    first_step: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def charger_kw(self, n_chargers: int) -> FloatArray:
        """``(T, n_chargers)``: the sessions' powers added up per charger (what a charger is told)."""
        out = np.zeros((n_chargers, self.session_kw.shape[1]))
        np.add.at(out, self.charger, self.session_kw)
        return out.T.copy()


def validate(problem: ChargingProblem) -> None:
    """Raise ValueError naming every bad session, group or array (all problems at once)."""
    s = problem.sessions
    n = len(s)
    problems: list[str] = []
    arrays = {
        "arrival": s.arrival,
        "departure": s.departure,
        "energy_kwh": s.energy_kwh,
        "charger": s.charger,
        "p_max_kw": problem.p_max_kw,
    }
    for name, value in arrays.items():
        if np.shape(value) != (n,):
            problems.append(f"{name} must have shape ({n},) (one per session), got {np.shape(value)}")
    if problem.basis_kwh is not None and np.shape(problem.basis_kwh) != (n,):
        problems.append(f"basis_kwh must have shape ({n},), got {np.shape(problem.basis_kwh)}")
    if problem.ids is not None and len(problem.ids) != n:
        problems.append(f"ids must name {n} sessions, got {len(problem.ids)}")
    g, c = problem.groups.shape if problem.groups.ndim == 2 else (-1, -1)
    if g < 0:
        problems.append(f"groups must be (groups, chargers), got shape {problem.groups.shape}")
    if problem.headroom_kw.ndim != 2 or problem.headroom_kw.shape[1] != g:
        problems.append(f"headroom_kw must have shape (steps, {g}), got {problem.headroom_kw.shape}")
    if np.shape(problem.price_eur_per_kwh) != (problem.headroom_kw.shape[0],):
        problems.append(f"price_eur_per_kwh must have one value per step ({problem.headroom_kw.shape[0]})")
    if not (np.isfinite(problem.dt_h) and problem.dt_h > 0):
        problems.append(f"dt_h must be positive, got {problem.dt_h}")
    if not (np.isfinite(problem.peak_eur_per_kw) and problem.peak_eur_per_kw >= 0):
        problems.append(f"peak_eur_per_kw must be finite and ≥ 0, got {problem.peak_eur_per_kw}")
    if problems:
        raise ValueError("; ".join(problems))
    checks: list[tuple[str, BoolArray, FloatArray | IntArray]] = [
        ("departure", s.departure <= s.arrival, s.departure),
        ("energy_kwh", ~np.isfinite(s.energy_kwh) | (s.energy_kwh < 0), s.energy_kwh),
        ("p_max_kw", ~np.isfinite(problem.p_max_kw) | (problem.p_max_kw < 0), problem.p_max_kw),
        ("charger", (s.charger < 0) | (s.charger >= c), s.charger),
    ]
    if problem.basis_kwh is not None:
        basis = problem.basis_kwh
        checks.append(("basis_kwh", ~np.isfinite(basis) | (basis < 0), basis))
    rules = {
        "departure": "must be after arrival ({})",
        "energy_kwh": "must be finite and ≥ 0",
        "p_max_kw": "must be finite and ≥ 0",
        "charger": f"must index one of the {c} chargers",
        "basis_kwh": "must be finite and ≥ 0",
    }
    for name, bad, value in checks:
        for k in np.flatnonzero(bad)[:10]:
            rule = rules[name].format(s.arrival[k])
            problems.append(f"{problem.name(int(k))}: {name} {rule}, got {value[k]}")
    bad_headroom = np.argwhere(np.isnan(problem.headroom_kw))
    for t, k in bad_headroom[:5]:
        group = problem.group_names[k] if problem.group_names else str(k)
        problems.append(f"headroom_kw at step {problem.first_step + t}, group {group!r} is NaN")
    for t in np.flatnonzero(~np.isfinite(problem.price_eur_per_kwh))[:5]:
        problems.append(f"price_eur_per_kwh at step {problem.first_step + t} must be finite")
    if problems:
        raise ValueError("; ".join(problems))


def schedule(problem: ChargingProblem, *, time_limit_s: float = 20.0) -> ChargingPlan:
    """Allocate the headroom between the sessions (see the module docstring for the objective).

    Chargers that share no group cannot take power from each other, so the problem splits into independent
    parts (in a radial grid: one per transformer area) solved one after the other: small LPs are much
    faster for HiGHS than one large one, and the worst shortfall fraction of each part is then as low as
    possible on its own, which is at least as fair as one global min-max.
    """
    validate(problem)
    s, t_len, dt = problem.sessions, problem.steps, problem.dt_h
    n = len(s)
    energy = s.energy_kwh.astype(np.float64)
    alone = deliverable_kwh(problem)
    basis = alone if problem.basis_kwh is None else problem.basis_kwh.astype(np.float64)
    price = problem.price_eur_per_kwh.astype(np.float64)
    scale = max(float(np.abs(price).max(initial=0.0)), 0.01)
    weights = _Weights(
        shortfall=1e3 * scale,
        fairness=1e2 * scale * (float(basis[basis > 0].mean()) if (basis > 0).any() else 1.0),
        smooth=1e-3 * scale,
        peak=problem.peak_eur_per_kw,
    )
    session_kw = np.zeros((n, t_len))
    worst, messages, seconds, size = LpStatus.OPTIMAL, set(), 0.0, 0
    for part in _parts(problem):
        solved = _solve_part(problem, part, energy - alone, basis, weights, time_limit_s)
        seconds += solved.seconds
        size += solved.variables
        messages.add(solved.message)
        if solved.status is LpStatus.OPTIMAL:
            session_kw[part] = solved.session_kw
        else:
            worst = solved.status
    delivered = session_kw.sum(axis=1) * dt
    shortfall = np.clip(energy - delivered, 0.0, None)
    avoidable = np.clip(shortfall - (energy - alone), 0.0, None)
    fraction = np.divide(avoidable, basis, out=np.zeros(n), where=basis > 0)
    return ChargingPlan(
        status=worst,
        message="; ".join(sorted(messages)) or "nothing to schedule",
        charger=s.charger.astype(np.int64),
        session_kw=session_kw,
        delivered_kwh=delivered,
        shortfall_kwh=shortfall,
        max_shortfall_fraction=float(fraction.max(initial=0.0)),
        cost_eur=float((session_kw.sum(axis=0) * price).sum() * dt),
        seconds=seconds,
        first_step=problem.first_step,
        extra={"variables": float(size)},
    )


def replan(
    problem: ChargingProblem, *, now: int, delivered_kwh: FloatArray, time_limit_s: float = 20.0
) -> ChargingPlan:
    """Plan again from absolute step ``now`` with what each session has received so far (kWh).

    The live use: a car arrives (append its session to ``problem.sessions``) or a meter reading differs from
    the plan; sessions already gone are left at zero, the others get their remaining energy over the steps
    from ``now`` on. Fairness stays measured against what each session could get in the first plan
    (``basis_kwh``), not against what is left. The plan covers steps ``now … first_step+T−1``.
    """
    s = problem.sessions
    delivered = np.asarray(delivered_kwh, dtype=np.float64)
    if delivered.shape != (len(s),):
        raise ValueError(f"delivered_kwh must have shape ({len(s)},) (one per session), got {delivered.shape}")
    bad = np.flatnonzero(~np.isfinite(delivered) | (delivered < 0))
    if bad.size:
        raise ValueError(f"{problem.name(int(bad[0]))}: delivered_kwh must be finite and ≥ 0, got {delivered[bad[0]]}")
    offset = now - problem.first_step
    if not 0 <= offset < problem.steps:
        raise ValueError(
            f"now ({now}) must lie in the horizon {problem.first_step} … {problem.first_step + problem.steps - 1}"
        )
    validate(problem)
    live = s.departure > now
    arrival = np.maximum(s.arrival, now)
    departure = np.where(live, s.departure, arrival + 1)  # gone: a one-step stub with nothing to deliver
    remaining = np.where(live, np.clip(s.energy_kwh - delivered, 0.0, None), 0.0)
    basis = deliverable_kwh(problem) if problem.basis_kwh is None else problem.basis_kwh
    rest = ChargingProblem(
        sessions=Sessions(s.charger, arrival, departure, remaining),
        p_max_kw=problem.p_max_kw,
        groups=problem.groups,
        headroom_kw=problem.headroom_kw[offset:],
        price_eur_per_kwh=problem.price_eur_per_kwh[offset:],
        dt_h=problem.dt_h,
        first_step=now,
        basis_kwh=np.where(live, basis, 0.0),
        ids=problem.ids,
        group_names=problem.group_names,
        peak_eur_per_kw=problem.peak_eur_per_kw,
    )
    return schedule(rest, time_limit_s=time_limit_s)


def deliverable_kwh(problem: ChargingProblem) -> FloatArray:
    """``(S,)`` what each session could get alone in the horizon: its request, or less if it leaves too early."""
    s = problem.sessions
    first, t_len = problem.first_step, problem.steps
    steps = np.clip(s.departure - first, 0, t_len) - np.clip(s.arrival - first, 0, t_len)
    alone: FloatArray = np.minimum(s.energy_kwh, problem.p_max_kw * np.maximum(steps, 0) * problem.dt_h)
    return alone


def plugged_steps(arrival: IntArray, departure: IntArray, steps: int) -> tuple[IntArray, IntArray]:
    """(session, step) of every step in ``0 … steps−1`` that each session is plugged in, session-major."""
    lo = np.clip(arrival, 0, steps).astype(np.int64)
    hi = np.clip(departure, 0, steps).astype(np.int64)
    counts = np.maximum(hi - lo, 0)
    session = np.repeat(np.arange(lo.size, dtype=np.int64), counts)
    within = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return session, np.repeat(lo, counts) + within


@dataclass(frozen=True)
class _Weights:
    shortfall: float  # € per kWh not delivered
    fairness: float  # € per unit of the worst shortfall fraction
    smooth: float  # € per kW of change between consecutive steps of a group's EV power
    peak: float  # € per kW of each group's peak use of its headroom


@dataclass(frozen=True)
class _Part:
    status: LpStatus
    message: str
    session_kw: FloatArray
    seconds: float
    variables: int


def _parts(problem: ChargingProblem) -> list[IntArray]:
    """Session indices of each independent part: chargers linked through shared groups."""
    c = problem.groups.shape[1]
    groups_of = sparse.coo_array(np.asarray(problem.groups, dtype=np.float64))
    graph = sparse.block_array([[None, groups_of.T], [groups_of, None]], format="csr")  # chargers, then groups
    label = connected_components(graph, directed=False)[1][:c]
    label[~np.asarray(problem.groups, dtype=bool).any(axis=0)] = -1  # unconstrained chargers: one LP for all
    session_label = label[problem.sessions.charger]
    order = np.argsort(session_label, kind="stable")
    cuts = np.flatnonzero(np.diff(session_label[order])) + 1
    return [part for part in np.split(order, cuts) if part.size]


def _solve_part(
    problem: ChargingProblem,
    part: IntArray,
    unavoidable: FloatArray,
    basis: FloatArray,
    w: _Weights,
    time_limit_s: float,
) -> _Part:
    s, t_len, dt = problem.sessions, problem.steps, problem.dt_h
    chargers = np.unique(s.charger[part])
    touched = np.flatnonzero(np.asarray(problem.groups, dtype=bool)[:, chargers].any(axis=1))
    energy, own_basis = s.energy_kwh[part].astype(np.float64), basis[part]
    p_max = problem.p_max_kw[part]
    local, step = plugged_steps(s.arrival[part] - problem.first_step, s.departure[part] - problem.first_step, t_len)
    n = part.size

    lp = SparseLp()
    p = lp.variables(local.size, upper=p_max[local], cost=problem.price_eur_per_kwh[step] * dt)
    short = lp.variables(n, upper=energy, cost=w.shortfall)
    z = lp.variables(1, upper=1.0, cost=w.fairness)
    rows = lp.rows(n, lower=energy, upper=energy)
    lp.terms(rows[local], p, dt)
    lp.terms(rows, short)
    judged = np.flatnonzero(own_basis > 0)
    fair = lp.rows(judged.size, upper=unavoidable[part][judged])
    lp.terms(fair, short[judged])
    lp.terms(fair, z[0], -own_basis[judged])
    room = problem.headroom_kw[:, touched]
    entry, group = _group_terms(np.asarray(problem.groups, dtype=bool)[touched], s.charger[part][local])
    _headroom_rows(lp, room, p[entry], step[entry], group, w)

    solution = lp.solve(time_limit_s=time_limit_s)
    if solution.status is LpStatus.FAILED and (w.peak > 0 or w.smooth > 0):
        # Past the time limit (a large part coupled by a feeder group, with the peak term): the bare LP keeps
        # priorities 1–3 without the flattening terms and solves an order of magnitude faster.
        bare = _solve_part(problem, part, unavoidable, basis, replace(w, peak=0.0, smooth=0.0), time_limit_s)
        message = f"{solution.message} with peak and smoothing terms, then {bare.message} without"
        return replace(bare, message=message, seconds=solution.seconds + bare.seconds)
    session_kw = np.zeros((n, t_len))
    if solution.status is LpStatus.OPTIMAL:
        session_kw[local, step] = np.clip(solution.x[p], 0.0, p_max[local])
    return _Part(solution.status, solution.message, session_kw, solution.seconds, lp.num_vars)


def _group_terms(members: BoolArray, charger: IntArray) -> tuple[IntArray, IntArray]:
    """(position in ``charger``, group) for every group each entry's charger sits behind."""
    by_charger = members.T  # (C, G)
    per_charger = by_charger.sum(axis=1)
    counts = per_charger[charger]
    _, group_of = np.nonzero(by_charger)  # row-major: groups of charger 0, then of charger 1, …
    first = np.cumsum(per_charger) - per_charger
    k = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.arange(charger.size), counts), group_of[np.repeat(first[charger], counts) + k]


def _headroom_rows(lp: SparseLp, room: FloatArray, p: IntArray, step: IntArray, group: IntArray, w: _Weights) -> None:
    """The EV power ``e`` of each group and step, ``e = Σ p`` over the sessions on the group's chargers,
    bounded by ``max(headroom, 0)``; the peak and smoothing terms act on ``e``.

    Naming the sum once keeps the dense rows (one entry per plugged session) to one per group and step: the
    peak and ramp rows then have two or three entries each, which HiGHS solves an order of magnitude faster
    than repeating the sum in every row.
    """
    e = lp.variables(room.shape, upper=np.clip(room, 0.0, None))
    sums = lp.rows(room.shape, lower=0.0, upper=0.0)  # Σ p − e = 0
    lp.terms(sums[step, group], p)
    lp.terms(sums, e, -1.0)
    if w.peak > 0:
        # e − peak ≤ headroom: the highest use of each group's headroom costs ``peak`` € per kW, which
        # flattens the loading (and the rebound peak when prices drop).
        peak = lp.variables(room.shape[1], lower=-INF, cost=w.peak)
        tops = lp.rows(room.shape, upper=room)
        lp.terms(tops, e)
        lp.terms(tops, peak[None, :], -1.0)
    _smoothing(lp, e, w.smooth)


def _smoothing(lp: SparseLp, e: IntArray, weight: float) -> None:
    """``r ≥ |e[t] − e[t−1]|`` per group, ``r`` costing ``weight`` € per kW: the power a transformer sees
    changes no more than needed. (The same on each session's own power made the solves 30× slower.)"""
    if e.shape[0] < 2:
        return
    ramp = lp.variables((e.shape[0] - 1, e.shape[1]), cost=weight)
    up = lp.rows(ramp.shape, lower=0.0)  # r − e[t] + e[t−1] ≥ 0
    down = lp.rows(ramp.shape, lower=0.0)  # r + e[t] − e[t−1] ≥ 0
    for rows, sign in ((up, 1.0), (down, -1.0)):
        lp.terms(rows, ramp)
        lp.terms(rows, e[1:], -sign)
        lp.terms(rows, e[:-1], sign)
