"""The study runner: window-batched co-simulation of devices, controllers and the power flow.

Per window (whole days, sized by :func:`auto_window`): profiles give loads and available generation, EV
sessions give charging, the controller requests battery power for the whole window, the battery model
integrates SOC step by step (clamping to limits), then one batch power flow covers the window. Results stream
to Parquet and KPIs accumulate, so a year never sits in memory at once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmesh.control.controller import Controller, NoControl
from gridmesh.control.cycle import ControlCycle, SafetyLayer
from gridmesh.control.volt_var import InverterCurves
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.scenario import Scenario
from gridmesh.model.validation import assert_valid
from gridmesh.physics.powerflow import PowerFlowResult
from gridmesh.sim.kpis import KpiAccumulator
from gridmesh.sim.results import ResultFiles
from gridmesh.sim.site_flows import SiteFlows
from gridmesh.sim.twin import StudyTwin

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StudyResult:
    out: Path
    kpis: dict[str, Any]
    steps: int
    seconds: float


def run_study(
    scenario: Scenario,
    *,
    out: Path,
    controller: Controller | Sequence[Controller] | None = None,
    tariff: TimeOfUseTariff | None = None,
    volt_var: InverterCurves | None = None,
    window_steps: int | None = None,
    detail: bool = False,
    seed: int = 7,
    method: str = "iterative_current",
    progress: Progress | None = None,
) -> StudyResult:
    """Simulate the scenario's time range and write ``timeseries.parquet``, ``sites.parquet``,
    ``batteries.parquet``, ``buses.parquet``, ``branches.parquet`` and ``kpis.json`` into ``out``."""
    assert_valid(scenario)
    started = time.perf_counter()
    if controller is None:
        controllers: list[Controller] = [NoControl()]
    elif isinstance(controller, Sequence):
        controllers = list(controller)
    else:
        controllers = [controller]
    twin = StudyTwin(scenario, tariff=tariff, volt_var=volt_var, seed=seed, method=method)
    net, fleet, dt_h, steps, sites = scenario.network, twin.fleet, twin.dt_h, twin.steps, twin.sites
    tariff, index = twin.tariff, twin.engine.index
    window_steps = window_steps or auto_window(len(net.buses), steps_per_day=round(24 / dt_h))
    loads, evs = list(net.loads.values()), twin.ev_chargers
    gen_kind = np.array([x.kind.value for x in net.generators.values()])
    kinds = sorted(set(gen_kind.tolist()))
    cycle = ControlCycle(controllers, SafetyLayer(pcc_limit_kw=twin.pcc_limits_kw))
    refusals: dict[str, int] = {}
    cycle_seconds = energy_cost = curtailed_kwh = deferred_kwh = 0.0
    volt_var_iterations = volt_var_unconverged = 0
    e_start = fleet.soc * fleet.e_kwh
    discharged_kwh = np.zeros(len(fleet))
    charged_kwh = np.zeros(len(fleet))
    flows = SiteFlows(net, sites, index)
    bus_pos = {b: i for i, b in enumerate(index.buses)}
    load_bus = np.array([bus_pos[x.bus] for x in loads], dtype=np.int64)
    ev_bus = np.array([bus_pos[x.bus] for x in evs], dtype=np.int64)
    v_lo = np.array([net.buses[b].v_min_pu for b in index.buses])
    v_hi = np.array([net.buses[b].v_max_pu for b in index.buses])
    branch_ids = index.lines + index.transformers
    acc = KpiAccumulator(dt_h=dt_h, n_buses=len(index.buses), n_branches=len(branch_ids))

    with ResultFiles(out, detail=detail) as files:
        for offset in range(0, steps, window_steps):
            n = min(window_steps, steps - offset)
            window, base = twin.window(offset, n)
            times, lp, gp, ev = window.times, window.load_p_kw, window.gen_p_kw, window.ev_p_kw
            decided = cycle.run(window, fleet, twin.flexible)
            battery_p, soc = decided.battery_kw, decided.soc
            cycle_seconds += sum(decided.seconds.values())
            for reason, count in decided.refusals["reason"].value_counts().items():
                refusals[str(reason)] = refusals.get(str(reason), 0) + int(count)
            files.write("refusals", decided.refusals)
            discharged_kwh += np.clip(battery_p, 0, None).sum(axis=0) * dt_h
            charged_kwh += np.clip(-battery_p, 0, None).sum(axis=0) * dt_h
            solved = twin.solve(window, base, battery_p, curtail_kw=decided.curtail_kw, flex_kw=decided.flex_kw)
            result = solved.result
            lp = solved.injections.load_p_kw  # after deferral and catch-up
            deferred_kwh += float(np.clip(decided.flex_kw, 0, None).sum() * dt_h)
            volt_var_iterations = max(volt_var_iterations, solved.iterations)
            volt_var_unconverged += not solved.converged
            available, gp = gp, solved.injections.gen_p_kw
            curtailed_kwh += float((available - gp).sum() * dt_h)
            # A failed step says nothing about supply: count its load as served, its buses as unknown.
            supplied = result.energized | np.isin(np.arange(n), list(result.failed))[:, None]
            served = supplied[:, load_bus] * lp
            served_ev = supplied[:, ev_bus] * ev
            generation = {k: gp[:, gen_kind == k].sum(axis=1) for k in kinds}
            grid = result.grid_p_kw.sum(axis=1)
            energy_cost += tariff.energy_cost(times, grid, dt_h)
            acc.add_system(
                consumption_kw=lp.sum(axis=1) + ev.sum(axis=1),
                served_kw=served.sum(axis=1) + served_ev.sum(axis=1),
                losses_kw=result.losses_kw,
                import_kw=np.where(np.isnan(result.grid_p_kw).any(axis=1), np.nan, grid),
                generation_kw=generation,
                battery_kw=battery_p,
                failed=len(result.failed),
                deenergized=int((~supplied).sum()),
            )
            acc.add_buses(result.v_pu, v_lo, v_hi)
            acc.add_branches(np.hstack([result.line_loading, result.trafo_loading]))
            site_frame = flows.frame(times, lp, gp, ev, battery_p, soc, fleet, result)
            for site, rows in site_frame.groupby("site", sort=False):
                acc.add_site(
                    str(site),
                    consumption_kw=rows["consumption_kw"].to_numpy(),
                    generation_kw=rows["generation_kw"].to_numpy(),
                    import_kw=rows["import_kw"].to_numpy(),
                )
            files.write("timeseries", _system_frame(times, lp, ev, gp, generation, battery_p, result))
            files.write("sites", site_frame)
            files.write("batteries", _device_frame(times, "battery", fleet.ids, p_kw=battery_p, soc=soc))
            if len(twin.flexible):
                files.write("flexible", _device_frame(times, "load", twin.flexible.ids, shift_kw=decided.flex_kw))
            if detail:
                voltages = pd.DataFrame(result.v_pu.astype(np.float32), columns=list(index.buses))
                files.write("bus_voltages", voltages.assign(time=times))
            if progress:
                progress(offset + n, steps)

    # Energy books of the batteries: stored change must equal η_c·charged − discharged/η_d.
    stored = charged_kwh * fleet.eta_charge - discharged_kwh / fleet.eta_discharge
    balance = float(np.abs(fleet.soc * fleet.e_kwh - e_start - stored).sum())
    window_kwh = fleet.e_kwh * (fleet.soc_max - fleet.soc_min)
    cycles = {b: float(d / w) for b, d, w in zip(fleet.ids, discharged_kwh, window_kwh, strict=True)}
    kpis = acc.result(
        bus_ids=index.buses, branch_ids=branch_ids, battery_balance_error_kwh=balance, battery_cycles=cycles
    )
    kpis |= {
        "scenario": scenario.name,
        "controller": "+".join(c.name for c in controllers),
        "energy_cost_eur": energy_cost,
        "curtailment_kwh": curtailed_kwh,
        "deferred_load_kwh": deferred_kwh,
        "flexible_backlog_kwh": float(twin.flexible.backlog_kwh.sum()),
        "volt_var": None
        if twin.inverters is None
        else {"max_iterations": volt_var_iterations, "unconverged_windows": volt_var_unconverged},
        "demand_charge_eur": max(kpis["peak_import_kw"], 0.0) * tariff.demand_charge_eur_per_kw,
        "tariff": dataclasses.asdict(tariff),
        "control": {
            "refusals": refusals,
            "failed_controllers": dict(cycle.isolated),
            "cycle_ms_per_window": 1000.0 * cycle_seconds / max(-(-steps // window_steps), 1),
        },
        "start": scenario.time.start.isoformat(),
        "days": scenario.time.days,
        "levels": {s: int(m.level) for s, m in sites.items()},
    }
    _write_static(out, acc, index.buses, branch_ids, net)
    (out / "kpis.json").write_text(json.dumps(kpis, indent=2, allow_nan=True))
    return StudyResult(out=out, kpis=kpis, steps=steps, seconds=time.perf_counter() - started)


def auto_window(buses: int, *, steps_per_day: int, bus_steps: float = 2e6, max_days: int = 31) -> int:
    """Whole days per window, about ``bus_steps`` bus-steps each: large grids keep memory bounded,
    small grids amortise the fixed per-window cost (Parquet row groups, KPI updates) over more steps."""
    days = int(min(max(round(bus_steps / (max(buses, 1) * steps_per_day)), 1), max_days))
    return days * steps_per_day


def _system_frame(
    times: pd.DatetimeIndex,
    lp: np.ndarray,
    ev: np.ndarray,
    gp: np.ndarray,
    generation: dict[str, np.ndarray],
    battery_p: np.ndarray,
    result: PowerFlowResult,
) -> pd.DataFrame:
    v = result.v_pu
    columns: dict[str, Any] = {
        "time": times,
        "grid_import_kw": result.grid_p_kw.sum(axis=1),
        "grid_q_kvar": result.grid_q_kvar.sum(axis=1),
        "losses_kw": result.losses_kw,
        "load_kw": lp.sum(axis=1),
        "ev_kw": ev.sum(axis=1),
        "generation_kw": gp.sum(axis=1),  # after volt-watt curtailment
        **{f"gen_{k}_kw": p for k, p in generation.items()},
        "battery_kw": battery_p.sum(axis=1),
        "v_min_pu": np.nanmin(v, axis=1, initial=np.inf),
        "v_mean_pu": np.nanmean(v, axis=1),
        "v_max_pu": np.nanmax(v, axis=1, initial=-np.inf),
        "max_line_loading": np.nanmax(result.line_loading, axis=1, initial=0.0),
        "max_trafo_loading": np.nanmax(result.trafo_loading, axis=1, initial=0.0),
        "deenergized_buses": (~result.energized).sum(axis=1),
        "failed": np.isin(np.arange(len(times)), list(result.failed)),
    }
    return pd.DataFrame(columns)


def _device_frame(times: pd.DatetimeIndex, key: str, ids: tuple[str, ...], **values: np.ndarray) -> pd.DataFrame:
    """Long format, one row per step and device: ``time``, ``key`` (the device id) and each ``(steps, n)`` value."""
    return pd.DataFrame(
        {
            "time": np.repeat(times.to_numpy(), len(ids)),
            key: np.tile(np.array(ids, dtype=object), len(times)),
            **{name: np.asarray(v).ravel() for name, v in values.items()},
        }
    )


def _write_static(
    out: Path, acc: KpiAccumulator, bus_ids: tuple[str, ...], branch_ids: tuple[str, ...], net: Any
) -> None:
    minutes = 60.0 * acc.dt_h
    pd.DataFrame(
        {
            "bus": bus_ids,
            "vn_kv": [net.buses[b].vn_kv for b in bus_ids],
            "zone": [net.buses[b].zone for b in bus_ids],
            "v_min_pu": acc.bus_v_min,
            "v_max_pu": acc.bus_v_max,
            "minutes_below": acc.bus_steps_below * minutes,
            "minutes_above": acc.bus_steps_above * minutes,
        }
    ).to_parquet(out / "buses.parquet", compression="zstd")
    n_lines = len(net.lines)
    pd.DataFrame(
        {
            "branch": branch_ids,
            "kind": ["line"] * n_lines + ["transformer"] * (len(branch_ids) - n_lines),
            "max_loading": acc.branch_max_loading,
            "hours_overloaded": acc.branch_steps_overloaded * acc.dt_h,
            "loading_hist": list(acc.branch_hist),
        }
    ).to_parquet(out / "branches.parquet", compression="zstd")
