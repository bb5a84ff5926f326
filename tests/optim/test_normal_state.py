"""After repair, switches go back to normal: ties opened before isolators close, so no loop ever closes."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmesh.model.elements import Bus, ExternalGrid, Line, Switch
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network
from gridmesh.optim.flisr_types import Action
from gridmesh.optim.normal_state import return_to_normal


def _ring(*, tie_closed: bool, isolator_closed: bool) -> Network:
    """Two feeders from one source, joined by a normally open tie; an isolator on feeder A."""
    buses = [Bus(id=f"b{i}", vn_kv=20) for i in range(5)]
    line = {"length_km": 1, "r_ohm_per_km": 0.1, "x_ohm_per_km": 0.1, "max_i_a": 300}
    lines = [
        Line(id="a1", from_bus="b0", to_bus="b1", **line),
        Line(id="a2", from_bus="b1", to_bus="b2", **line),
        Line(id="c1", from_bus="b0", to_bus="b3", **line),
        Line(id="c2", from_bus="b3", to_bus="b4", **line),
    ]
    switches = [
        Switch(
            id="iso",
            bus="b1",
            element="a2",
            element_type=SwitchedElement.LINE,
            kind=SwitchKind.LOAD_BREAK,
            remote=True,
            closed=isolator_closed,
        ),
        Switch(
            id="tie",
            bus="b2",
            element="b4",
            element_type=SwitchedElement.BUS,
            kind=SwitchKind.TIE,
            normally_closed=False,
            remote=True,
            closed=tie_closed,
        ),
    ]
    return Network.from_elements([*buses, *lines, *switches, ExternalGrid(id="g", bus="b0")])


def _loops(network: Network, closed: dict[str, bool]) -> int:
    """Independent loops of the bus graph with the given switch states (edges − buses + components)."""
    ids = {b: i for i, b in enumerate(network.buses)}
    edges = [(ln.from_bus, ln.to_bus) for ln in network.lines.values() if not (ln.id == "a2" and not closed["iso"])]
    if closed["tie"]:
        edges.append(("b2", "b4"))
    rows = [ids[a] for a, _ in edges]
    cols = [ids[b] for _, b in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(ids), len(ids)))
    components, _ = connected_components(graph, directed=False)
    return len(edges) - len(ids) + components


def test_ties_open_before_isolators_close_and_no_step_closes_a_loop() -> None:
    after_flisr = _ring(tie_closed=True, isolator_closed=False)
    steps = return_to_normal(after_flisr)
    assert [(s.switch, s.action) for s in steps] == [("tie", Action.OPEN), ("iso", Action.CLOSE)]
    state = {"tie": True, "iso": False}
    for step in steps:
        state[step.switch] = step.action is Action.CLOSE
        assert _loops(after_flisr, state) == 0
    # The tempting make-before-break order would have closed the ring.
    assert _loops(after_flisr, {"tie": True, "iso": True}) == 1


def test_a_grid_in_its_normal_state_needs_no_steps() -> None:
    assert return_to_normal(_ring(tie_closed=False, isolator_closed=True)) == ()
