"""Study throughput: gridmesh against pandapower's time series and raw power-grid-model, on one network.

Measures, on the same scenario and the same profile window:

* pandapower ``run_timeseries`` with ``ConstControl`` controllers fed by a ``DFData`` of absolute load and
  generator profiles and an ``OutputWriter`` logging ``res_bus.vm_pu`` and ``res_line.loading_percent``
  (numba on, recycling on: pandapower's fast path). EV chargers and batteries stay at 0 there.
* ``gridmesh.sim.study.run_study`` with the controller off (``NoControl``) and on (``SelfConsumption``):
  what ``gridmesh simulate`` runs, Parquet output and KPIs included.
* power-grid-model batch power flow through ``gridmesh.physics.powerflow.PowerFlow.run`` on prebuilt
  injections (iterative current as one batch and in study-sized windows; Newton-Raphson for reference):
  the upper limit for a study.

Every phase runs in a fresh child process (this script with ``--phase``), so that its peak RSS
(``ru_maxrss``) belongs to that phase alone. Before the timing, pandapower's bus voltages are compared with
a gridmesh power flow of the same injections.

Usage::

    .venv/bin/python benchmarks/bench_study.py                # 96 pandapower steps, 7 gridmesh days
    .venv/bin/python benchmarks/bench_study.py --days 366     # the full-year target
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandapower as pp
import pandas as pd
import psutil
from pandapower.control import ConstControl
from pandapower.timeseries import DFData, OutputWriter, run_timeseries
from rich.console import Console
from rich.table import Table

from gridmesh.control.controller import NoControl
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.model.io.pandapower import to_pandapower
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.physics.powerflow import STUDY_OUTPUTS, Injections, PowerFlow
from gridmesh.sim.study import auto_window, run_study

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "gridmesh" / "scenarios" / "demo.yaml"
YEAR_STEPS = 35_136  # 366 days of 15-minute steps (2016, SimBench's profile year)
KW_PER_MW = 1000.0
PHASES = ("pandapower", "raw", "study-off", "study-on")
PACKAGES = ("numpy", "pandas", "pandapower", "numba", "power-grid-model", "gridmesh")

# Targets of the study-performance issue.
TARGET_YEAR_S = 180.0
TARGET_PEAK_BYTES = 2e9
TARGET_VS_PANDAPOWER = 50.0
TARGET_VS_RAW = 0.5

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------- shared


def _scenario(args: argparse.Namespace) -> Scenario:
    return read_scenario(Path(args.scenario)).with_time(days=args.days)


def _powers(scenario: Scenario, first: int, steps: int) -> dict[str, FloatArray]:
    """Absolute load and generator powers (kW, kvar), ``(steps, n)`` in network table order, as a study
    builds them (profile × rating × in_service; generator q constant)."""
    net, profiles = scenario.network, scenario.profiles
    loads, gens = list(net.loads.values()), list(net.generators.values())
    load_p = profiles.selector([x.p_profile for x in loads]).scaled(
        np.array([x.p_kw * x.in_service for x in loads]), first, steps
    )
    load_q = profiles.selector([x.q_profile for x in loads]).scaled(
        np.array([x.q_kvar * x.in_service for x in loads]), first, steps
    )
    gen_p = profiles.selector([x.profile for x in gens]).scaled(
        np.array([x.p_kw * x.in_service for x in gens]), first, steps
    )
    gen_q = np.broadcast_to(np.array([x.q_kvar * x.in_service for x in gens]), gen_p.shape).copy()
    return {"load_p": load_p, "load_q": load_q, "gen_p": gen_p, "gen_q": gen_q}


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _setup_done() -> dict[str, Any]:
    """RSS now and the peak so far (setup: imports, scenario, profiles), then a reset of the peak so that
    the end of the phase reads the peak of the timed runs alone (Linux ``clear_refs``)."""
    memory = {"rss_before_mib": _rss_mib(), "peak_setup_mib": _peak_rss_mib(), "peak_reset": False}
    try:
        Path("/proc/self/clear_refs").write_text("5")
        memory["peak_reset"] = True
    except OSError:
        pass
    return memory


def _compare(reference: FloatArray, v_pu: FloatArray) -> dict[str, Any]:
    """Max |Δv| over buses energized in both, and how many buses are energized in only one."""
    both = np.isfinite(reference) & np.isfinite(v_pu)
    diff = np.abs(reference - v_pu)[both]
    return {
        "max_abs_diff_pu": float(diff.max()) if diff.size else float("nan"),
        "mean_abs_diff_pu": float(diff.mean()) if diff.size else float("nan"),
        "compared_values": int(both.sum()),
        "energized_mismatch": int((np.isfinite(reference) != np.isfinite(v_pu)).sum()),
    }


# --------------------------------------------------------------------------------------------- phases


def phase_pandapower(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """pandapower's standard time series: ConstControl + DFData + OutputWriter, numba on."""
    t0 = time.perf_counter()
    scenario = _scenario(args)
    first, steps = scenario.profiles.step_of(scenario.time.start), args.pp_steps
    powers = _powers(scenario, first, steps)
    t1 = time.perf_counter()
    net = to_pandapower(scenario.network)
    t2 = time.perf_counter()
    n_loads, n_gens = len(scenario.network.loads), len(scenario.network.generators)
    load_idx, gen_idx = net.load.index[:n_loads], net.sgen.index[:n_gens]
    if list(net.load.name[:n_loads]) != list(scenario.network.loads):
        raise RuntimeError("pandapower load order differs from the network's")
    for element, variable, index, values in (
        ("load", "p_mw", load_idx, powers["load_p"]),
        ("load", "q_mvar", load_idx, powers["load_q"]),
        ("sgen", "p_mw", gen_idx, powers["gen_p"]),
        ("sgen", "q_mvar", gen_idx, powers["gen_q"]),
    ):
        frame = pd.DataFrame(values / KW_PER_MW, columns=index)
        ConstControl(
            net, element=element, variable=variable, element_index=index, data_source=DFData(frame), profile_name=index
        )
    pp.runpp(net)  # warm-up: numba compiles here, not inside the timing
    numba = bool(net._options.get("numba"))
    memory = _setup_done()
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeat):  # a fresh writer each time (a used one misses res_bus when recycling)
            writer = OutputWriter(
                net,
                time_steps=range(steps),
                output_path=None,
                log_variables=[("res_bus", "vm_pu"), ("res_line", "loading_percent")],
            )
            t3 = time.perf_counter()
            run_timeseries(net, time_steps=range(steps), verbose=False)
            times.append(time.perf_counter() - t3)
    vm = writer.output["res_bus.vm_pu"].reindex(columns=net.bus.index).to_numpy(dtype=np.float64)
    np.save(work / "pp_vm_pu.npy", vm)
    return {
        "steps": steps,
        "seconds": min(times),
        "seconds_all": times,
        **memory,
        "setup_s": {"read_scenario_and_profiles": t1 - t0, "to_pandapower": t2 - t1},
        "numba": numba,
        "scenario": scenario.name,
        "repeat": args.repeat,
        "elements": {
            "bus": len(net.bus),
            "line": len(net.line),
            "trafo": len(net.trafo),
            "load": len(net.load),
            "sgen": len(net.sgen),
            "storage": len(net.storage),
            "switch": len(net.switch),
        },
    }


def _injections(powers: dict[str, FloatArray], n_ev: int, n_bat: int) -> Injections:
    steps = powers["load_p"].shape[0]
    return Injections(
        powers["load_p"],
        powers["load_q"],
        powers["gen_p"],
        powers["gen_q"],
        np.zeros((steps, n_ev)),
        np.zeros((steps, n_bat)),
    )


def _timed(engine: PowerFlow, injections: Injections, window: int) -> tuple[float, int]:
    """Seconds to run ``injections`` in batches of ``window`` steps; number of failed steps."""
    failed = 0
    start = time.perf_counter()
    for offset in range(0, injections.steps, window):
        rows = np.arange(offset, min(offset + window, injections.steps), dtype=np.int64)
        batch = injections if window >= injections.steps else injections.rows(rows)
        failed += len(engine.run(batch).failed)
    return time.perf_counter() - start, failed


def phase_raw(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """power-grid-model batches through PowerFlow.run on prebuilt injections (EVs and batteries at 0)."""
    scenario = _scenario(args)
    net = scenario.network
    first = scenario.profiles.step_of(scenario.time.start)
    steps = args.raw_steps
    inj = _injections(_powers(scenario, first, steps), len(net.ev_chargers), len(net.batteries))
    memory = _setup_done()
    out: dict[str, Any] = {"steps": steps, **memory, "runs": {}}
    for method in ("iterative_current", "newton_raphson"):
        # The same outputs a study asks for: the limit a study could reach with this engine.
        engine = PowerFlow(net, method=method, outputs=STUDY_OUTPUTS)
        engine.run(inj.rows(np.array([0], dtype=np.int64)))  # warm-up
        window = args.window or auto_window(len(net.buses), steps_per_day=96)  # the study's own window
        windows = (steps, window) if method == "iterative_current" else (steps,)
        for window in windows:
            times, failed = [], 0
            for _ in range(args.repeat):
                seconds, failed = _timed(engine, inj, window)
                times.append(seconds)
            out["runs"][f"{method}/{window}"] = {
                "method": method,
                "batch": window,
                "steps": steps,
                "seconds": min(times),
                "seconds_all": times,
                "failed": failed,
            }
    pp_file = work / "pp_vm_pu.npy"
    if pp_file.exists():  # pandapower's voltages against gridmesh's power flow of the same injections
        reference = np.load(pp_file)
        check = inj.rows(np.arange(reference.shape[0], dtype=np.int64))
        out["check"] = {
            method: _compare(reference, PowerFlow(net, method=method).run(check).v_pu)
            for method in ("iterative_current", "newton_raphson")
        } | {"steps": int(reference.shape[0])}
    return out


def phase_study(args: argparse.Namespace, work: Path, *, controlled: bool) -> dict[str, Any]:
    """``gridmesh simulate`` through the API: run_study with Parquet output and KPIs."""
    t0 = time.perf_counter()
    scenario = _scenario(args)
    load_s = time.perf_counter() - t0
    memory = _setup_done()
    times = []
    for i in range(args.repeat):  # a fresh controller and output folder each time, as a new `simulate`
        controller = SelfConsumption() if controlled else NoControl()
        out = work / f"study-{controller.name}-{i}"
        result = run_study(scenario, out=out, controller=controller, window_steps=args.window or None)
        times.append(result.seconds)
    k = result.kpis
    return {
        "steps": result.steps,
        "seconds": min(times),
        "seconds_all": times,
        **memory,
        "setup_s": {"read_scenario": load_s},
        "controller": controller.name,
        "output_mib": sum(f.stat().st_size for f in out.iterdir()) / 2**20,
        "kpis": {key: k.get(key) for key in ("failed_steps", "peak_import_kw", "losses_percent", "renewable_share")},
    }


def run_phase(args: argparse.Namespace) -> None:
    work = Path(args.work)
    run = {
        "pandapower": lambda: phase_pandapower(args, work),
        "raw": lambda: phase_raw(args, work),
        "study-off": lambda: phase_study(args, work, controlled=False),
        "study-on": lambda: phase_study(args, work, controlled=True),
    }[args.phase]
    load_before = os.getloadavg()
    result = run()
    result["peak_run_mib"] = _peak_rss_mib() if result["peak_reset"] else None
    result["peak_rss_mib"] = max(_peak_rss_mib(), result["peak_setup_mib"])
    result["loadavg_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    (work / f"{args.phase}.json").write_text(json.dumps(result, indent=2, default=float))


# --------------------------------------------------------------------------------------------- parent


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "-"


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": _versions(),
    }


def _child(args: argparse.Namespace, phase: str, work: Path, console: Console) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--work",
        str(work),
        "--scenario",
        str(args.scenario),
        "--days",
        str(args.days),
        "--pp-steps",
        str(args.pp_steps),
        "--raw-steps",
        str(args.raw_steps),
        "--window",
        str(args.window),
        "--repeat",
        str(args.repeat),
    ]
    with console.status(f"phase {phase} …"):
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads((work / f"{phase}.json").read_text())
    result["process_wall_s"] = wall
    load = result["loadavg_1min"]
    console.print(
        f"  {phase}: done in {wall:.1f} s (process wall time); runs: "
        + ", ".join(f"{t:.2f} s" for t in _all_seconds(result))
        + f"; 1-min load average {load['before']:.1f} → {load['after']:.1f}"
    )
    return result


def _all_seconds(result: dict[str, Any]) -> list[float]:
    if "runs" in result:
        return [t for run in result["runs"].values() for t in run["seconds_all"]]
    return list(result["seconds_all"])


def summarise(phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows (name → steps, seconds, steps/s, year projection, peak RSS), ratios and target verdicts."""
    rows: dict[str, dict[str, Any]] = {}

    def add(name: str, steps: int, seconds: float, phase: dict[str, Any]) -> None:
        rate = steps / seconds
        rows[name] = {
            "steps": steps,
            "seconds": seconds,
            "steps_per_s": rate,
            "peak_rss_mib": phase["peak_rss_mib"],
            "peak_run_mib": phase["peak_run_mib"],
            "year_s": seconds if steps == YEAR_STEPS else YEAR_STEPS / rate,
            "year_measured": steps == YEAR_STEPS,
        }

    pp_, raw = phases["pandapower"], phases["raw"]
    add("pandapower run_timeseries", pp_["steps"], pp_["seconds"], pp_)
    add(
        "gridmesh study, controller off",
        phases["study-off"]["steps"],
        phases["study-off"]["seconds"],
        phases["study-off"],
    )
    add("gridmesh study, controller on", phases["study-on"]["steps"], phases["study-on"]["seconds"], phases["study-on"])
    labels = {"iterative_current": "iterative current", "newton_raphson": "Newton-Raphson"}
    raw_ic = None
    for key, run in raw["runs"].items():
        name = f"raw PGM {labels[run['method']]}, batch {run['batch']}"
        add(name, run["steps"], run["seconds"], raw)
        if run["method"] == "iterative_current" and (
            raw_ic is None or run["steps"] / run["seconds"] > rows[raw_ic]["steps_per_s"]
        ):
            raw_ic = name
        rows[name]["failed"] = run["failed"]
        rows[name]["key"] = key
    rate = {k: v["steps_per_s"] for k, v in rows.items()}
    on, off, pp_name = "gridmesh study, controller on", "gridmesh study, controller off", "pandapower run_timeseries"
    assert raw_ic is not None
    ratios = {
        "on / pandapower": rate[on] / rate[pp_name],
        "off / pandapower": rate[off] / rate[pp_name],
        f"on / {raw_ic}": rate[on] / rate[raw_ic],
        f"off / {raw_ic}": rate[off] / rate[raw_ic],
    }
    on_row = rows[on]
    peak_bytes = on_row["peak_rss_mib"] * 2**20
    run = "year run" if on_row["year_measured"] else f"{on_row['steps']}-step run"
    targets = [
        {
            "target": "year with controller on < 3 min (2 cores)",
            "value": f"{on_row['year_s']:.0f} s ({'measured' if on_row['year_measured'] else 'projected'})",
            "met": on_row["year_s"] < TARGET_YEAR_S,
        },
        {
            "target": "peak memory < 2 GB (controller on)",
            "value": f"{peak_bytes / 1e9:.2f} GB ({run})",
            "met": peak_bytes < TARGET_PEAK_BYTES,
        },
        {
            "target": "≥ 50× pandapower run_timeseries steps/s",
            "value": f"{ratios['on / pandapower']:.0f}×",
            "met": ratios["on / pandapower"] >= TARGET_VS_PANDAPOWER,
        },
        {
            "target": "≥ 0.5× raw power-grid-model batch throughput",
            "value": f"{ratios[f'on / {raw_ic}']:.2f}×",
            "met": ratios[f"on / {raw_ic}"] >= TARGET_VS_RAW,
        },
    ]
    return {"rows": rows, "ratios": ratios, "raw_reference": raw_ic, "targets": targets}


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MiB"


def report(console: Console, info: dict[str, Any], phases: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    m = info["machine"]
    console.print(
        f"[bold]scenario[/bold] {info['scenario']} ({info['elements']['bus']:,} buses, "
        f"{info['elements']['load']:,} loads, {info['elements']['sgen']:,} generators) · "
        f"pandapower {phases['pandapower']['steps']} steps · gridmesh {phases['study-on']['steps']} steps "
        f"· raw PGM {phases['raw']['steps']} steps"
    )
    console.print(
        f"[bold]machine[/bold] {m['cpus_usable']} usable CPUs of {m['cpu_count']} ({m['cpu_model']}), "
        f"{m['memory_gib']:.0f} GiB · Python {m['python']} · "
        + " · ".join(f"{k} {v}" for k, v in m["versions"].items())
    )
    table = Table(title="study throughput (same network, same profiles)")
    for col in ("", "steps", "seconds", "steps/s", "year (35,136 steps)", "peak RSS: runs", "process"):
        table.add_column(col, justify="left" if not col else "right")
    for name, r in summary["rows"].items():
        year = f"{r['year_s']:,.0f} s" + (" measured" if r["year_measured"] else " projected")
        table.add_row(
            name,
            f"{r['steps']:,}",
            f"{r['seconds']:.2f}",
            f"{r['steps_per_s']:,.1f}",
            year,
            _mib(r["peak_run_mib"]),
            _mib(r["peak_rss_mib"]),
        )
    console.print(table)
    ratios = Table(title="ratios of steps/s")
    ratios.add_column("")
    ratios.add_column("ratio", justify="right")
    for name, value in summary["ratios"].items():
        ratios.add_row(name, f"{value:,.2f}×")
    console.print(ratios)
    targets = Table(title="targets")
    for col in ("target", "measured", "met"):
        targets.add_column(col)
    for t in summary["targets"]:
        targets.add_row(t["target"], t["value"], "[green]met[/green]" if t["met"] else "[red]not met[/red]")
    console.print(targets)
    check = phases["raw"].get("check", {})
    for method in ("iterative_current", "newton_raphson"):
        if method in check:
            c = check[method]
            console.print(
                f"[bold]agreement[/bold] pandapower vs gridmesh {method}, {check['steps']} steps: "
                f"max |Δv| = {c['max_abs_diff_pu']:.2e} pu, mean {c['mean_abs_diff_pu']:.2e} pu over "
                f"{c['compared_values']:,} values; energized mismatch: {c['energized_mismatch']}"
            )
    pp_ = phases["pandapower"]
    console.print(
        "[bold]notes[/bold]\n"
        f"  · pandapower: ConstControl ×4 (load p/q, sgen p/q) on DFData, OutputWriter(res_bus.vm_pu, "
        f"res_line.loading_percent), numba={pp_['numba']}, one runpp warm-up before timing; EV chargers and "
        "batteries stay at 0 kW there (and in the raw PGM runs).\n"
        "  · gridmesh: run_study as `gridmesh simulate` (EV sessions, battery model, controller, Parquet "
        "output, KPIs; HTML report not included); seconds are run_study's own (engine build included, "
        "scenario reading excluded).\n"
        "  · raw PGM: PowerFlow.run on prebuilt injections, one warm-up step; batch = steps per call.\n"
        f"  · seconds: the best of {pp_['repeat']} timed runs per row (all runs in the JSON).\n"
        "  · peak RSS: each phase runs in its own process; 'runs' is the peak during the timed runs (peak reset "
        "after setup), 'process' the whole process's (imports and scenario reading included)."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=str(DEMO), help="scenario YAML (default: the built-in demo)")
    parser.add_argument("--days", type=float, default=7.0, help="gridmesh study length in days (366: a year)")
    parser.add_argument("--pp-steps", type=int, default=96, help="pandapower time steps (default: one day)")
    parser.add_argument("--raw-steps", type=int, default=672, help="steps of the raw power-grid-model runs")
    parser.add_argument(
        "--window", type=int, default=0, help="study window in steps per power-flow batch (default: the study's own)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the best counts")
    parser.add_argument("--json-out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_study.json")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.repeat, args.pp_steps, args.raw_steps) < 1 or args.window < 0 or args.days <= 0:
        parser.error("--repeat, --pp-steps, --raw-steps, --window and --days must be positive")
    if args.phase:
        run_phase(args)
        return
    console = Console(width=max(Console().width, 130))
    console.print(f"bench_study: {args.scenario}, gridmesh {args.days:g} days, pandapower {args.pp_steps} steps")
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        work = Path(tmp)
        phases = {phase: _child(args, phase, work, console) for phase in PHASES}
    summary = summarise(phases)
    info = {
        "scenario": phases["pandapower"]["scenario"],
        "elements": phases["pandapower"]["elements"],
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(args).items() if k not in ("phase", "work")},
    }
    report(console, info, phases, summary)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(info | {"phases": phases} | summary, indent=2, default=float))
    console.print(f"results: {args.json_out}")


if __name__ == "__main__":
    main()
