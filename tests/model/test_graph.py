"""Topology: components, islands, and the buses behind a PCC switch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandapower as pp
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Switch, Transformer
from gridmesh.model.graph import (
    branch_end_open,
    bus_positions,
    buses_behind,
    connectivity,
    far_side_buses,
)
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network

MVLV = "1-MVLV-rural-1.108-0-sw"
LV_PCC = "LV1.108 Switch 9"  # LV side of the MV/LV transformer feeding SimBench's LV grid LV1.108


def _line(id_: str, a: str, b: str) -> Line:
    return Line(id=id_, from_bus=a, to_bus=b, length_km=0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.1, max_i_a=200)


@pytest.fixture
def feeder() -> Network:
    """hv ─t─ a ─l1─ b ═bb═ c ─l2─ d ─l3─ e, and a normally-open tie on l4 (b ─ e) at e.

    Switches: ``ts`` at a on transformer t, ``ls`` at b on line l1, ``bb`` between buses b and c.
    """
    return Network.from_elements(
        [
            Bus(id="hv", vn_kv=20),
            *(Bus(id=b, vn_kv=0.4) for b in "abcde"),
            Transformer(
                id="t", hv_bus="hv", lv_bus="a", sn_kva=250, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
            ),
            _line("l1", "a", "b"),
            _line("l2", "c", "d"),
            _line("l3", "d", "e"),
            _line("l4", "b", "e"),
            Switch(id="ts", bus="a", element="t", element_type=SwitchedElement.TRANSFORMER),
            Switch(id="ls", bus="b", element="l1", element_type=SwitchedElement.LINE),
            Switch(id="bb", bus="b", element="c"),
            Switch(id="tie", bus="e", element="l4", element_type=SwitchedElement.LINE, normally_closed=False),
            ExternalGrid(id="grid", bus="hv"),
        ]
    )


def test_everything_is_energized_in_the_normal_state(feeder: Network) -> None:
    conn = connectivity(feeder)
    assert conn.bus_ids == ("hv", "a", "b", "c", "d", "e")
    assert conn.energized.all()
    assert conn.islands() == []
    assert conn.component_of("c") == {"hv", "a", "b", "c", "d", "e"}


def test_branch_end_open_lists_open_line_and_transformer_ends(feeder: Network) -> None:
    assert branch_end_open(feeder) == {("l4", "e")}
    assert branch_end_open(feeder, {"ts": False, "tie": True}) == {("t", "a")}


@pytest.mark.parametrize(("switch", "far"), [("ts", ("hv",)), ("ls", ("a",)), ("bb", ("c",)), ("tie", ("b",))])
def test_far_side_of_each_switch_kind(feeder: Network, switch: str, far: tuple[str, ...]) -> None:
    assert far_side_buses(feeder, switch) == far


@pytest.mark.parametrize(
    ("switch", "behind"),
    [("ts", {"a", "b", "c", "d", "e"}), ("ls", {"b", "c", "d", "e"}), ("bb", {"c", "d", "e"})],
)
def test_buses_behind_a_switch(feeder: Network, switch: str, behind: set[str]) -> None:
    found = buses_behind(feeder, switch)
    assert found is not None
    assert set(found) == behind
    assert len(found) == len(behind)


def test_a_switch_inside_a_closed_loop_separates_nothing(feeder: Network) -> None:
    looped = feeder.with_elements([feeder.switches["tie"].model_copy(update={"closed": True})])
    assert buses_behind(looped, "bb") is None
    assert buses_behind(looped, "ls") == ("b", "c", "d", "e")


@pytest.mark.parametrize(
    ("states", "island"),
    [({"bb": False}, ["c", "d", "e"]), ({"ls": False}, ["b", "c", "d", "e"]), ({"ts": False}, list("abcde"))],
)
def test_opening_a_switch_makes_an_island(feeder: Network, states: dict[str, bool], island: list[str]) -> None:
    conn = connectivity(feeder, switch_states=states)
    assert conn.islands() == [island]
    assert list(np.asarray(conn.bus_ids)[~conn.energized]) == island


def test_opened_switch_in_the_network_itself_makes_an_island(feeder: Network) -> None:
    opened = feeder.with_elements([feeder.switches["bb"].model_copy(update={"closed": False})])
    assert connectivity(opened).islands() == [["c", "d", "e"]]


def test_out_of_service_elements_do_not_connect(feeder: Network) -> None:
    no_line = feeder.with_elements([feeder.lines["l2"].model_copy(update={"in_service": False})])
    assert connectivity(no_line).islands() == [["d", "e"]]
    no_switch = feeder.with_elements([feeder.switches["bb"].model_copy(update={"in_service": False})])
    assert connectivity(no_switch).islands() == [["c", "d", "e"]]
    no_grid = feeder.with_elements([feeder.external_grids["grid"].model_copy(update={"in_service": False})])
    assert connectivity(no_grid).islands() == [["hv", "a", "b", "c", "d", "e"]]


def test_separate_islands_are_listed_separately(feeder: Network) -> None:
    islands = connectivity(feeder, switch_states={"bb": False, "ts": False}).islands()
    assert sorted(islands) == [["a", "b"], ["c", "d", "e"]]


def test_bus_positions_follow_network_order(feeder: Network) -> None:
    assert bus_positions(feeder, ["e", "hv", "c"]).tolist() == [5, 0, 3]


@pytest.fixture(scope="module")
def mvlv(simbench_net: Callable[[str], pp.pandapowerNet]) -> Network:
    return from_pandapower(simbench_net(MVLV), name=MVLV)


def test_pcc_of_a_simbench_lv_grid_has_exactly_its_buses_behind(mvlv: Network) -> None:
    lv_grid = {b.id for b in mvlv.buses.values() if b.zone == "LV1.108"}
    assert len(lv_grid) == 14
    behind = buses_behind(mvlv, LV_PCC)
    assert behind is not None
    assert set(behind) == lv_grid
    assert len(behind) == len(lv_grid)


def test_opening_the_pcc_islands_the_lv_grid(mvlv: Network) -> None:
    assert connectivity(mvlv).islands() == []  # SimBench's open ties leave no island
    opened = mvlv.with_elements([mvlv.switches[LV_PCC].model_copy(update={"closed": False})])
    islands = connectivity(opened).islands()
    assert len(islands) == 1
    assert set(islands[0]) == {b.id for b in mvlv.buses.values() if b.zone == "LV1.108"}
