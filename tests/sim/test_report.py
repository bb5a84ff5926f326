"""The HTML study report: one self-contained file with every plot, the scenario and its KPIs."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.self_consumption import SelfConsumption
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.io.simbench import from_simbench
from gridmesh.sim.report import write_report
from gridmesh.sim.study import run_study

IMG_SRC = re.compile(r"<img[^>]*\ssrc='([^']*)'")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lv_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain SimBench LV grid: no sites, no batteries."""
    out = tmp_path_factory.mktemp("report-lv")
    run_study(from_simbench("1-LV-rural1--0-sw", days=2), out=out)
    return write_report(out)


@pytest.fixture(scope="module")
def microgrid_report(small_scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small microgrid scenario: a site, a VPP and a battery, so every plot has data."""
    out = tmp_path_factory.mktemp("report-mg")
    run_study(read_scenario(small_scenario_file), out=out, controller=SelfConsumption())
    return write_report(out)


def _kpis(report: Path) -> dict[str, Any]:
    kpis: dict[str, Any] = json.loads((report.parent / "kpis.json").read_text())
    return kpis


def _assert_self_contained(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    for src in IMG_SRC.findall(text):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC


def test_report_is_written_into_the_study_folder(lv_report: Path) -> None:
    assert lv_report.name == "report.html" and lv_report.is_file()
    assert lv_report.read_text().startswith("<!doctype html>")


def test_report_is_self_contained(lv_report: Path) -> None:
    _assert_self_contained(lv_report.read_text())


def test_plots_are_embedded(lv_report: Path) -> None:
    text = lv_report.read_text()
    assert text.count("<img") >= 5
    assert len(IMG_SRC.findall(text)) == text.count("<img")


def test_header_names_scenario_and_formats_kpis(lv_report: Path) -> None:
    text, kpis = lv_report.read_text(), _kpis(lv_report)
    assert f"<h1>{kpis['scenario']}</h1>" in text
    assert kpis["controller"] in text
    assert f"{kpis['steps']:,} × 15 min" in text
    assert f"{kpis['losses_percent']:.2f} %" in text
    assert f"{100 * kpis['loading']['max_loading']:.1f} %" in text


def test_missing_batteries_and_sites_give_notes(lv_report: Path) -> None:
    text = lv_report.read_text()
    assert "No batteries in this scenario." in text
    assert "No microgrids or sites in this scenario." in text


def test_microgrid_report_shows_every_plot_and_site(microgrid_report: Path) -> None:
    text, kpis = microgrid_report.read_text(), _kpis(microgrid_report)
    _assert_self_contained(text)
    assert text.count("<img") == 9
    for site in kpis["sites"]:
        assert f"<td>{site}</td>" in text
    for battery in kpis["battery_equivalent_cycles"]:
        assert f"<td>{battery}</td>" in text


def _fake_outputs(out: Path, steps: int) -> Path:
    """Study outputs as run_study writes them, without the simulation: NaNs, no batteries, no sites."""
    out.mkdir()
    hours = np.arange(steps) / 4
    load = 50 + 20 * np.sin(2 * np.pi * hours / 24)
    v = 1.0 + 0.02 * np.sin(2 * np.pi * hours / 24)
    series = pd.DataFrame(
        {
            "time": pd.date_range("2016-01-01", periods=steps, freq="15min"),
            "grid_import_kw": load - 10,
            "losses_kw": 0.02 * load,
            "load_kw": load,
            "ev_kw": 0.0,
            "generation_kw": 10.0,
            "gen_pv_kw": 10.0,
            "battery_kw": 0.0,
            "v_min_pu": v - 0.03,
            "v_mean_pu": v,
            "v_max_pu": v + 0.03,
            "max_line_loading": load / 60,
            "max_trafo_loading": load / 150,
            "failed": False,
        }
    )
    series.loc[5:9, ["v_min_pu", "losses_kw"]] = np.nan
    series.to_parquet(out / "timeseries.parquet")
    pd.DataFrame(
        {
            "time": pd.Series(dtype="datetime64[ns]"),
            "battery": pd.Series(dtype=object),
            "p_kw": pd.Series(dtype=float),
            "soc": pd.Series(dtype=float),
        }
    ).to_parquet(out / "batteries.parquet")
    kpis = {
        "scenario": "fake <grid>",
        "controller": "none",
        "start": "2016-01-01T00:00:00",
        "days": steps / 96,
        "steps": steps,
        "hours": steps / 4,
        "failed_steps": 5,
        "losses_kwh": float("nan"),
        "losses_percent": float("nan"),
        "generation_kwh": {"pv": 2.5 * steps},
        "battery_equivalent_cycles": {},
        "voltage": {"v_min_pu": float("nan")},
        "sites": {},
    }
    (out / "kpis.json").write_text(json.dumps(kpis))
    return out


def test_incomplete_outputs_render_with_dashes_and_notes(tmp_path: Path) -> None:
    text = write_report(_fake_outputs(tmp_path / "fake", 192)).read_text()
    _assert_self_contained(text)
    assert "fake &lt;grid&gt;" in text and "fake <grid>" not in text
    assert "5 of 192 steps did not converge" in text
    assert "Losses — – (–" in text
    assert "No branch results." in text and "No batteries in this scenario." in text


def test_a_year_is_resampled_small_and_fast(tmp_path: Path) -> None:
    out = _fake_outputs(tmp_path / "year", 35_136)
    started = time.perf_counter()
    report = write_report(out)
    assert time.perf_counter() - started < 10
    assert report.stat().st_size < 3_000_000
    assert "daily means" in report.read_text()
