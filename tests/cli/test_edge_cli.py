"""``gridmesh edge`` refuses clearly before it connects; ``gridmesh keys edge`` provisions agent keys.

The commands are mounted on an app of their own here, as ``cli/main.py`` mounts them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gridmesh.cli import edge as edge_cli
from gridmesh.cli import keys as keys_cli
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.security.edge_keys import EDGE_PUBLIC_FILE, agent_credentials, edge_file, load_edge_keyring
from gridmesh.security.keys import ensure_keyrings
from gridmesh.telemetry.catalogue import catalogue_of

app = typer.Typer()
app.command(name="edge")(edge_cli.edge)
keys = typer.Typer()
keys.command(name="provision")(keys_cli.provision)
keys.command(name="edge")(edge_cli.provision)
app.add_typer(keys, name="keys")
runner = CliRunner()
BROKER = "mqtt://127.0.0.1:1"  # never reached: every case fails before connecting


def test_an_unknown_site_lists_the_microgrids(small_scenario_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["edge", str(small_scenario_file), "--site", "nope", "--mqtt", BROKER, "--data", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no such site" in result.output and "mg" in result.output


def test_a_site_that_is_not_a_microgrid_is_refused(small_scenario_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["edge", str(small_scenario_file), "--site", "vpp", "--mqtt", BROKER, "--data", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "not a microgrid" in result.output


def test_without_keys_it_says_which_command_provisions_them(small_scenario_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["edge", str(small_scenario_file), "--site", "mg", "--mqtt", BROKER, "--data", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "gridmesh keys edge" in " ".join(result.output.split())


@pytest.mark.slow
def test_keys_edge_provisions_every_microgrid_after_the_device_keys(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    ensure_keyrings(out, catalogue_of(read_scenario(small_scenario_file).network).devices)
    result = runner.invoke(app, ["keys", "edge", str(small_scenario_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ring = load_edge_keyring(out, "mg")
    assert (out / edge_file("mg")).exists() and (out / EDGE_PUBLIC_FILE).exists()
    assert set(agent_credentials(out)) == {"mg"}  # the VPP is no microgrid and has no agent
    assert f"mg: agent key {ring.credential.fingerprint}" in result.output
