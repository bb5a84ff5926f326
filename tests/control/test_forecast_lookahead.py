"""MPC on forecasts: plans read only the past, stay within limits, and land between perfect MPC and idle; the
reserve for forecast error; ``--controller mpc-forecast`` through the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from gridmesh.analytics.forecast import FloatArray, SeasonalNaive
from gridmesh.cli.controllers import CONTROLLERS, ControllerName, build_controller
from gridmesh.cli.main import app
from gridmesh.control.controller import NoControl, Window
from gridmesh.control.forecast_lookahead import (
    ForecastingMpc,
    ForecastMethod,
    forecast_error_by_hour,
    history_before,
    net_load_history,
)
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.control.site_balance import SiteBalance
from gridmesh.devices.battery import BatteryFleet
from gridmesh.errors import GridmeshError
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.network import Network
from gridmesh.optim.dispatch import solve_dispatch
from gridmesh.sim.study import run_study
from gridmesh.sim.twin import StudyTwin


class PastOnly(SeasonalNaive):
    """Same time yesterday, checking every forecast against one made from observations before its issue only."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[pd.DatetimeIndex, pd.DatetimeIndex]] = []  # (issue times, observed times)

    def predict_batch(self, issue_times: pd.DatetimeIndex, horizon_steps: int) -> FloatArray:
        self.calls.append((issue_times, pd.DatetimeIndex(self.observed.index)))
        values = super().predict_batch(issue_times, horizon_steps)
        for i in range(0, len(issue_times), 8):
            past = SeasonalNaive()
            past.fit(self.observed[self.observed.index < issue_times[i]])
            np.testing.assert_array_equal(past.predict(issue_times[i], horizon_steps), values[i])
        return values


def test_history_leaves_the_study_out(small_scenario_file: Path) -> None:
    twin = StudyTwin(read_scenario(small_scenario_file))
    substation, sites = net_load_history(twin)
    assert list(sites) == ["mg"]
    assert len(substation) == twin.scenario.profiles.steps - twin.steps
    assert not substation.index.isin(twin.times).any()
    # the small grid is one microgrid: its net load is the substation's (no EV in the history)
    np.testing.assert_allclose(sites["mg"].to_numpy(), substation.to_numpy(), atol=1e-9)


def test_plans_are_made_on_forecasts_from_the_past(small_scenario_file: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    twin = StudyTwin(scenario)
    substation, sites = net_load_history(twin)
    spies: list[PastOnly] = []

    def make() -> PastOnly:
        spies.append(PastOnly())
        return spies[-1]

    mpc = ForecastingMpc(substation, sites, make=make, horizon_steps=48, sigma={})
    kpis = run_study(scenario, out=tmp_path, controller=mpc).kpis
    assert len(spies) == 2  # substation and "mg"
    for spy in spies:
        issued = pd.DatetimeIndex(np.concatenate([issues.to_numpy() for issues, _ in spy.calls]))
        assert issued.equals(twin.times)  # one issue per re-planning step, in order
        # of the study, observed up to the window's own last step, never the look-ahead beyond it (the
        # history holds the rest of the profile year; the check in PastOnly shows none of it is read)
        assert all(seen[seen.isin(twin.times)].max() <= issues[-1] for issues, seen in spy.calls)
    # the plan saw forecasts, not the truth
    window, _ = twin.window(0, twin.steps)
    truth = SiteBalance().sites(window)[0].net_load_kw
    start = max(mpc.issued)
    forecast = mpc.issued[start][1][: twin.steps - start, 0]
    assert np.abs(forecast - truth[start:]).mean() > 1.0
    assert mpc.stats.solves == 192 and mpc.stats.not_optimal == 0
    assert kpis["battery_balance_error_kwh"] < 1e-9
    assert sum(kpis["control"]["refusals"].values()) <= 2


def test_forecast_mpc_costs_between_perfect_mpc_and_idle(small_scenario_file: Path, tmp_path: Path) -> None:
    """On the small grid the microgrid's evening peak comes with EV charging that no forecast sees (EV
    sessions are random and not in the history), so forecasts recover only part of the perfect MPC's saving."""
    scenario = read_scenario(small_scenario_file)
    forecasting = ForecastingMpc.from_twin(
        StudyTwin(scenario), method=ForecastMethod.GBM, max_iter=50, horizon_steps=48
    )
    costs = {}
    for controller in (forecasting, ModelPredictiveControl(horizon_steps=48), NoControl()):
        kpis = run_study(scenario, out=tmp_path / controller.name, controller=controller).kpis
        assert kpis["battery_balance_error_kwh"] < 1e-9
        costs[controller.name] = kpis["energy_cost_eur"] + kpis["demand_charge_eur"]
    assert costs["mpc"] < costs["mpc-forecast"] < costs["none"]


def test_missing_lags_fall_back_to_the_time_of_day_mean(small_scenario_file: Path) -> None:
    twin = StudyTwin(read_scenario(small_scenario_file))
    substation, sites = net_load_history(twin)
    before = substation.index < twin.times[0] - pd.Timedelta(days=3)  # no yesterday at the study start
    mpc = ForecastingMpc(substation[before], {k: s[before] for k, s in sites.items()}, horizon_steps=8, sigma={})
    window, _ = twin.window(0, 8)
    mpc.forecast(window)
    forecast = mpc.issued[0][0]
    typical = substation[before].groupby(substation[before].index.time).mean()
    np.testing.assert_allclose(forecast, typical.reindex(twin.times[:8].time).to_numpy())


def test_problem_needs_a_forecast_issued_at_its_first_step(small_scenario_file: Path) -> None:
    twin = StudyTwin(read_scenario(small_scenario_file))
    mpc = ForecastingMpc(*net_load_history(twin), horizon_steps=8)
    window, _ = twin.window(0, 16)
    f = mpc.forecast(window)
    mpc.problem(f, twin.fleet, slice(0, 8))
    with pytest.raises(ValueError, match="no forecast was issued for step 3"):
        mpc.problem(f, twin.fleet, slice(3, 11))


def _substation_truth(twin: StudyTwin, first: int, steps: int) -> FloatArray:
    """Loads minus generation from the twin's own profile injections (the study's path, not the history's)."""
    base = twin.injections.window(first, steps)
    return base.load_p_kw.sum(axis=1) - base.gen_p_kw.sum(axis=1)


def test_training_ends_before_the_first_planned_step(small_scenario_file: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    twin = StudyTwin(scenario)
    substation, sites = history_before(scenario, weeks=2)
    steps = 2 * 7 * 96
    assert substation.index[-1] == twin.times[0] - pd.Timedelta(minutes=15)  # ends right before the study
    assert len(substation) == steps and substation.index.is_monotonic_increasing
    np.testing.assert_allclose(substation.to_numpy(), _substation_truth(twin, twin.first_step - steps, steps))
    np.testing.assert_allclose(sites["mg"].to_numpy(), substation.to_numpy(), atol=1e-9)
    # the controller's forecasters were trained on nothing at or after the first planned step
    mpc = ForecastingMpc.from_scenario(scenario, history_weeks=2, method=ForecastMethod.SEASONAL, horizon_steps=8)
    for forecaster in mpc.forecasters.values():
        assert isinstance(forecaster, SeasonalNaive)
        assert forecaster.observed.index.max() < twin.times[0]


def test_history_before_the_first_profile_day_is_the_end_of_the_typical_year(small_scenario_file: Path) -> None:
    scenario = read_scenario(small_scenario_file).with_time(start=datetime(2016, 1, 3), days=1)
    twin = StudyTwin(scenario)
    substation, _ = history_before(scenario, weeks=1)
    assert substation.index[-1] == pd.Timestamp("2016-01-02 23:45")
    assert len(substation) == 7 * 96
    # 2 January 2016 is in the profiles; 27–31 December 2015 are read 52 weeks later, same weekdays
    np.testing.assert_allclose(substation["2016-01-01":].to_numpy(), _substation_truth(twin, 0, 2 * 96))
    wrapped = substation[:"2015-12-31 23:45"]
    later = twin.scenario.profiles.step_of(datetime(2016, 12, 25))
    assert (wrapped.index + pd.Timedelta(weeks=52))[0] == pd.Timestamp("2016-12-25")
    np.testing.assert_allclose(wrapped.to_numpy(), _substation_truth(twin, later, 5 * 96))


def test_a_study_that_leaves_no_history_is_refused_with_what_to_do(small_scenario_file: Path) -> None:
    scenario = read_scenario(small_scenario_file).with_time(start=datetime(2016, 1, 1), days=366)
    with pytest.raises(GridmeshError, match="shorten the study"):
        history_before(scenario)


def test_forecast_error_is_measured_on_the_held_out_week() -> None:
    """Same time yesterday on a daily pattern that jumps by 7 kW at 18:00 on the last day only."""
    times = pd.date_range("2016-03-01", periods=14 * 96, freq="15min")
    values = 10.0 + 5.0 * (times.hour >= 18)
    values = np.where((times >= times[-96]) & (times.hour == 18), values + 7.0, values)
    sigma = forecast_error_by_hour(SeasonalNaive, pd.Series(values, index=times), horizon_steps=4)
    # held out: the last 7 days. Each 18:00 hour holds 4 steps × 4 leads = 16 (issue, step) pairs; only the
    # last day's 16 err, by 7 kW (yesterday said 15, it was 22): RMS = sqrt(16 · 49 / (7 · 16)) = 7 / sqrt(7)
    expected = np.zeros(24)
    expected[18] = 7.0 / np.sqrt(7)
    np.testing.assert_allclose(sigma, expected, atol=1e-9)


def _peak_case(network: Network, reserve: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One battery, 8 h from 12:00 at a flat price: 20 kW, 50 kW from 18:00 to 19:00, forecast exactly
    (same time yesterday on a history of that day), and a forecast error of 5 kW at 18:00 only.

    Returns the LP's substation net load, its planned battery power and the issued forecast, kW.
    """
    history_times = pd.date_range("2016-03-01", periods=3 * 96, freq="15min")
    history = pd.Series(np.where(history_times.hour == 18, 50.0, 20.0), index=history_times)
    sigma = np.zeros(24)
    sigma[18] = 5.0
    mpc = ForecastingMpc(history, {}, horizon_steps=32, sigma={None: sigma}, reserve=reserve)
    times = pd.date_range("2016-03-04 12:00", periods=32, freq="15min")
    fleet = BatteryFleet(
        ids=("b",),
        e_kwh=np.array([100.0]),
        p_kw=np.array([100.0]),
        eta_charge=np.array([0.95]),
        eta_discharge=np.array([0.95]),
        soc_min=np.array([0.1]),
        soc_max=np.array([0.9]),
        soc=np.array([0.5]),
    )
    load = np.where(times.hour == 18, 50.0, 20.0)[:, None]
    flat = TimeOfUseTariff(off_peak_eur_per_kwh=0.3, shoulder_eur_per_kwh=0.3, peak_eur_per_kwh=0.3)
    idle = np.zeros((32, len(network.generators)))  # generation and EV charging play no part here
    window = Window(network, {}, times, 0.25, load, idle, np.zeros((32, len(network.ev_chargers))), fleet, flat)
    problem = mpc.problem(mpc.forecast(window), fleet, slice(0, 32))
    plan = solve_dispatch(problem)
    assert plan.status == "optimal"
    return problem.net_load_kw, plan.battery_kw[:, 0], mpc.issued[0][0]


def test_the_reserve_plans_on_forecast_plus_k_sigma_and_shaves_deeper(small_scenario_file: Path) -> None:
    network = read_scenario(small_scenario_file).network
    peak = slice(24, 28)  # 18:00 – 19:00
    discharged, left = [], []
    for k in (0.0, 0.5, 1.0, 2.0):
        planned, battery_kw, forecast = _peak_case(network, k)
        expected = np.full(32, 20.0)
        expected[peak] = 50.0
        np.testing.assert_allclose(forecast[:32], expected)
        expected[peak] += 5.0 * k  # hand-computed: forecast + k·σ at 18:00, the forecast elsewhere
        np.testing.assert_allclose(planned, expected)
        discharged.append(battery_kw[peak].sum() * 0.25)
        left.append((forecast[:32] - battery_kw)[peak].max())
    assert np.all(np.diff(discharged) > 1e-6)  # more energy kept for the risky hour as k grows
    assert np.all(np.diff(left) < -1e-6)  # and a lower peak left if the load is as forecast


def test_the_live_centre_refuses_mpc_forecast_with_what_to_do() -> None:
    with pytest.raises(typer.BadParameter, match="gridmesh simulate"):
        CONTROLLERS[ControllerName.MPC_FORECAST]()
    assert isinstance(build_controller(ControllerName.MPC), ModelPredictiveControl)


def test_simulate_runs_mpc_forecast_from_the_command_line(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["simulate", str(small_scenario_file), "--out", str(out), "--days", "1", "--controller", "mpc-forecast"]
    )
    assert result.exit_code == 0, result.output
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["battery_balance_error_kwh"] < 1e-9
    assert kpis["steps"] == 96
