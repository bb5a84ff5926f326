"""Flexible loads: deferral, backlog window and catch-up, by hand."""

from __future__ import annotations

import numpy as np

from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.model.elements import Load


def fleet() -> FlexibleLoads:
    loads = [
        Load(id="house", bus="b", p_kw=5.0),
        Load(id="pump", bus="b", p_kw=100.0, flexible_share=0.5, max_delay_h=2.0),
        Load(id="off", bus="b", p_kw=50.0, flexible_share=0.5, in_service=False),
    ]
    return FlexibleLoads.of(loads)


def test_only_flexible_loads_in_service_are_taken() -> None:
    flex = fleet()
    assert flex.ids == ("pump",)
    assert flex.columns.tolist() == [1]
    assert flex.catch_up_kw.tolist() == [50.0]
    assert flex.backlog_max_kwh.tolist() == [100.0]  # 0.5 × 100 kW × 2 h


def test_deferral_is_limited_by_share_then_by_backlog_room() -> None:
    flex = fleet()
    load = np.array([80.0])
    assert flex.step(np.array([100.0]), load, 1.0).tolist() == [40.0]  # half of 80 kW
    assert flex.step(np.array([100.0]), load, 1.0).tolist() == [40.0]
    assert flex.step(np.array([100.0]), load, 1.0).tolist() == [20.0]  # 100 kWh owed at most
    assert flex.backlog_kwh.tolist() == [100.0]


def test_backlog_is_caught_up_by_itself_when_nobody_asks() -> None:
    flex = fleet()
    flex.step(np.array([30.0]), np.array([80.0]), 1.0)
    assert flex.step(np.array([np.nan]), np.array([80.0]), 0.5).tolist() == [-50.0]  # at the catch-up rate
    assert flex.step(np.array([np.nan]), np.array([80.0]), 0.5).tolist() == [-10.0]  # what is left
    assert flex.backlog_kwh.tolist() == [0.0]
    assert flex.step(np.array([-20.0]), np.array([80.0]), 1.0).tolist() == [0.0]  # nothing owed, nothing to catch up
