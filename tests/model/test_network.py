"""Network tables: building, duplicate ids, derived copies."""

from __future__ import annotations

import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Load
from gridmesh.model.network import Network


def _net() -> Network:
    return Network.from_elements(
        [
            Bus(id="a", vn_kv=0.4),
            Bus(id="b", vn_kv=0.4),
            Line(id="l", from_bus="a", to_bus="b", length_km=0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.1, max_i_a=100),
            ExternalGrid(id="g", bus="a"),
            Load(id="p", bus="b", p_kw=3),
        ],
        name="tiny",
    )


def test_from_elements_sorts_into_tables_in_order() -> None:
    net = _net()
    assert list(net.buses) == ["a", "b"]
    assert net.summary() == {
        "buses": 2,
        "lines": 1,
        "transformers": 0,
        "switches": 0,
        "external_grids": 1,
        "loads": 1,
        "generators": 0,
        "batteries": 0,
        "ev_chargers": 0,
        "sites": 0,
    }
    assert [e.id for e in net.elements()] == ["a", "b", "l", "g", "p"]


def test_duplicate_keeps_first_and_is_recorded() -> None:
    net = Network.from_elements([Bus(id="a", vn_kv=0.4), Bus(id="a", vn_kv=20.0), Load(id="a", bus="a", p_kw=1)])
    assert net.buses["a"].vn_kv == 0.4
    assert net.duplicates == (("buses", "a"),)  # the same id in another table is no duplicate


def test_with_elements_replaces_by_id_and_keeps_the_original() -> None:
    net = _net()
    changed = net.with_elements([Load(id="p", bus="b", p_kw=7), Load(id="q", bus="a", p_kw=1)], name="new")
    assert changed.loads["p"].p_kw == 7
    assert list(changed.loads) == ["p", "q"]
    assert changed.name == "new"
    assert net.loads["p"].p_kw == 3
    assert changed.duplicates == ()


def test_without_removes_only_from_one_table() -> None:
    net = _net().without("loads", ["p", "a"])
    assert not net.loads
    assert "a" in net.buses


def test_unknown_table_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="buses"):
        _net().table("nodes")


def test_tables_are_read_only() -> None:
    net = _net()
    with pytest.raises(TypeError):
        net.buses["c"] = Bus(id="c", vn_kv=0.4)  # type: ignore[index]
