"""The planner against brute force: every combination of switch states, the same power-flow limits.

For each single fault, every state of the candidate switches is tried; a combination counts if it keeps
the grid radial, leaves the faulted section dead and passes the power-flow check. The planner must
restore as much load (critical customers first) as the best such combination.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmesh.cli.scenario import load
from gridmesh.model.graph import branch_end_open, connectivity
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.sections import Sections, sections_of
from gridmesh.optim.flisr import Action, Limits, Location, SwitchingCheck, plan
from gridmesh.optim.flisr_locate import feeder_tree
from gridmesh.sim.profiles_at import ProfilesAt
from support.flisr_feeder import LOADS_KW, tripped, two_feeders, with_states


def cycles(network: Network) -> int:
    """Independent loop count of the bus graph: closed edges − buses + components."""
    index = {b: i for i, b in enumerate(network.buses)}
    opened = branch_end_open(network)
    edges = [
        (index[x.from_bus], index[x.to_bus])
        for x in network.lines.values()
        if x.in_service and (x.id, x.from_bus) not in opened and (x.id, x.to_bus) not in opened
    ]
    edges += [
        (index[t.hv_bus], index[t.lv_bus])
        for t in network.transformers.values()
        if t.in_service and (t.id, t.hv_bus) not in opened and (t.id, t.lv_bus) not in opened
    ]
    edges += [
        (index[s.bus], index[s.element])
        for s in network.switches.values()
        if s.element_type is SwitchedElement.BUS and s.is_closed and s.in_service
    ]
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    n = len(index)
    count, _ = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)))
    return len(pairs) - n + int(count)


def served(network: Network, loads_kw: dict[str, float]) -> tuple[int, float]:
    """(critical customers, kW) supplied in the network's switch state."""
    conn = connectivity(network)
    live = {b for b, e in zip(conn.bus_ids, conn.energized, strict=True) if e}
    on = [ld for ld in network.loads.values() if ld.bus in live and ld.in_service]
    return sum(ld.customers for ld in on if ld.critical), round(sum(loads_kw.get(ld.id, ld.p_kw) for ld in on), 3)


def brute_force(
    network: Network, secs: Sections, zone: int, switches: Sequence[str], loads_kw: dict[str, float], limits: Limits
) -> tuple[int, float]:
    """Best (critical customers, kW) over every state of ``switches``; radial, zone dead, limits met."""
    base_loops = cycles(with_states(network, {}))
    dead = sorted(secs.sections[zone].buses)
    admissible: list[dict[str, bool]] = []
    for states in itertools.product((False, True), repeat=len(switches)):
        candidate = dict(zip(switches, states, strict=True))
        after = with_states(network, candidate)
        conn = connectivity(after)
        live = {b for b, e in zip(conn.bus_ids, conn.energized, strict=True) if e}
        if cycles(after) <= base_loops and not live & set(dead):
            admissible.append(candidate)
    verdicts = SwitchingCheck(network).run(admissible, loads_kw, limits=limits, dead_buses=dead)
    scores = [
        served(with_states(network, c), loads_kw) for c, v in zip(admissible, verdicts, strict=True) if v.feasible
    ]
    return max(scores)


def planned(
    network: Network, secs: Sections, zone: int, trip: str, loads_kw: dict[str, float], limits: Limits
) -> tuple[int, float]:
    p = plan(network, secs, Location(faulted=frozenset({zone}), trips=(trip,)), loads_kw, limits=limits)
    after = with_states(network, {s.switch: s.action is Action.CLOSE for s in p.steps})
    assert cycles(after) <= cycles(network)
    return served(after, loads_kw)


FEEDER_SWITCHES = ["rA", "sA1", "sA2", "sA4", "sA7", "rB", "sB2", "sB3", "sB4", "tie1", "tie2"]


@pytest.mark.slow
@pytest.mark.parametrize("tie_amps", [300.0, 25.0])
@pytest.mark.parametrize(
    ("bus", "trip"), [("a1", "rA"), ("a2", "rA"), ("a3", "rA"), ("a5", "rA"), ("a7", "rA"), ("b2", "rB")]
)
def test_planner_matches_brute_force_on_the_two_feeder_grid(bus: str, trip: str, tie_amps: float) -> None:
    network = tripped(two_feeders(tie_amps), trip)
    secs = sections_of(network)
    loads = {f"load-{b}": p for b, p in LOADS_KW.items()}
    zone = secs.section_of_bus[bus]
    best = brute_force(network, secs, zone, FEEDER_SWITCHES, loads, Limits())
    assert planned(network, secs, zone, trip, loads, Limits()) == best


@pytest.fixture(scope="module")
def demo() -> tuple[Network, Sections, dict[str, float]]:
    scenario = load("demo")
    network = scenario.network
    window = ProfilesAt(network, scenario.profiles).values(datetime(2016, 1, 5, 18, 0))
    loads = dict(zip(network.loads, window.load_p_kw[0].tolist(), strict=True))
    return network, sections_of(network), loads


RECLOSERS = [f"MV1.101 Switch {n}" for n in (7, 31, 49, 59, 79, 95, 141, 155)]
# (tripped recloser, the switch whose downstream section is faulted): the first section of every feeder,
# and on feeder 7 the sections behind its two sectionalisers
MV_FAULTS = [(r, r) for r in RECLOSERS] + [(RECLOSERS[0], "MV1.101 Switch 12"), (RECLOSERS[0], "MV1.101 Switch 16")]


@pytest.mark.slow
@pytest.mark.parametrize(("trip", "behind"), MV_FAULTS)
def test_planner_matches_brute_force_on_the_demo_mv_feeders(
    demo: tuple[Network, Sections, dict[str, float]], trip: str, behind: str
) -> None:
    network, secs, loads = demo
    network = tripped(network, trip)
    tree = feeder_tree(network, secs, closed=[trip])
    feeder = tree.below(next(s for s in secs.switch_sides[trip] if tree.parent.get(s) == trip))
    zone = next(s for s in secs.switch_sides[behind] if tree.parent.get(s) == behind)
    # candidates: the feeder's MV line switches and the ties leaving it (not the MV/LV transformer breakers)
    switches = sorted(
        sw
        for sw, (a, b) in secs.switch_sides.items()
        if network.switches[sw].element_type is SwitchedElement.LINE
        and network.buses[network.switches[sw].bus].vn_kv > 1
        and (a in feeder or b in feeder)
    )
    assert planned(network, secs, zone, trip, loads, Limits()) == brute_force(
        network, secs, zone, switches, loads, Limits()
    )
