"""Switch-bounded sections on a hand-drawn feeder and on a SimBench grid (checked against bus connectivity)."""

from __future__ import annotations

from collections.abc import Callable

import pandapower as pp
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Load, Switch, Transformer
from gridmesh.model.graph import connectivity
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.kinds import SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.sections import Sections, UnknownElement, sections_of

LINE = SwitchedElement.LINE
TRAFO = SwitchedElement.TRANSFORMER


def _line(id_: str, a: str, b: str) -> Line:
    return Line(id=id_, from_bus=a, to_bus=b, length_km=1, r_ohm_per_km=0.2, x_ohm_per_km=0.1, max_i_a=200)


@pytest.fixture
def feeder() -> Network:
    """hv ─t─ a ─l1─ b ─l2─ c ═bc═ d ─l3─ e, and l4 (c ─ f) behind a manual open switch.

    Remote: ``th``/``tl`` at both ends of t, ``r1`` at a on l1, ``bc`` between c and d. Manual: ``m2``
    (closed) at b on l2, ``m4`` (open) at f on l4.
    """
    return Network.from_elements(
        [
            Bus(id="hv", vn_kv=20),
            *(Bus(id=b, vn_kv=0.4) for b in "abcdef"),
            Transformer(
                id="t", hv_bus="hv", lv_bus="a", sn_kva=250, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
            ),
            _line("l1", "a", "b"),
            _line("l2", "b", "c"),
            _line("l3", "d", "e"),
            _line("l4", "c", "f"),
            Switch(id="th", bus="hv", element="t", element_type=TRAFO, remote=True),
            Switch(id="tl", bus="a", element="t", element_type=TRAFO, remote=True),
            Switch(id="r1", bus="a", element="l1", element_type=LINE, remote=True),
            Switch(id="m2", bus="b", element="l2", element_type=LINE),
            Switch(id="bc", bus="c", element="d", remote=True),
            Switch(id="m4", bus="f", element="l4", element_type=LINE, normally_closed=False),
            ExternalGrid(id="grid", bus="hv"),
            Load(id="house-b", bus="b", p_kw=10, customers=2),
            Load(id="clinic-c", bus="c", p_kw=30, customers=1, critical=True),
            Load(id="shop-e", bus="e", p_kw=20, customers=3),
            Load(id="spare-e", bus="e", p_kw=50, customers=4, in_service=False),
        ]
    )


@pytest.fixture
def secs(feeder: Network) -> Sections:
    return sections_of(feeder)


def _by_buses(secs: Sections) -> dict[frozenset[str], int]:
    return {s.buses: s.id for s in secs.sections}


def test_remote_switches_split_and_manual_ones_act_by_state(secs: Sections) -> None:
    assert set(_by_buses(secs)) == {
        frozenset({"hv"}),
        frozenset({"a"}),
        frozenset({"b", "c"}),  # manual closed m2 connects
        frozenset({"d", "e"}),
        frozenset({"f"}),  # manual open m4 separates
        frozenset(),  # the transformer between its two remote breakers
    }
    assert len(secs) == 6
    assert secs.source_sections == {secs.section_of_bus["hv"]}


def test_a_branch_between_two_boundary_switches_is_its_own_section(secs: Sections) -> None:
    t = secs.of_element("transformers", "t")
    assert isinstance(t, int)
    assert secs.sections[t].transformers == {"t"}
    assert secs.sections[t].buses == frozenset()
    assert secs.sections[t].switches == ("th", "tl")
    assert secs.sides("th") == (secs.section_of_bus["hv"], t)
    assert secs.sides("tl") == (secs.section_of_bus["a"], t)


def test_a_line_with_one_boundary_switch_lies_on_its_far_side(secs: Sections) -> None:
    bc = secs.section_of_bus["b"]
    assert secs.of_element("lines", "l1") == bc
    assert secs.sides("r1") == (secs.section_of_bus["a"], bc)
    assert "l1" in secs.sections[bc].lines
    # l4 is cut off from f by the open manual switch, so it stays with c
    assert secs.of_element("lines", "l4") == bc


def test_bus_bus_switch_joins_the_sections_of_its_buses(secs: Sections) -> None:
    assert secs.of_element("switches", "bc") == (secs.section_of_bus["c"], secs.section_of_bus["d"])
    assert secs.neighbours(secs.section_of_bus["d"]) == {"bc": secs.section_of_bus["c"]}


def test_elements_at_a_bus_are_in_the_bus_section(secs: Sections) -> None:
    assert secs.of_element("loads", "shop-e") == secs.section_of_bus["e"]
    assert secs.of_element("external_grids", "grid") == secs.section_of_bus["hv"]
    assert secs.of_element("buses", "f") == secs.section_of_bus["f"]


@pytest.mark.parametrize(("table", "element"), [("buses", "zz"), ("lines", "t"), ("switches", "m2"), ("nope", "a")])
def test_unknown_elements_are_refused_with_the_id(secs: Sections, table: str, element: str) -> None:
    with pytest.raises(UnknownElement, match=repr(element)):
        secs.of_element(table, element)


def test_customers_load_and_criticality_per_section(secs: Sections) -> None:
    bc, de, f = (secs.section_of_bus[b] for b in "bdf")
    assert (secs.customers(bc), secs.customers(de), secs.customers(f)) == (3, 3, 0)  # out-of-service load ignored
    assert secs.load_kw(bc) == pytest.approx(40.0)
    assert secs.load_kw(de) == pytest.approx(20.0)
    assert secs.load_kw(bc, {"house-b": 4.5}) == pytest.approx(34.5)  # unlisted loads at rated power
    assert secs.critical(bc) and not secs.critical(de)
    assert secs.sections[de].loads == ("shop-e", "spare-e")


def test_a_custom_boundary_merges_what_it_leaves_out(feeder: Network) -> None:
    secs = sections_of(feeder, boundary=lambda s: s.id == "bc")
    assert set(_by_buses(secs)) == {frozenset({"hv", "a", "b", "c"}), frozenset({"d", "e"}), frozenset({"f"})}


def test_an_out_of_service_boundary_switch_separates_but_bounds_nothing(feeder: Network) -> None:
    off = feeder.with_elements([feeder.switches["bc"].model_copy(update={"in_service": False})])
    secs = sections_of(off)
    assert secs.section_of_bus["c"] != secs.section_of_bus["d"]
    with pytest.raises(UnknownElement):
        secs.sides("bc")


def test_simbench_sections_match_connectivity_with_every_remote_switch_open(
    simbench_net: Callable[[str], pp.pandapowerNet],
) -> None:
    """Independent reference: bus components of the graph with all remote switches opened."""
    base = from_pandapower(simbench_net("1-MVLV-rural-1.108-0-sw"))
    remote = [s.model_copy(update={"remote": True}) for s in base.switches.values() if s.element_type is TRAFO]
    net = base.with_elements(remote)
    secs = sections_of(net)
    conn = connectivity(net, switch_states={s.id: False for s in net.switches.values() if s.remote})
    reference: dict[int, set[str]] = {}
    for bus, label in zip(conn.bus_ids, conn.labels.tolist(), strict=True):
        reference.setdefault(label, set()).add(bus)
    ours = {s.buses for s in secs.sections if s.buses}
    assert ours == {frozenset(group) for group in reference.values()}
    assert sum(secs.customers(s.id) for s in secs.sections) == sum(ld.customers for ld in net.loads.values())
