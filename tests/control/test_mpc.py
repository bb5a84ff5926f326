"""The MPC controller in a study: plans within limits, beats doing nothing on the costs it optimises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridmesh.control.controller import NoControl
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.sim.study import run_study
from gridmesh.sim.twin import StudyTwin


def test_mpc_cuts_the_microgrid_peak_and_cost(small_scenario_file: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    mpc = ModelPredictiveControl(horizon_steps=48)
    ours = run_study(scenario, out=tmp_path / "mpc", controller=mpc).kpis
    base = run_study(scenario, out=tmp_path / "none", controller=NoControl()).kpis
    assert mpc.stats.solves == 192
    assert mpc.stats.not_optimal == 0
    assert ours["sites"]["mg"]["peak_import_kw"] < base["sites"]["mg"]["peak_import_kw"] - 5.0
    cost = ours["energy_cost_eur"] + ours["demand_charge_eur"]
    assert cost < base["energy_cost_eur"] + base["demand_charge_eur"]
    assert ours["battery_balance_error_kwh"] < 1e-9
    # the plan respects what the safety layer enforces: nothing (or only rounding) is refused
    assert sum(ours["control"]["refusals"].values()) <= 2


def test_mpc_needs_a_lookahead() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ModelPredictiveControl(horizon_steps=0)


def test_network_limits_watch_microgrid_buses_and_never_demand_more_than_idle(small_scenario_file: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    twin = StudyTwin(scenario)
    window, _ = twin.window(0, 96)
    mpc = ModelPredictiveControl(monitored_per_site=3, prune_limits=False)
    limits = mpc.network_limits(window)
    assert limits is not None
    microgrid = twin.sites["mg"].buses
    assert all(name.removeprefix("v ") in microgrid for name in limits.names)
    assert 3 <= len(limits.names) <= 6
    assert np.all(limits.upper >= limits.base.max(axis=0))
    assert np.all(limits.lower <= limits.base.min(axis=0))
    # discharging the battery raises the voltages it can see
    assert np.all(limits.d_dp[:, 0] > 0)


def test_network_aware_mpc_adds_no_voltage_violation(small_scenario_file: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    ours = run_study(scenario, out=tmp_path / "mpc", controller=ModelPredictiveControl(horizon_steps=48)).kpis
    base = run_study(scenario, out=tmp_path / "none", controller=NoControl()).kpis
    assert ours["voltage"]["bus_minutes_outside_band"] <= base["voltage"]["bus_minutes_outside_band"]
    assert ours["voltage"]["v_max_pu"] <= max(base["voltage"]["v_max_pu"], 1.1) + 1e-4


def test_limits_no_dispatch_can_reach_are_left_out(small_scenario_file: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    twin = StudyTwin(scenario)
    window, _ = twin.window(0, 96)
    full = ModelPredictiveControl(monitored_per_site=3, prune_limits=False).network_limits(window)
    pruned = ModelPredictiveControl(monitored_per_site=3).network_limits(window)
    assert full is not None
    reach = np.abs(full.d_dp) @ window.batteries.p_kw
    can_bind = (full.base.max(axis=0) + reach > full.upper) | (full.base.min(axis=0) - reach < full.lower)
    kept = () if pruned is None else pruned.names
    assert kept == tuple(n for n, keep in zip(full.names, can_bind, strict=True) if keep)
