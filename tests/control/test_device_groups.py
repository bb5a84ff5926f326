"""Flexible loads and curtailable generators grouped per microgrid: sums and splits by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.controller import Window
from gridmesh.control.device_groups import DeviceGroups
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.model.elements import Bus, ExternalGrid, Generator, Line, Load, Site, Switch
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites


@pytest.fixture()
def window() -> Window:
    line = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_a": 200}
    net = Network.from_elements(
        [
            Bus(id="grid", vn_kv=0.4),
            Bus(id="a", vn_kv=0.4),
            ExternalGrid(id="eg", bus="grid"),
            Line(id="l", from_bus="grid", to_bus="a", **line),
            Switch(id="pcc", bus="a", element="l", element_type="line"),
            Load(id="pump-in", bus="a", p_kw=20, flexible_share=0.5),
            Load(id="house", bus="a", p_kw=5),
            Load(id="pump-out", bus="grid", p_kw=40, flexible_share=0.25),
            Generator(id="pv-in", bus="a", kind="pv", p_kw=10),
            Generator(id="pv-in-2", bus="a", kind="pv", p_kw=30),
            Generator(id="hydro", bus="grid", kind="micro_hydro", p_kw=10, curtailable=False),
            Site(id="mg", pcc="pcc"),
        ]
    )
    steps = 2
    return Window(
        net,
        resolve_sites(net),
        pd.date_range("2016-01-01", periods=steps, freq="15min"),
        0.25,
        np.tile([20.0, 5.0, 40.0], (steps, 1)),
        np.tile([4.0, 12.0, 10.0], (steps, 1)),
        np.zeros((steps, 0)),
        BatteryFleet.of([]),
        flexible=FlexibleLoads.of(list(net.loads.values())),
    )


def test_devices_are_grouped_by_microgrid_with_the_rest_apart(window: Window) -> None:
    groups = DeviceGroups.of(window, ["mg"])
    assert groups.flex_site.tolist() == [-1, 0]  # the rest of the grid, then the microgrid
    assert groups.flex_group.tolist() == [1, 0]  # pump-in is in mg, pump-out outside
    assert groups.gen_columns.tolist() == [0, 1]  # hydro may not be curtailed
    assert groups.gen_site.tolist() == [0]
    flexible = window.flexible
    assert flexible is not None
    defer = flexible.defer_max_kw(window.load_p_kw[:, flexible.columns])
    np.testing.assert_allclose(groups.sum_flex(defer), [[10.0, 10.0]] * 2)  # 25 % of 40 kW; 50 % of 20 kW
    np.testing.assert_allclose(groups.sum_gen(window.gen_p_kw), [[16.0]] * 2)


def test_a_group_decision_is_split_by_what_each_device_can_do(window: Window) -> None:
    groups = DeviceGroups.of(window, ["mg"])
    curtail = groups.split_gen(np.array([[8.0]]), window.gen_p_kw[:1], 3)
    np.testing.assert_allclose(curtail, [[2.0, 6.0, 0.0]])  # 4 : 12 of the available power
    # flexible devices: pump-in (group 1, the microgrid), pump-out (group 0, the rest of the grid)
    shift = groups.split_flex(
        np.array([-3.0, 6.0]), defer_max=np.array([10.0, 10.0]), catch_up_max=np.array([0.0, 5.0])
    )
    np.testing.assert_allclose(shift, [6.0, -3.0])
    # a device that owes nothing cannot catch up: the group's catch-up has nobody to go to
    nothing = groups.split_flex(np.array([-3.0, 6.0]), defer_max=np.array([10.0, 10.0]), catch_up_max=np.zeros(2))
    np.testing.assert_allclose(nothing, [6.0, 0.0])
