"""``gridmesh ocpp provision``: passwords for every charger, kept on a second run; TLS files for profiles 2–3."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.adapters.ocpp import PasswordStore, load_charger_secrets
from gridmesh.cli import ocpp as ocpp_cli
from gridmesh.cli.ocpp import app
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario

runner = CliRunner()


@pytest.fixture(scope="module")
def small(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


@pytest.fixture(autouse=True)
def loaded_once(small: Scenario, small_scenario_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario is read once per module (SimBench takes seconds); a path ending in `bare.yaml` is the
    same grid without its chargers."""

    def load(name: str) -> Scenario:
        if name.endswith("bare.yaml"):
            return dataclasses.replace(small, network=small.network.without("ev_chargers", small.network.ev_chargers))
        assert name == str(small_scenario_file)
        return small

    monkeypatch.setattr(ocpp_cli.scenario_cli, "load", load)


def test_provision_writes_passwords_and_hashes_and_keeps_them(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 new, 0 kept" in result.output
    secrets = load_charger_secrets(out / "ocpp-charger-secrets.json")
    assert list(secrets) == ["ev"] and len(secrets["ev"]) == 40
    store = PasswordStore.load(out / "ocpp-passwords.json")
    assert store.verify("ev", secrets["ev"]) and not store.verify("ev", "x" * 40)
    assert secrets["ev"] not in (out / "ocpp-passwords.json").read_text()  # hashes only for the centre
    for name in ("ocpp-charger-secrets.json", "ocpp-passwords.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    again = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(out)])
    assert again.exit_code == 0 and "0 new, 1 kept" in again.output
    assert load_charger_secrets(out / "ocpp-charger-secrets.json") == secrets
    assert not (out / "ocpp-tls").exists()


def test_profile_3_adds_a_ca_a_server_and_a_client_certificate(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(out), "--profile", "3"])
    assert result.exit_code == 0, result.output
    tls = out / "ocpp-tls"
    assert {p.name for p in tls.iterdir()} >= {"ca.crt", "ca.key", "server.crt", "server.key", "chargers"}
    assert {p.name for p in (tls / "chargers").iterdir()} == {"ev.crt", "ev.key"}
    assert stat.S_IMODE((tls / "chargers" / "ev.key").stat().st_mode) == 0o600
    assert json.loads((out / "ocpp-passwords.json").read_text())  # passwords too (profiles 1–2 use them)


def test_a_scenario_without_chargers_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["provision", str(tmp_path / "bare.yaml"), "--out", str(tmp_path / "keys")])
    assert result.exit_code != 0
    assert "has no in-service EV chargers" in result.output
