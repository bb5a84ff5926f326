"""Smart against uncontrolled EV charging on a scenario's twin, checked by the full power flow.

The study runs the twin's power flow three times over the whole period: without EVs (which gives each
transformer's headroom), with uncontrolled charging (full power from arrival, :mod:`gridmesh.devices.ev`)
and with the smart schedule of :mod:`gridmesh.optim.ev_schedule`, planned once over the period with the
sessions known in advance (a day-ahead plan with perfect information). The linear headroom is conservative
but ignores the extra losses; where the full power flow still finds a transformer above 100 % with EVs
charging behind it, the headroom of that step is cut by the excess and the schedule is made again
(``max_rounds`` times at most). Batteries stay idle in all three runs so that only the charging differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from gridmesh.devices.ev import uncontrolled_power
from gridmesh.model.elements import EvCharger
from gridmesh.model.kinds import LoadClass
from gridmesh.model.scenario import Scenario
from gridmesh.model.validation import assert_valid
from gridmesh.optim.ev_headroom import ChargerGroups, charger_groups, headroom_from_loading
from gridmesh.optim.ev_schedule import ChargingPlan, ChargingProblem, deliverable_kwh, schedule
from gridmesh.optim.lp import FloatArray
from gridmesh.sim.twin import StudyTwin

Progress = Callable[[str, int, int], None]  # (phase, steps done, steps in the phase)
OVERLOAD = 1.0  # loading above which a transformer counts as overloaded


class Variant(StrEnum):
    NO_EV = "no_ev"
    UNCONTROLLED = "uncontrolled"
    SMART = "smart"


@dataclass(frozen=True)
class Flows:
    """What one power-flow run over the period gives the study, ``(T, …)`` arrays."""

    ev_kw: FloatArray  # (T, C)
    trafo_loading: FloatArray  # (T, transformers)
    group_loading: FloatArray  # (T, G)
    import_kw: FloatArray  # (T,) at the external grids
    failed: int


@dataclass(frozen=True)
class ChargingStudy:
    """The three runs of a study, the smart plan and the key figures (``kpis``, JSON-ready)."""

    times: pd.DatetimeIndex
    transformers: tuple[str, ...]
    groups: ChargerGroups
    flows: dict[Variant, Flows]
    plan: ChargingPlan
    headroom_kw: FloatArray  # (T, G) the last schedule's headroom
    kpis: dict[str, Any]


def with_home_chargers(scenario: Scenario, *, share: float, seed: int = 7, p_kw: float = 11.0) -> Scenario:
    """The scenario with a home charger (``p_kw``, one connector) at ``share`` of its residential load buses.

    The buses are drawn without replacement by a seeded generator, so the same share and seed give the same grid.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share of residential buses must lie in [0, 1], got {share}")
    net = scenario.network
    buses = sorted({x.bus for x in net.loads.values() if x.in_service and x.load_class is LoadClass.RESIDENTIAL})
    count = round(share * len(buses))
    if not count:
        return scenario
    chosen = np.random.default_rng(seed).choice(len(buses), size=count, replace=False)
    chargers = [
        EvCharger(id=f"home-ev-{k + 1}", bus=buses[i], p_kw=p_kw, usage="home") for k, i in enumerate(sorted(chosen))
    ]
    return dataclasses.replace(scenario, network=net.with_elements(chargers))


def run_charging_study(
    scenario: Scenario,
    *,
    limit: float = 0.97,
    seed: int = 7,
    max_rounds: int = 3,
    window_steps: int = 96 * 7,
    progress: Progress | None = None,
) -> ChargingStudy:
    """Run the scenario's period without EVs, with uncontrolled and with smart charging; see the module doc."""
    assert_valid(scenario)
    twin = StudyTwin(scenario, seed=seed)
    chargers = twin.ev_chargers
    groups = charger_groups(scenario.network, chargers)
    n_chargers, steps, dt_h = len(chargers), twin.steps, twin.dt_h
    sessions = twin.sessions
    price = twin.tariff.import_price(twin.times)

    def run(variant: Variant, ev_kw: FloatArray) -> Flows:
        return _flows(twin, groups, ev_kw, window_steps, lambda done: progress and progress(variant, done, steps))

    flows = {Variant.NO_EV: run(Variant.NO_EV, np.zeros((steps, n_chargers)))}
    flows[Variant.UNCONTROLLED] = run(
        Variant.UNCONTROLLED, uncontrolled_power(sessions, chargers, first=0, steps=steps, dt_h=dt_h)
    )
    base = flows[Variant.NO_EV]
    room = first_room = headroom_from_loading(groups, base.group_loading, limit=limit)
    p_max = np.array([c.p_kw for c in chargers], dtype=np.float64)[sessions.charger]
    rounds = 0
    while True:
        rounds += 1
        problem = ChargingProblem(
            sessions=sessions,
            p_max_kw=p_max,
            groups=groups.members,
            headroom_kw=room,
            price_eur_per_kwh=price,
            dt_h=dt_h,
            group_names=groups.names,
            peak_eur_per_kw=twin.tariff.demand_charge_eur_per_kw,
        )
        plan = schedule(problem)
        smart = run(Variant.SMART, plan.charger_kw(n_chargers))
        group_ev = smart.ev_kw @ groups.members.T.astype(np.float64)  # (T, G)
        over = (smart.group_loading > OVERLOAD) & (group_ev > 1e-6)
        if not over.any() or rounds >= max_rounds:
            break
        excess = (smart.group_loading - limit) * groups.rating_kva
        room = np.where(over, room - excess, room)
    flows[Variant.SMART] = smart
    alone = deliverable_kwh(problem)
    kpis = _kpis(scenario, twin, groups, flows, plan, limit=limit, rounds=rounds, cut=first_room - room, alone=alone)
    return ChargingStudy(twin.times, twin.engine.index.transformers, groups, flows, plan, room, kpis)


def _flows(
    twin: StudyTwin, groups: ChargerGroups, ev_kw: FloatArray, window_steps: int, progress: Callable[[int], object]
) -> Flows:
    trafo, group, grid = [], [], []
    failed = 0
    batteries = len(twin.fleet)
    for offset in range(0, twin.steps, window_steps):
        n = min(window_steps, twin.steps - offset)
        window, base = twin.window(offset, n)
        window = dataclasses.replace(window, ev_p_kw=ev_kw[offset : offset + n])
        result = twin.solve(window, base, np.zeros((n, batteries))).result
        trafo.append(result.trafo_loading)
        group.append(groups.loading(result.trafo_loading, result.line_loading))
        grid.append(result.grid_p_kw.sum(axis=1))
        failed += len(result.failed)
        progress(offset + n)
    return Flows(ev_kw, np.vstack(trafo), np.vstack(group), np.concatenate(grid), failed)


def _kpis(
    scenario: Scenario,
    twin: StudyTwin,
    groups: ChargerGroups,
    flows: dict[Variant, Flows],
    plan: ChargingPlan,
    *,
    limit: float,
    rounds: int,
    cut: FloatArray,
    alone: FloatArray,
) -> dict[str, Any]:
    dt_h, times, tariff = twin.dt_h, twin.times, twin.tariff
    price = tariff.import_price(times)
    requested = float(twin.sessions.energy_kwh.sum())
    possible = float(alone.sum())
    trafo_ids = twin.engine.index.transformers
    base_over = flows[Variant.NO_EV].trafo_loading > OVERLOAD
    variants: dict[str, Any] = {}
    for variant, f in flows.items():
        over = f.trafo_loading > OVERLOAD
        caused = over & ~base_over
        delivered = float(f.ev_kw.sum() * dt_h)
        peak = np.nanmax(f.trafo_loading, axis=0, initial=0.0)
        variants[variant] = {
            "peak_transformer_loading": float(peak.max(initial=0.0)),
            "peak_loading_by_group": dict(
                zip(groups.names, np.nanmax(f.group_loading, axis=0, initial=0.0).tolist(), strict=True)
            ),
            "transformers_overloaded": int(over.any(axis=0).sum()),
            "overloaded_steps": int(over.any(axis=1).sum()),
            "overloaded_hours": float(over.any(axis=1).sum() * dt_h),
            "transformer_overload_hours": float(over.sum() * dt_h),
            "ev_caused_overload_steps": int(caused.any(axis=1).sum()),
            "ev_energy_kwh": delivered,
            "delivered_pct": 100.0 * delivered / requested if requested else 100.0,
            "delivered_of_possible_pct": 100.0 * delivered / possible if possible else 100.0,
            "ev_peak_kw": float(f.ev_kw.sum(axis=1).max(initial=0.0)),
            "substation_peak_kw": float(np.nanmax(f.import_kw, initial=-np.inf)),
            "grid_energy_cost_eur": tariff.energy_cost(times, f.import_kw, dt_h),
            "ev_energy_cost_eur": float((f.ev_kw.sum(axis=1) * price).sum() * dt_h),
            "failed_steps": f.failed,
        }
    smart_group_ev = flows[Variant.SMART].ev_kw @ groups.members.T.astype(np.float64)
    base_kva = flows[Variant.NO_EV].group_loading * groups.rating_kva
    linear = np.nanmax((base_kva + smart_group_ev) / groups.rating_kva, initial=0.0)
    served = np.divide(plan.delivered_kwh, alone, out=np.ones_like(alone), where=alone > 0)
    return {
        "scenario": scenario.name,
        "start": scenario.time.start.isoformat(),
        "days": scenario.time.days,
        "steps": twin.steps,
        "dt_h": dt_h,
        "chargers": len(twin.ev_chargers),
        "sessions": len(twin.sessions),
        "requested_kwh": requested,
        "possible_kwh": possible,  # what each car could take in its plug-in time at full power, summed
        "limit": limit,
        "constraint_groups": len(groups),
        "transformers": len(trafo_ids),
        "variants": variants,
        "smart": {
            "rounds": rounds,
            "lp_status": str(plan.status),
            "lp_seconds": plan.seconds,
            "lp_variables": int(plan.extra.get("variables", 0)),
            "max_shortfall_fraction": plan.max_shortfall_fraction,
            "min_session_delivered_fraction": float(served.min(initial=1.0)),
            "sessions_fully_served": int((served >= 1 - 1e-6).sum()),
            "linear_peak_loading": float(linear),
            "powerflow_peak_group_loading": float(np.nanmax(flows[Variant.SMART].group_loading, initial=0.0)),
            "headroom_cut_kwh": float(cut.sum() * dt_h),
        },
    }
