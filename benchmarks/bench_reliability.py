"""Reliability study throughput: 1,000 simulated years of the demo's MV feeders on 2 worker processes.

Target (issue "Self-healing distribution"): under 10 minutes on 2 cores, scenario loading excluded. The
phases are timed apart: building the failure-modes table (one power flow per distinct tie transfer, the
expensive part), the Monte Carlo itself, and writing the JSON and HTML report.

Usage::

    .venv/bin/python benchmarks/bench_reliability.py                  # 1,000 years, 2 workers
    .venv/bin/python benchmarks/bench_reliability.py --years 10000 --workers 2 --lv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gridmesh.cli.reliability import average_kw
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario_issues
from gridmesh.sim.reliability import FeederModel, run_reliability
from gridmesh.sim.reliability_report import write_reliability

TARGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lv", action="store_true", help="also fail LV lines and switches")
    args = parser.parse_args()

    started = time.perf_counter()
    scenario, issues = read_scenario_issues(scenario_path("demo"))
    if scenario is None:
        raise SystemExit("\n".join(map(str, issues)))
    loaded = time.perf_counter()
    model = FeederModel.of(scenario.network, lv=args.lv, average_kw=average_kw(scenario))
    built = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        result = run_reliability(model, args.years, seed=0, executor=pool)
    sampled = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_reliability(result, Path(folder))
    written = time.perf_counter()

    total = written - loaded
    system = result.group("system")
    print(f"demo, {args.years:,} years, {args.workers} workers, LV faults {'on' if args.lv else 'off'}")
    print(f"  failure modes          {len(model.modes):>10,}   tie power flows {model.capacity_checks:,}")
    print(f"  load scenario          {loaded - started:>10.2f} s  (not counted)")
    print(f"  build FMEA table       {built - loaded:>10.2f} s")
    print(f"  Monte Carlo            {sampled - built:>10.2f} s  ({args.years / (sampled - built):,.0f} years/s)")
    print(f"  write JSON + HTML      {written - sampled:>10.2f} s")
    print(f"  total                  {total:>10.2f} s  = {total / TARGET_S:.4f} × the 10-minute target")
    for variant in ("without_flisr", "with_flisr"):
        i = system.indices[variant]
        print(
            f"  {variant:<14} SAIFI {i.saifi.mean:.3f} ± {i.saifi.ci95:.3f}  SAIDI {i.saidi_min.mean:.1f} ± "
            f"{i.saidi_min.ci95:.1f} min  MAIFI {i.maifi.mean:.3f}  ENS {i.ens_kwh.mean:,.0f} kWh"
        )


if __name__ == "__main__":
    main()
