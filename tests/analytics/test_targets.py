"""Forecast targets: aggregation per class, zone and generator kind, with their normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmesh.analytics.targets import TargetKind, forecast_targets, location
from gridmesh.model.elements import Bus, Generator, Load
from gridmesh.model.kinds import GeneratorKind, LoadClass
from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario


def _scenario(*, loads_per_zone: int = 10) -> Scenario:
    index = pd.date_range("2016-01-01", periods=4 * 96, freq="15min")
    ramp = np.linspace(0.0, 1.0, len(index))
    profiles = Profiles.from_frame(
        pd.DataFrame({"house": 0.5 + 0.5 * ramp, "shop": 1.0 - 0.5 * ramp, "sun": ramp, "wind": 1 - ramp}, index=index)
    )
    buses = [
        Bus(id="a", vn_kv=0.4, x=11.4, y=53.6, zone="LV1"),
        Bus(id="b", vn_kv=0.4, x=11.5, y=53.7, zone="LV2"),
    ]
    loads = [
        Load(id=f"h{zone}{i}", bus=zone, p_kw=2.0, load_class=LoadClass.RESIDENTIAL, p_profile="house")
        for zone in ("a", "b")
        for i in range(loads_per_zone)
    ]
    loads += [
        Load(id="shop", bus="b", p_kw=30.0, load_class=LoadClass.COMMERCIAL, p_profile="shop"),
        Load(id="closed", bus="b", p_kw=99.0, load_class=LoadClass.INDUSTRIAL, p_profile="shop", in_service=False),
    ]
    generators = [
        Generator(id="pv1", bus="a", kind=GeneratorKind.PV, p_kw=10.0, profile="sun"),
        Generator(id="pv2", bus="b", kind=GeneratorKind.PV, p_kw=5.0, profile="sun"),
        Generator(id="wt", bus="b", kind=GeneratorKind.WIND, p_kw=100.0, profile="wind"),
    ]
    network = Network.from_elements([*buses, *loads, *generators])
    return Scenario("tiny", network, profiles)


def test_targets_per_class_zone_and_kind() -> None:
    targets = {t.name: t for t in forecast_targets(_scenario())}
    # No industrial target: its only load is out of service; no agricultural load at all.
    assert set(targets) == {"load/residential", "load/commercial", "load/zone/LV2", "load/zone/LV1", "pv", "wind"}
    residential = targets["load/residential"]
    assert residential.kind is TargetKind.LOAD
    assert residential.series.iloc[-1] == pytest.approx(20 * 2.0 * 1.0)
    assert residential.norm_kw == pytest.approx(40.0)  # the peak
    assert targets["load/zone/LV2"].series.iloc[0] == pytest.approx(10 * 2.0 * 0.5 + 30.0)
    pv = targets["pv"]
    assert pv.kind is TargetKind.GENERATION
    assert pv.norm_kw == 15.0  # installed capacity, not the peak
    assert pv.series.iloc[-1] == pytest.approx(15.0)
    assert list(targets)[-2:] == ["pv", "wind"]
    assert len(pv.series) == 4 * 96
    assert residential.seasons == (pd.Timedelta(days=1), pd.Timedelta(days=7))
    assert pv.seasons == (pd.Timedelta(days=1),)


def test_zone_targets_keep_the_largest_areas_only() -> None:
    names = [t.name for t in forecast_targets(_scenario(), zones=1)]
    assert [n for n in names if "zone" in n] == ["load/zone/LV2"]  # more energy (the shop)
    few = [t.name for t in forecast_targets(_scenario(loads_per_zone=3))]
    assert not [n for n in few if "zone" in n]  # 3 or 4 loads are customers, not an area


def test_location_is_the_mean_of_bus_coordinates() -> None:
    assert location(_scenario().network) == pytest.approx((53.65, 11.45))
    assert location(Network.from_elements([Bus(id="x", vn_kv=0.4, x=3500.0, y=120.0)])) is None
    assert location(Network()) is None
