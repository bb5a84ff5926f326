"""Studies: every KPI re-derived from the streamed outputs, energy conservation, battery books."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.controller import NoControl
from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.control.volt_var import InverterCurves
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.sim.study import StudyResult, run_study

DT_H = 0.25


@pytest.fixture(scope="module")
def study(small_scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> StudyResult:
    scenario = read_scenario(small_scenario_file)
    return run_study(scenario, out=tmp_path_factory.mktemp("study"), controller=SelfConsumption(), window_steps=40)


def test_outputs_have_one_row_per_step(study: StudyResult) -> None:
    ts = pd.read_parquet(study.out / "timeseries.parquet")
    assert len(ts) == study.steps == 192
    assert ts["time"].is_monotonic_increasing
    assert len(pd.read_parquet(study.out / "sites.parquet")) == 2 * 192
    assert len(pd.read_parquet(study.out / "batteries.parquet")) == 192
    assert json.loads((study.out / "kpis.json").read_text())["steps"] == 192


def test_system_kpis_rederived(study: StudyResult) -> None:
    ts = pd.read_parquet(study.out / "timeseries.parquet")
    k = study.kpis
    consumed = (ts.load_kw + ts.ev_kw).sum() * DT_H
    assert k["energy_consumed_kwh"] == pytest.approx(consumed)
    assert k["losses_kwh"] == pytest.approx(ts.losses_kw.sum() * DT_H)
    assert k["grid_import_kwh"] == pytest.approx(ts.grid_import_kw.clip(lower=0).sum() * DT_H)
    assert k["grid_export_kwh"] == pytest.approx(-ts.grid_import_kw.clip(upper=0).sum() * DT_H)
    assert k["peak_import_kw"] == pytest.approx(ts.grid_import_kw.max())
    assert k["generation_kwh"]["pv"] == pytest.approx(ts.gen_pv_kw.sum() * DT_H)
    renewable = ts.generation_kw.sum() * DT_H
    assert k["renewable_share"] == pytest.approx(renewable / (consumed + k["losses_kwh"]))
    assert k["co2_kg"] == pytest.approx(k["grid_import_kwh"] * 0.380)


def test_energy_is_conserved(study: StudyResult) -> None:
    """Import + generation + battery discharge = consumption + losses, step by step (physics, not books)."""
    ts = pd.read_parquet(study.out / "timeseries.parquet")
    supply = ts.grid_import_kw + ts.generation_kw + ts.battery_kw
    demand = ts.load_kw + ts.ev_kw + ts.losses_kw
    assert np.allclose(supply, demand, atol=1e-6)


def test_battery_books_close(study: StudyResult) -> None:
    batteries = pd.read_parquet(study.out / "batteries.parquet")
    p, soc = batteries.p_kw.to_numpy(), batteries.soc.to_numpy()
    stored = (np.clip(-p, 0, None) * 0.95 - np.clip(p, 0, None) / 0.93) * DT_H
    assert (soc[-1] - 0.5) * 80 == pytest.approx(stored.sum(), abs=1e-9)
    assert study.kpis["battery_balance_error_kwh"] < 1e-9
    assert soc.min() >= 0.1 - 1e-12 and soc.max() <= 0.9 + 1e-12
    assert np.abs(p).max() <= 40 + 1e-9


def test_site_kpis_rederived(study: StudyResult) -> None:
    sites = pd.read_parquet(study.out / "sites.parquet")
    mg = sites[sites.site == "mg"]
    k = study.kpis["sites"]["mg"]
    imported = mg.import_kw.clip(lower=0).sum() * DT_H
    consumed = mg.consumption_kw.sum() * DT_H
    assert k["self_sufficiency"] == pytest.approx(1 - imported / consumed)
    exported = -mg.import_kw.clip(upper=0).sum() * DT_H
    assert k["self_consumption"] == pytest.approx(1 - exported / (mg.generation_kw.sum() * DT_H))
    # The PCC reading is a power-flow result: it differs from the bare balance by the microgrid's losses.
    balance = mg.consumption_kw - mg.generation_kw - mg.battery_kw
    assert np.all(mg.import_kw.to_numpy() >= balance.to_numpy() - 1e-6)
    assert np.allclose(mg.import_kw, balance, atol=5.0)


def test_voltage_and_loading_kpis_rederived(study: StudyResult) -> None:
    buses = pd.read_parquet(study.out / "buses.parquet")
    branches = pd.read_parquet(study.out / "branches.parquet")
    k = study.kpis
    assert k["voltage"]["bus_minutes_outside_band"] == pytest.approx((buses.minutes_below + buses.minutes_above).sum())
    assert k["voltage"]["v_max_pu"] == pytest.approx(buses.v_max_pu.max())
    assert k["loading"]["max_loading"] == pytest.approx(branches.max_loading.max())
    assert all(sum(hist) == 192 for hist in branches.loading_hist)


def test_self_consumption_beats_no_control(study: StudyResult, small_scenario_file: Path, tmp_path: Path) -> None:
    baseline = run_study(read_scenario(small_scenario_file), out=tmp_path, controller=NoControl())
    assert baseline.kpis["battery_discharge_kwh"] == 0.0
    ours, theirs = study.kpis["sites"]["mg"], baseline.kpis["sites"]["mg"]
    assert ours["self_sufficiency"] > theirs["self_sufficiency"] + 0.05
    assert ours["self_consumption"] > theirs["self_consumption"]


@pytest.mark.slow
def test_battery_books_close_over_a_year(small_scenario_file: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    year = scenario.with_time(start=scenario.profiles.start, days=366)
    result = run_study(year, out=tmp_path, controller=SelfConsumption())
    assert result.steps == 35_136
    assert result.kpis["failed_steps"] == 0
    assert result.kpis["battery_balance_error_kwh"] < 1e-6
    ts = pd.read_parquet(tmp_path / "timeseries.parquet")
    assert np.allclose(
        ts.grid_import_kw + ts.generation_kw + ts.battery_kw, ts.load_kw + ts.ev_kw + ts.losses_kw, atol=1e-6
    )


def test_volt_var_study_conserves_energy(small_scenario_file: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small_scenario_file)
    result = run_study(scenario, out=tmp_path, controller=SelfConsumption(), volt_var=InverterCurves())
    assert result.kpis["volt_var"]["unconverged_windows"] == 0
    assert result.kpis["curtailment_kwh"] >= 0.0
    ts = pd.read_parquet(tmp_path / "timeseries.parquet")
    supply = ts.grid_import_kw + ts.generation_kw + ts.battery_kw
    assert np.allclose(supply, ts.load_kw + ts.ev_kw + ts.losses_kw, atol=1e-6)
    assert ts.grid_q_kvar.abs().sum() > 0
