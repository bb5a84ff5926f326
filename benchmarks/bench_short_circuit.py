"""Short-circuit currents on the demo grid (5,479 buses): a fault at every MV bus as one batch, then line
faults (each line cut by a temporary node), then the protection response for every MV fault.

    .venv/bin/python benchmarks/bench_short_circuit.py [--fault-type three-phase] [--repeat 3] [--threading 1]
"""

from __future__ import annotations

import argparse
import time

from gridmesh.cli.scenario import load
from gridmesh.model.kinds import VoltageLevel
from gridmesh.physics.protection import protection_response
from gridmesh.physics.short_circuit import Fault, FaultType, ShortCircuit


def _best(repeat: int, run: object) -> float:
    """Best wall time of ``repeat`` calls (s)."""
    assert callable(run)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fault-type", default=FaultType.THREE_PHASE.value, choices=[t.value for t in FaultType])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threading", type=int, default=1, help="power-grid-model threads (0: all cores)")
    args = parser.parse_args()
    network = load("demo").network
    kind = FaultType(args.fault_type)

    start = time.perf_counter()
    model = ShortCircuit(network, threading=args.threading)
    build_s = time.perf_counter() - start

    mv_buses = [b.id for b in network.buses.values() if b.voltage_level is VoltageLevel.MV]
    bus_faults = [Fault(b, "buses", kind) for b in mv_buses]
    mv_lines = [x.id for x in network.lines.values() if network.buses[x.from_bus].voltage_level is VoltageLevel.MV]
    line_faults = [Fault(x, "lines", kind, position=0.5) for x in mv_lines]

    model.currents(bus_faults[:1])  # builds the cached power-grid-model once
    bus_s = _best(args.repeat, lambda: model.currents(bus_faults))
    line_s = _best(args.repeat, lambda: model.currents(line_faults))
    currents = model.currents(bus_faults)
    start = time.perf_counter()
    tripped = [protection_response(network, f, currents).tripped for f in bus_faults]
    protection_s = time.perf_counter() - start

    print(f"demo: {len(network.buses)} buses, {len(network.lines)} lines; fault type {kind.value}")
    rows = [
        ("model build (both inputs, no solve)", build_s, 1),
        (f"{len(bus_faults)} MV bus faults, one batch", bus_s, len(bus_faults)),
        (f"{len(line_faults)} MV line faults (cut), one batch", line_s, len(line_faults)),
        (f"protection response, {len(bus_faults)} faults", protection_s, len(bus_faults)),
    ]
    for label, seconds, count in rows:
        print(f"{label:44s} {seconds * 1e3:8.1f} ms  ({seconds / count * 1e3:.2f} ms each)")
    print(f"faults cleared by a device: {sum(t is not None for t in tripped)} of {len(tripped)}")
    print(f"peak MV fault current: {currents.i_fault_ka.max():.2f} kA")


if __name__ == "__main__":
    main()
