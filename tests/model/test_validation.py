"""Cross-element validation: every problem is returned at once, naming element and field."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import (
    Bus,
    Element,
    ExternalGrid,
    Generator,
    Line,
    Load,
    Site,
    Switch,
    Transformer,
)
from gridmesh.model.kinds import GeneratorKind, SiteLevel, SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario, TimeRange
from gridmesh.model.validation import assert_valid, validate_network, validate_scenario


def _line(id_: str, a: str, b: str) -> Line:
    return Line(id=id_, from_bus=a, to_bus=b, length_km=0.2, r_ohm_per_km=0.2, x_ohm_per_km=0.1, max_i_a=200)


def _base() -> list[Element]:
    """mv ─t─ a ─l1─ b ─l2─ c, with switch ``pcc`` at a on l1: a microgrid of b and c behind it."""
    return [
        Bus(id="mv", vn_kv=20),
        Bus(id="a", vn_kv=0.4),
        Bus(id="b", vn_kv=0.4),
        Bus(id="c", vn_kv=0.4),
        Transformer(
            id="t", hv_bus="mv", lv_bus="a", sn_kva=250, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
        ),
        _line("l1", "a", "b"),
        _line("l2", "b", "c"),
        Switch(id="pcc", bus="a", element="l1", element_type=SwitchedElement.LINE),
        ExternalGrid(id="grid", bus="mv"),
        Load(id="home", bus="c", p_kw=5, p_profile="H0"),
        Generator(id="pv", bus="b", kind=GeneratorKind.PV, p_kw=10, profile="PV"),
        Site(id="mg", pcc="pcc"),
        Site(id="vpp", level=SiteLevel.VPP, members=("mg",), assets=("pv",)),
    ]


def _issues_by_owner(issues: list[Issue]) -> set[tuple[str, str]]:
    return {(i.element, i.field) for i in issues}


def test_base_network_is_valid() -> None:
    assert validate_network(Network.from_elements(_base())) == []


@pytest.mark.parametrize(
    ("extra", "owner", "field", "words"),
    [
        ([Bus(id="a", vn_kv=0.4)], "buses[a]", "id", "duplicate id"),
        ([_line("l9", "b", "zz")], "lines[l9]", "to_bus", "unknown bus 'zz'"),
        ([_line("l9", "b", "b")], "lines[l9]", "to_bus", "same bus"),
        (
            [
                Transformer(
                    id="t9", hv_bus="nope", lv_bus="a", sn_kva=1, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
                )
            ],
            "transformers[t9]",
            "hv_bus",
            "unknown bus 'nope'",
        ),
        ([Load(id="x", bus="nope", p_kw=1)], "loads[x]", "bus", "unknown bus"),
        (
            [Switch(id="s9", bus="a", element="l9", element_type=SwitchedElement.LINE)],
            "switches[s9]",
            "element",
            "unknown line 'l9'",
        ),
        (
            [Switch(id="s9", bus="c", element="l1", element_type=SwitchedElement.LINE)],
            "switches[s9]",
            "bus",
            "not an end of 'l1'",
        ),
        ([Bus(id="lonely", vn_kv=0.4)], "buses[lonely]", "id", "dangling bus"),
    ],
)
def test_reference_and_topology_problems(extra: list[Element], owner: str, field: str, words: str) -> None:
    issues = validate_network(Network.from_elements([*_base(), *extra]))
    assert [(i.element, i.field) for i in issues] == [(owner, field)]
    assert words in issues[0].problem
    assert issues[0].fix


@pytest.mark.parametrize(
    ("replace", "owner", "field", "words"),
    [
        (
            [
                Transformer(
                    id="t", hv_bus="mv", lv_bus="a", sn_kva=250, vn_hv_kv=10, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
                )
            ],
            "transformers[t]",
            "hv_bus",
            "rated 10.0 kV but bus 'mv' is 20.0 kV",
        ),
        ([Bus(id="c", vn_kv=0.23)], "lines[l2]", "to_bus", "joins 0.4 kV and 0.23 kV"),
        ([Site(id="mg")], "sites[mg]", "pcc", "needs a point of common coupling"),
        ([Site(id="mg", pcc="l1")], "sites[mg]", "pcc", "not a switch"),
        ([Site(id="mg", pcc="sw-x")], "sites[mg]", "pcc", "'sw-x' is unknown"),
        ([Site(id="mg", pcc="pcc", buses=("b", "q"))], "sites[mg]", "buses", "unknown bus 'q'"),
        (
            [
                Switch(id="pcc", bus="mv", element="t", element_type=SwitchedElement.TRANSFORMER),
                Site(id="mg", pcc="pcc"),
                Transformer(
                    id="t2", hv_bus="mv", lv_bus="a", sn_kva=250, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
                ),
            ],
            "sites[mg]",
            "pcc",
            "separates no buses",
        ),
        ([Site(id="vpp", level=SiteLevel.VPP)], "sites[vpp]", "members", "needs members or assets"),
        ([Site(id="vpp", level=SiteLevel.VPP, members=("nope",))], "sites[vpp]", "members", "unknown site"),
        (
            [
                Site(id="vpp", level=SiteLevel.GROUP, members=("g3",)),
                Site(id="g3", level=SiteLevel.VPP, members=("mg",)),
            ],
            "sites[vpp]",
            "members",
            "not below 2",
        ),
        ([Site(id="vpp", level=SiteLevel.VPP, assets=("boiler",))], "sites[vpp]", "assets", "unknown asset"),
    ],
)
def test_voltage_and_site_problems(replace: list[Element], owner: str, field: str, words: str) -> None:
    issues = validate_network(Network.from_elements(_base()).with_elements(replace))
    assert [(i.element, i.field) for i in issues] == [(owner, field)]
    assert words in issues[0].problem


def test_every_problem_is_returned_at_once() -> None:
    """A dangling bus must not hide a wrong PCC or a wrong transformer rating (the user fixes all in one go)."""
    net = Network.from_elements(_base()).with_elements(
        [
            Bus(id="lonely", vn_kv=0.4),
            Site(id="mg", pcc="l2"),
            Transformer(
                id="t", hv_bus="mv", lv_bus="a", sn_kva=250, vn_hv_kv=10, vn_lv_kv=0.4, vk_percent=4, vkr_percent=1
            ),
            Load(id="home", bus="c", p_kw=5, p_profile="H0"),
            Load(id="home2", bus="gone", p_kw=5),
        ]
    )
    no_refs = net.without("loads", ["home2"])
    assert _issues_by_owner(validate_network(no_refs)) == {
        ("buses[lonely]", "id"),
        ("sites[mg]", "pcc"),
        ("transformers[t]", "hv_bus"),
    }
    # A broken reference makes voltage and topology checks meaningless, so those wait until it is fixed;
    # a PCC that is no switch at all is still reported.
    assert _issues_by_owner(validate_network(net)) == {
        ("buses[lonely]", "id"),
        ("loads[home2]", "bus"),
        ("sites[mg]", "pcc"),
    }


def test_without_a_slack_no_pcc_is_blamed() -> None:
    net = Network.from_elements(_base()).without("external_grids", ["grid"])
    assert _issues_by_owner(validate_network(net)) == {("external_grids", "-")}


def _profiles(names: tuple[str, ...] = ("H0", "PV"), steps: int = 96) -> Profiles:
    return Profiles(datetime(2016, 1, 1), timedelta(minutes=15), names, np.ones((steps, len(names)), dtype=np.float32))


def test_valid_scenario() -> None:
    scenario = Scenario("ok", Network.from_elements(_base()), _profiles(), TimeRange(datetime(2016, 1, 1), 1.0))
    assert validate_scenario(scenario) == []
    assert_valid(scenario)  # quietly


def test_scenario_problems_are_all_collected_and_raised() -> None:
    values = np.ones((96, 1), dtype=np.float32)
    values[5, 0] = np.nan
    profiles = Profiles(datetime(2016, 1, 1), timedelta(minutes=15), ("PV",), values)
    net = Network.from_elements(_base()).with_elements(
        [
            Load(id="home", bus="c", p_kw=5, p_profile="H0", q_profile="H0q"),
            Bus(id="lonely", vn_kv=0.4),
        ]
    )
    scenario = Scenario("bad", net, profiles, TimeRange(datetime(2016, 1, 1), 2.0))
    expected = {
        ("buses[lonely]", "id"),
        ("loads[home]", "p_profile"),
        ("loads[home]", "q_profile"),
        ("profiles[PV]", "values"),
        ("time", "days"),
    }
    assert _issues_by_owner(validate_scenario(scenario)) == expected
    with pytest.raises(ScenarioError) as exc:
        assert_valid(scenario)
    assert _issues_by_owner(list(exc.value.issues)) == expected
    assert "5 problem(s)" in str(exc.value)
    assert "buses[lonely]: id: dangling bus" in str(exc.value)


def test_unknown_generator_profile() -> None:
    scenario = Scenario("g", Network.from_elements(_base()), _profiles(("H0",)), TimeRange(datetime(2016, 1, 1), 1.0))
    assert _issues_by_owner(validate_scenario(scenario)) == {("generators[pv]", "profile")}
