"""MPC against the perfect-foresight optimum on the same month, same objective, same accounting.

The optimum is one LP over the whole period (``perfect_foresight``). The MPC re-plans every step over a
24 h horizon inside a real study (control cycle, safety layer, power flow), with perfect forecasts; its
realised battery powers and flexible-load shifts are then priced by the very same ``dispatch_cost``. Prints
the gap and timings.
``--forecast`` also runs the MPC on net-load forecasts (``ForecastingMpc``) and reports its gap beside the
perfect-forecast MPC's, once per reserve ``k`` (the LP plans on forecast + k·σ): trained as
``--controller mpc-forecast`` does, on the weeks before the study start (``--training before``), or on the
profile year without the studied period (``--training year``). The forecasters are trained once and copied
for each ``k``.

    .venv/bin/python benchmarks/bench_mpc.py [--days 31] [--start 2016-01-01] [--scenario demo]
        [--forecast [--forecast-method gbm|same-time-yesterday] [--training before|year] [--reserve 0 1 ...]]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from gridmesh.control.controller import NoControl
from gridmesh.control.forecast_lookahead import DEFAULT_RESERVE, ForecastingMpc, ForecastMethod
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.optim.dispatch import CostBreakdown, dispatch_cost, perfect_foresight
from gridmesh.sim.study import run_study
from gridmesh.sim.twin import StudyTwin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--days", type=float, default=31.0)
    parser.add_argument("--start", type=datetime.fromisoformat, default=datetime(2016, 1, 1))
    parser.add_argument("--json-out", type=Path, default=Path("benchmarks/out/bench_mpc.json"))
    parser.add_argument("--forecast", action="store_true", help="also run the MPC on forecasts")
    parser.add_argument("--forecast-method", type=ForecastMethod, default=ForecastMethod.GBM)
    parser.add_argument("--training", choices=("before", "year"), default="before")
    parser.add_argument("--reserve", type=float, nargs="+", default=[0.0, DEFAULT_RESERVE], help="values of k")
    args = parser.parse_args()
    console = Console()
    scenario = read_scenario(scenario_path(args.scenario)).with_time(start=args.start, days=args.days)

    twin = StudyTwin(scenario)
    reference = ModelPredictiveControl()
    window, _ = twin.window(0, twin.steps)
    horizon = reference.forecast(window)
    problem = reference.problem(horizon, twin.fleet, slice(0, twin.steps))
    started = time.perf_counter()
    optimum = perfect_foresight(problem)
    optimum_s = time.perf_counter() - started
    idle = dispatch_cost(
        problem, charge_kw=np.zeros_like(optimum.charge_kw), discharge_kw=np.zeros_like(optimum.charge_kw)
    )

    with tempfile.TemporaryDirectory() as folder:
        mpc = ModelPredictiveControl()
        study = run_study(scenario, out=Path(folder) / "mpc", controller=mpc)
        batteries = pd.read_parquet(Path(folder) / "mpc" / "batteries.parquet")
        flexible = _read_flexible(Path(folder) / "mpc")
        baseline = run_study(scenario, out=Path(folder) / "none", controller=NoControl())
        forecast_runs = []
        if args.forecast:
            started = time.perf_counter()
            trained = (
                ForecastingMpc.from_scenario(scenario, method=args.forecast_method)
                if args.training == "before"
                else ForecastingMpc.from_twin(twin, method=args.forecast_method)
            )
            train_s = time.perf_counter() - started
            for k in args.reserve:
                forecasting = copy.deepcopy(trained)
                forecasting.reserve = k
                run = run_study(scenario, out=Path(folder) / f"forecast-{k:g}", controller=forecasting)
                frame = pd.read_parquet(Path(folder) / f"forecast-{k:g}" / "batteries.parquet")
                shifts = _read_flexible(Path(folder) / f"forecast-{k:g}")
                forecast_runs.append((k, forecasting, run, (frame, shifts)))
        for run in [study, *(r[2] for r in forecast_runs)]:
            if run.kpis["curtailment_kwh"] > 1e-6:  # not priced below: the figures would be wrong
                raise SystemExit(f"the MPC curtailed {run.kpis['curtailment_kwh']:.1f} kWh; price curtailment first")

    def priced(frames: tuple[pd.DataFrame, pd.DataFrame | None]) -> CostBreakdown:
        frame, shifts = frames
        power = frame.pivot(index="time", columns="battery", values="p_kw")[list(twin.fleet.ids)].to_numpy()
        flex = np.zeros((twin.steps, problem.n_flexible))
        if shifts is not None:
            per_load = shifts.pivot(index="time", columns="load", values="shift_kw")[list(twin.flexible.ids)]
            flex = horizon.groups.sum_flex(per_load.to_numpy())
        return dispatch_cost(
            problem, charge_kw=np.clip(-power, 0, None), discharge_kw=np.clip(power, 0, None), flex_kw=flex
        )

    realised = priced((batteries, flexible))
    gap = (realised.total - optimum.objective_eur) / abs(optimum.objective_eur)

    results = {
        "scenario": scenario.name,
        "start": args.start.isoformat(),
        "days": args.days,
        "steps": twin.steps,
        "batteries": len(twin.fleet),
        "optimum_eur": optimum.objective_eur,
        "optimum_status": optimum.status,
        "optimum_solve_s": optimum_s,
        "mpc_eur": realised.total,
        "idle_eur": idle.total,
        "gap": gap,
        "mpc_breakdown": realised.as_dict(),
        "optimum_breakdown": optimum.breakdown,
        "mpc_solves": mpc.stats.solves,
        "mpc_ms_per_solve": 1000 * mpc.stats.seconds / max(mpc.stats.solves, 1),
        "mpc_not_optimal": mpc.stats.not_optimal,
        "mpc_study_s": study.seconds,
        "peak_import_kw": {"none": baseline.kpis["peak_import_kw"], "mpc": study.kpis["peak_import_kw"]},
        "bus_minutes_outside_band": {
            "none": baseline.kpis["voltage"]["bus_minutes_outside_band"],
            "mpc": study.kpis["voltage"]["bus_minutes_outside_band"],
        },
    }
    table = Table(title=f"MPC vs perfect foresight — {scenario.name}, {args.days:g} days from {args.start:%Y-%m-%d}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("perfect-foresight optimum (one LP)", f"{optimum.objective_eur:,.2f} € ({optimum_s:.1f} s)")
    table.add_row("MPC, 24 h horizon, re-planned every step", f"{realised.total:,.2f} €")
    table.add_row("batteries idle", f"{idle.total:,.2f} €")
    table.add_row("gap MPC vs optimum", f"{100 * gap:.2f} %")
    table.add_row("MPC solves / mean time", f"{mpc.stats.solves} / {results['mpc_ms_per_solve']:.1f} ms")
    table.add_row("MPC study (cycle + power flow)", f"{study.seconds:.1f} s")
    table.add_row(
        "substation peak none → MPC", f"{baseline.kpis['peak_import_kw']:,.0f} → {study.kpis['peak_import_kw']:,.0f} kW"
    )
    results["forecast"] = []
    for k, forecasting, forecast_study, frame in forecast_runs:
        forecast_cost = priced(frame)
        forecast_gap = (forecast_cost.total - optimum.objective_eur) / abs(optimum.objective_eur)
        kept = (idle.total - forecast_cost.total) / (idle.total - optimum.objective_eur)
        results["forecast"].append(
            {
                "method": str(args.forecast_method),
                "training": args.training,
                "reserve": k,
                "mpc_eur": forecast_cost.total,
                "gap": forecast_gap,
                "saving_kept": kept,
                "breakdown": forecast_cost.as_dict(),
                "train_s": train_s,
                "study_s": forecast_study.seconds,
                "solves": forecasting.stats.solves,
                "not_optimal": forecasting.stats.not_optimal,
                "peak_import_kw": forecast_study.kpis["peak_import_kw"],
            }
        )
        label = f"MPC on forecasts ({args.forecast_method}, training {args.training}, reserve k={k:g})"
        table.add_row(label, f"{forecast_cost.total:,.2f} €")
        table.add_row("  gap vs optimum / share of its saving kept", f"{100 * forecast_gap:.2f} % / {100 * kept:.1f} %")
        table.add_row(
            "  demand charges: substation / microgrids",
            f"{forecast_cost.demand:,.0f} € / {forecast_cost.site_demand:,.0f} €",
        )
        table.add_row(
            "  substation peak / study",
            f"{forecast_study.kpis['peak_import_kw']:,.0f} kW / {forecast_study.seconds:.1f} s",
        )
    if forecast_runs:
        table.add_row("forecast training (once, with the error measurement)", f"{train_s:.1f} s")
    console.print(table)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results: {args.json_out}")


def _read_flexible(folder: Path) -> pd.DataFrame | None:
    path = folder / "flexible.parquet"
    return pd.read_parquet(path) if path.exists() else None


if __name__ == "__main__":
    main()
