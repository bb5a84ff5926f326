"""State estimation per cycle on the demo network, and pandapower's estimator on the same measurements.

Measurements are what the device catalogue reports (every meter, inverter, battery, EV charger, transformer
monitor and substation) for one power-flow snapshot, with fresh noise each cycle, so the layout repeats and
only values are pushed into the engine (the operating case). A second series puts a gross error on one
meter so that detection, the Gauss-Newton polish and the normalised residuals run too. pandapower's WLS
estimator runs once on the same kind of set (bus-aggregated injections, as it has no appliance
measurements) for a SimBench grid: on the demo it reports a singular gain matrix.

    .venv/bin/python benchmarks/bench_estimation.py [--scenario demo] [--cycles 20]
        [--no-pandapower] [--pandapower-grid 1-LV-semiurb4--0-sw]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandapower as pp
import simbench as sb
from pandapower.estimation import estimate as pp_estimate

from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.pandapower import element_ids, from_pandapower
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.network import Network
from gridmesh.physics.estimation import StateEstimator
from gridmesh.physics.measurement_set import MeasurementSet, catalogue_measurements
from gridmesh.physics.powerflow import PowerFlow


def _stats(label: str, seconds: list[float]) -> float:
    ms = np.array(seconds) * 1e3
    print(f"{label:<44} mean {ms.mean():7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms   ({len(ms)} cycles)")
    return float(ms.mean())


def _pandapower_net(net: pp.pandapowerNet, network: Network, ms: MeasurementSet) -> pp.pandapowerNet:
    """The measurement set added to the imported pandapower net (bus injections in load convention)."""
    bus_index = {gid: i for i, gid in element_ids(net.bus, "bus").items()}
    trafo_index = {gid: i for i, gid in element_ids(net.trafo, "trafo").items()}
    for bus, v, sigma in zip(ms.voltages.bus, ms.voltages.v_pu, ms.voltages.sigma_pu, strict=True):
        pp.create_measurement(net, "v", "bus", v, sigma, element=bus_index[str(bus)])
    bus_of = {
        **{i: e.bus for i, e in network.loads.items()},
        **{i: e.bus for i, e in network.ev_chargers.items()},
        **{i: e.bus for i, e in network.generators.items()},
        **{i: e.bus for i, e in network.batteries.items()},
        **{i: e.bus for i, e in network.external_grids.items()},
    }
    totals: dict[str, np.ndarray] = {}
    p = ms.powers
    for terminal, element, pk, qk, sp_, sq in zip(
        p.terminal, p.element, p.p_kw, p.q_kvar, p.sigma_p_kw, p.sigma_q_kvar, strict=True
    ):
        if terminal == "trafo_hv":
            t = trafo_index[str(element)]
            pp.create_measurement(net, "p", "trafo", pk / 1e3, sp_ / 1e3, element=t, side="hv")
            pp.create_measurement(net, "q", "trafo", qk / 1e3, sq / 1e3, element=t, side="hv")
            continue
        sign = 1.0 if terminal in ("load", "ev_charger") else -1.0
        acc = totals.setdefault(bus_of[str(element)], np.zeros(4))
        acc += (sign * pk, sign * qk, sp_**2, sq**2)
    for bus, (pk, qk, vp, vq) in totals.items():
        pp.create_measurement(net, "p", "bus", pk / 1e3, np.sqrt(vp) / 1e3, element=bus_index[bus])
        pp.create_measurement(net, "q", "bus", qk / 1e3, np.sqrt(vq) / 1e3, element=bus_index[bus])
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--no-pandapower", action="store_true")
    parser.add_argument("--pandapower-grid", default="1-LV-semiurb4--0-sw", help="SimBench code for the comparison")
    args = parser.parse_args()

    network = read_scenario(scenario_path(args.scenario)).network
    flow = PowerFlow(network)
    injections = flow.base_injections()
    truth = flow.run(injections).raise_on_failure()
    print(
        f"{args.scenario}: {len(network.buses)} buses, {len(network.loads)} loads, {len(network.generators)} generators"
    )

    start = time.perf_counter()
    estimator = StateEstimator(network)
    print(f"estimator build: {1e3 * (time.perf_counter() - start):.1f} ms")
    rng = np.random.default_rng(0)
    sets = [catalogue_measurements(network, truth, injections, rng=rng) for _ in range(args.cycles + 1)]
    print(f"measurements per cycle: {len(sets[0].voltages)} voltages, {len(sets[0].powers)} P/Q pairs")
    estimator.estimate(sets[0])  # first cycle builds the engine model with its sensors
    times, errors, flagged = [], [], 0
    for ms in sets[1:]:
        start = time.perf_counter()
        est = estimator.estimate(ms)
        times.append(time.perf_counter() - start)
        errors.append(float(np.nanmax(np.abs(est.v_pu - truth.v_pu[0]))))
        flagged += est.bad_data_suspected
    _stats("gridmesh (power-grid-model), clean data", times)
    print(f"  max |v − truth| {max(errors):.2e} pu; chi-square alarms {flagged}/{len(times)} (1 % expected)")

    meter = int(np.flatnonzero(sets[0].powers.terminal == "load")[len(network.loads) // 2])
    times, named = [], 0
    for ms in sets[1:]:
        p_kw = ms.powers.p_kw.copy()
        p_kw[meter] += 100.0
        bad = replace(ms, powers=replace(ms.powers, p_kw=p_kw))
        start = time.perf_counter()
        est = estimator.estimate(bad)
        times.append(time.perf_counter() - start)
        named += bool(est.suspects) and est.suspects[0].element == ms.powers.element[meter]
    _stats("gridmesh, one meter +100 kW (identification)", times)
    print(f"  bad meter named first in {named}/{len(times)} cycles")

    if not args.no_pandapower:
        compare_with_pandapower(args.pandapower_grid, args.cycles)


def compare_with_pandapower(code: str, cycles: int) -> None:
    """Both estimators on one SimBench grid and one noisy set (pandapower's WLS fails on the demo: its
    zero-injection handling leaves the demo singular, so the comparison runs on a grid it can solve)."""
    pp_net = sb.get_simbench_net(code)
    network = from_pandapower(pp_net)
    flow = PowerFlow(network)
    injections = flow.base_injections()
    ms = catalogue_measurements(network, flow.run(injections), injections, rng=np.random.default_rng(1))
    estimator = StateEstimator(network)
    estimator.estimate(ms)
    times = []
    for _ in range(cycles):
        start = time.perf_counter()
        ours = estimator.estimate(ms)
        times.append(time.perf_counter() - start)
    print(f"{code}: {len(network.buses)} buses")
    mean = _stats("gridmesh", times)
    net = _pandapower_net(pp_net, network, ms)
    start = time.perf_counter()
    # Buses without any appliance, listed explicitly: pandapower's own "no_inj_bus" search misaligns
    # indices on most SimBench grids (IndexError in _add_zero_injection).
    fed = set(net.load.bus) | set(net.sgen.bus) | set(net.ext_grid.bus) | set(net.storage.bus)
    zero = [int(b) for b in net.bus.index if b not in fed]
    ok = pp_estimate(net, init="flat", zero_injection=zero)
    seconds = time.perf_counter() - start
    position = {b: i for i, b in enumerate(ours.index.buses)}
    names = element_ids(net.bus, "bus")
    rows = [position[names[int(i)]] for i in net.res_bus_est.index]
    gap = float(np.nanmax(np.abs(ours.v_pu[rows] - net.res_bus_est.vm_pu.to_numpy())))
    print(f"pandapower WLS (one run): {1e3 * seconds:.0f} ms, converged {ok}; {1e3 * seconds / mean:.1f}× gridmesh")
    print(f"  max |v_gridmesh − v_pandapower| {gap:.2e} pu")


if __name__ == "__main__":
    main()
