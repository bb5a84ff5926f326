"""SimBench grids and their yearly profiles, read offline from the simbench package."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandapower as pp
import pytest

from gridmesh.errors import ScenarioError
from gridmesh.model.io.simbench import (
    check_code,
    from_simbench,
    profiles_of,
    simbench_codes,
    simbench_net,
    year_days,
)
from gridmesh.model.kinds import GeneratorKind, LoadClass
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario
from gridmesh.model.validation import validate_scenario

CODE = "1-LV-rural1--0-sw"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return from_simbench(CODE, days=2.0)


@pytest.fixture(scope="module")
def profiles(simbench_net: Callable[[str], pp.pandapowerNet]) -> Profiles:
    return profiles_of(simbench_net(CODE))


def test_codes_include_the_reference_grids() -> None:
    codes = simbench_codes()
    assert {"1-LV-rural1--0-sw", "1-MV-rural--0-sw", "1-MVLV-rural-all-0-sw"} <= set(codes)


def test_known_code_has_no_issue() -> None:
    assert check_code(CODE) == []


def test_unknown_code_names_where_and_suggests_close_codes() -> None:
    (issue,) = check_code("1-LV-rural1--0-sx", where="profiles")
    assert (issue.element, issue.field) == ("profiles", "simbench")
    assert "unknown SimBench code '1-LV-rural1--0-sx'" in issue.problem
    assert "1-LV-rural1--0-sw" in issue.fix


def test_unknown_code_raises_scenario_error() -> None:
    with pytest.raises(ScenarioError) as exc:
        simbench_net("no-such-grid")
    assert [(i.element, i.field) for i in exc.value.issues] == [("base", "simbench")]


def test_profiles_are_a_leap_year_of_quarter_hours(profiles: Profiles) -> None:
    assert profiles.steps == 35_136
    assert profiles.resolution == timedelta(minutes=15)
    assert profiles.start == datetime(2016, 1, 1)
    assert profiles.end == datetime(2017, 1, 1)
    assert year_days(profiles) == 366
    assert {"H0-A_pload", "H0-A_qload", "PV5"} <= set(profiles.names)
    assert np.isfinite(profiles.values).all()


def test_profiles_are_normalised(profiles: Profiles) -> None:
    pv = profiles.values[:, profiles.names.index("PV5")]
    assert pv.min() >= 0.0
    assert 0.5 < pv.max() <= 1.0
    assert pv[:24].max() == 0.0  # first six hours of 1 January: dark


def test_scenario_of_a_code(scenario: Scenario) -> None:
    assert scenario.name == CODE
    assert scenario.network.name == CODE
    assert scenario.time.start == datetime(2016, 1, 1)
    assert scenario.steps == 2 * 96
    assert validate_scenario(scenario) == []  # every load and generator profile is in the table


def test_simbench_elements_get_classes_kinds_and_zones(scenario: Scenario) -> None:
    net = scenario.network
    assert net.summary()["buses"] == 15
    assert {b.zone for b in net.buses.values() if b.vn_kv < 1} == {"LV1.101"}
    assert {g.kind for g in net.generators.values()} == {GeneratorKind.PV}
    classes = {load.load_class for load in net.loads.values()}
    assert LoadClass.RESIDENTIAL in classes
    assert LoadClass.AGRICULTURAL in classes  # L-profiles: farms
    for load in net.loads.values():
        assert load.p_profile is not None
        assert load.p_profile.endswith("_pload")
        assert (
            load.load_class
            is {"H": LoadClass.RESIDENTIAL, "G": LoadClass.COMMERCIAL, "L": LoadClass.AGRICULTURAL}[load.p_profile[0]]
        )
