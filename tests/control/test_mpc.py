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
    limits = mpc.network_limits(window, mpc.forecast(window))
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
    mpc = ModelPredictiveControl(monitored_per_site=3, prune_limits=False)
    f = mpc.forecast(window)
    full = mpc.network_limits(window, f)
    pruned = ModelPredictiveControl(monitored_per_site=3).network_limits(window, f)
    assert full is not None
    # batteries swing ±rating, each generator group down to zero, each flexible group by what it may shift
    swing = np.concatenate(
        [window.batteries.p_kw, f.gen_available_kw.max(axis=0, initial=0.0), f.flex_defer_max_kw.max(axis=0)]
    )
    assert full.d_dp.shape[1] == swing.size
    reach = np.abs(full.d_dp) @ swing
    can_bind = (full.base.max(axis=0) + reach > full.upper) | (full.base.min(axis=0) - reach < full.lower)
    kept = () if pruned is None else pruned.names
    assert kept == tuple(n for n, keep in zip(full.names, can_bind, strict=True) if keep)


FLEXIBLE_PUMP = """
  loads:
    - {id: pump, bus: LV1.101 Bus 11, p_kw: 40, flexible_share: 0.8, max_delay_h: 4, p_profile: L2-A_pload}
"""


def test_mpc_defers_flexible_load_out_of_the_microgrid_peak(small_scenario_file: Path, tmp_path: Path) -> None:
    text = small_scenario_file.read_text()
    without = tmp_path / "without.yaml"
    without.write_text(text.replace("elements:\n", "elements:\n" + FLEXIBLE_PUMP.replace("flexible_share: 0.8, ", "")))
    flexible = tmp_path / "flexible.yaml"
    flexible.write_text(text.replace("elements:\n", "elements:\n" + FLEXIBLE_PUMP))
    fixed = run_study(
        read_scenario(without), out=tmp_path / "fixed", controller=ModelPredictiveControl(horizon_steps=48)
    )
    mpc = ModelPredictiveControl(horizon_steps=48)
    shifted = run_study(read_scenario(flexible), out=tmp_path / "shifted", controller=mpc)
    assert mpc.stats.not_optimal == 0
    ours, base = shifted.kpis, fixed.kpis
    assert ours["deferred_load_kwh"] > 1.0
    # the same energy is consumed: what was deferred was caught up (up to what is still owed at the end)
    assert ours["energy_served_kwh"] + ours["flexible_backlog_kwh"] == pytest.approx(
        base["energy_served_kwh"], rel=1e-6
    )
    assert ours["sites"]["mg"]["peak_import_kw"] < base["sites"]["mg"]["peak_import_kw"] - 1.0
