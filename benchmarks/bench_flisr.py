"""FLISR plan time on the demo grid, from the last trip event (target: under 1 s per plan).

For each MV feeder of the demo, its recloser trips for a fault in the feeder's first section; the fault
is located from the indicators (every remote switch's FPI, as the fault would set them) and a plan is
made. Sections and the power-flow model are built once beforehand, as a live service holds them.

    .venv/bin/python benchmarks/bench_flisr.py [--repeat 3] [--when 2016-01-05T18:00] [--every 4]

``--every K`` makes every K-th MV load-break switch a remote sectionaliser too (a denser automation
than the demo's, so that faults leave larger areas and more candidates to check).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

from gridmesh.cli.scenario import load
from gridmesh.model.kinds import SwitchKind
from gridmesh.model.sections import sections_of
from gridmesh.optim.flisr import Limits, SwitchingCheck, locate, plan
from gridmesh.optim.flisr_locate import feeder_tree
from gridmesh.sim.profiles_at import ProfilesAt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--when", type=datetime.fromisoformat, default=datetime(2016, 1, 5, 18, 0))
    parser.add_argument("--every", type=int, default=0, help="also automate every K-th MV load-break switch")
    args = parser.parse_args()
    scenario = load("demo")
    network = scenario.network
    if args.every:
        breaks = sorted(s.id for s in network.switches.values() if s.kind is SwitchKind.LOAD_BREAK)
        extra = [
            network.switches[s].model_copy(update={"remote": True, "kind": SwitchKind.SECTIONALISER})
            for s in breaks[:: args.every]
        ]
        network = network.with_elements(extra)
        print(f"{len(extra)} load-break switches made remote sectionalisers")
    window = ProfilesAt(network, scenario.profiles).values(args.when)
    loads = dict(zip(network.loads, window.load_p_kw[0].tolist(), strict=True))
    start = time.perf_counter()
    secs = sections_of(network)
    t_sections = time.perf_counter() - start
    start = time.perf_counter()
    check = SwitchingCheck(network)
    t_model = time.perf_counter() - start
    print(f"sections: {len(secs)} in {1e3 * t_sections:.0f} ms; power-flow model built in {1e3 * t_model:.0f} ms")
    reclosers = sorted(s.id for s in network.switches.values() if s.kind is SwitchKind.RECLOSER)
    times: list[float] = []
    for trip in reclosers:
        tripped = network.with_elements([network.switches[trip].model_copy(update={"closed": False})])
        tree = feeder_tree(tripped, secs, closed=[trip])
        child = next(s for s in secs.switch_sides[trip] if tree.parent.get(s) == trip)
        hot = set(tree.path(child))  # the fault is in the first section: only the path saw current
        readings = {tree.parent[s]: tree.parent[s] in hot for s in tree.below(child)}
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            where = locate(tripped, secs, [trip], readings)
            result = plan(tripped, secs, where, loads, limits=Limits(), check=check)
            runs.append(time.perf_counter() - start)
        times += runs
        chosen = result.chosen
        print(
            f"{trip:22s} faulted {sorted(where.faulted)} steps {len(chosen.steps):2d} "
            f"restored {chosen.restored_kw:7.0f} kW / {chosen.restored_customers:4d} cust, "
            f"unrestored {chosen.unrestored_kw:7.0f} kW; candidates checked {result.candidates_checked:3d}; "
            f"mean {1e3 * statistics.fmean(runs):6.0f} ms, max {1e3 * max(runs):6.0f} ms"
        )
    print(f"all feeders: mean {1e3 * statistics.fmean(times):.0f} ms, max {1e3 * max(times):.0f} ms per plan")


if __name__ == "__main__":
    main()
