"""A one-microgrid network (a 10 kW house, a 10 kWh / 5 kW lossless battery behind a PCC) for controller tests."""

from __future__ import annotations

import pytest

from gridmesh.model.elements import Battery, Bus, ExternalGrid, Line, Load, Site, Switch
from gridmesh.model.network import Network


@pytest.fixture()
def microgrid() -> Network:
    line = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_a": 200}
    return Network.from_elements(
        [
            Bus(id="grid", vn_kv=0.4),
            Bus(id="a", vn_kv=0.4),
            ExternalGrid(id="eg", bus="grid"),
            Line(id="l", from_bus="grid", to_bus="a", **line),
            Switch(id="pcc", bus="a", element="l", element_type="line"),
            Load(id="house", bus="a", p_kw=10),
            Battery(id="b", bus="a", e_kwh=10, p_kw=5, soc_init=0.5, eta_charge=1.0, eta_discharge=1.0),
            Site(id="mg", pcc="pcc"),
        ]
    )
