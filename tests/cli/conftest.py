"""A SimBench LV grid written by `gridmesh scenario from-simbench`, shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.main import app

LV = "1-LV-rural1--0-sw"


@pytest.fixture(scope="session")
def lv_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lv") / "lv.yaml"
    result = CliRunner().invoke(app, ["scenario", "from-simbench", LV, "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path
