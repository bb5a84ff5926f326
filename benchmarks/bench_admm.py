"""ADMM coordination: iterations, wall time and gap to the centralised optimum (target: gap ≤ 0.5 %).

For each case — the demo's four microgrids (one day, hourly) and a seeded synthetic case of N
microgrids — the rounds run (a) in memory, agents one after the other, and (b) with the agents in
``--processes`` separate processes talking to the coordinator over the MQTT broker at ``--mqtt``
(signed messages, per-round timeout). The centralised QP of the same case is the reference.

    .venv/bin/python benchmarks/bench_admm.py [--microgrids 50] [--processes 4] [--mqtt mqtt://127.0.0.1:1883]
                                              [--skip-demo]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.optim.admm import solve_admm
from gridmesh.optim.coordination_case import (
    CoordinationCase,
    demo_case,
    plan_cost_eur,
    solve_centralised,
    synthetic_case,
)
from gridmesh.services.coordination import coordinate
from gridmesh.sim.twin import StudyTwin


def demo() -> CoordinationCase:
    twin = StudyTwin(read_scenario(scenario_path("demo")))
    window, _ = twin.window(0, round(24 / twin.dt_h))
    return demo_case(window, twin.engine)


def bench(case: CoordinationCase, *, url: str, processes: int) -> None:
    started = time.perf_counter()
    central = solve_centralised(case)
    central_s = time.perf_counter() - started
    print(f"\n{case.name}: {len(case.microgrids)} microgrids × {case.feeder.steps} steps; "
          f"centralised QP {central.objective_eur:,.2f} € in {central_s:.2f} s")  # fmt: skip
    memory = solve_admm(case.microgrids, case.feeder)
    gap = (memory.objective_eur - central.objective_eur) / abs(central.objective_eur)
    print(f"  in memory     : {memory.iterations:4d} iterations, {memory.seconds:7.2f} s, gap {100 * gap:+.4f} %, "
          f"max |p − p*| {np.abs(memory.pcc_kw - central.pcc_kw).max():.2f} kW")  # fmt: skip
    started = time.perf_counter()
    result = coordinate(case.microgrids, case.feeder, url=url, processes=processes)
    total = time.perf_counter() - started
    cost = plan_cost_eur(case, result.pcc_kw, result.feeder_kw)
    gap = (cost - central.objective_eur) / abs(central.objective_eur)
    print(f"  {processes} processes: {result.iterations:4d} iterations, {result.seconds:7.2f} s rounds "
          f"({total:.2f} s with process start), gap {100 * gap:+.4f} %, converged {result.converged}, "
          f"missed rounds {sum(result.missed_rounds.values())}, excluded {len(result.rejections)}")  # fmt: skip
    peak = case.feeder.transformer_kw(result.pcc_kw).max()
    print(f"  transformer peak {peak:,.1f} kW of {case.feeder.transformer_limit_kw:,.1f} kW; "
          f"centralised/distributed time {central_s / result.seconds:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--microgrids", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    if not args.skip_demo:
        bench(demo(), url=args.mqtt, processes=min(args.processes, 4))
    bench(synthetic_case(args.microgrids, seed=args.seed), url=args.mqtt, processes=args.processes)


if __name__ == "__main__":
    main()
