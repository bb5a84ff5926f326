"""Self-consumption: each microgrid's battery is asked for its net load, shared by rating."""

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.controller import NoControl, Window
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.elements import (
    Battery,
    Bus,
    EvCharger,
    ExternalGrid,
    Generator,
    Line,
    Load,
    Site,
    Switch,
)
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites


def network() -> Network:
    line = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_a": 200}
    return Network.from_elements(
        [
            Bus(id="grid", vn_kv=0.4),
            Bus(id="a", vn_kv=0.4),
            Bus(id="b", vn_kv=0.4),
            ExternalGrid(id="eg", bus="grid"),
            Line(id="l1", from_bus="grid", to_bus="a", **line),
            Line(id="l2", from_bus="a", to_bus="b", **line),
            Switch(id="pcc", bus="a", element="l1", element_type="line"),
            Load(id="house", bus="b", p_kw=10),
            Load(id="outside", bus="grid", p_kw=99),
            Generator(id="pv", bus="b", kind="pv", p_kw=30),
            EvCharger(id="ev", bus="a", p_kw=11),
            Battery(id="big", bus="a", e_kwh=100, p_kw=30),
            Battery(id="small", bus="b", e_kwh=50, p_kw=10),
            Site(id="mg", pcc="pcc"),
        ]
    )


def window(load: list[float], gen: list[float], ev: list[float]) -> Window:
    net = network()
    steps = len(load)
    return Window(
        network=net,
        sites=resolve_sites(net),
        times=pd.date_range("2016-01-01", periods=steps, freq="15min"),
        dt_h=0.25,
        load_p_kw=np.column_stack([load, [99.0] * steps]),
        gen_p_kw=np.array(gen)[:, None],
        ev_p_kw=np.array(ev)[:, None],
        batteries=BatteryFleet.of(list(net.batteries.values())),
    )


def test_requests_are_net_load_split_by_rating() -> None:
    w = window(load=[10.0, 5.0], gen=[2.0, 25.0], ev=[0.0, 4.0])
    requests = SelfConsumption().plan(w).setpoint_kw
    # step 0: deficit 8 kW → 6 + 2; step 1: surplus 16 kW → charge 12 + 4 (the load outside is ignored)
    assert requests == pytest.approx(np.array([[6.0, 2.0], [-12.0, -4.0]]))


def test_no_control_requests_nothing() -> None:
    requests = NoControl().plan(window([1.0], [0.0], [0.0])).setpoint_kw
    assert np.isnan(requests).all()
