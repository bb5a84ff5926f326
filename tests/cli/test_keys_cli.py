"""``gridmesh keys provision`` and ``gridmesh keys list`` on a small SimBench microgrid scenario."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from gridmesh.cli.keys import app
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.security.keys import CENTRE_FILE, FIELD_FILE, CentreKeyring, FieldKeyring, KeyAlgorithm
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of

runner = CliRunner()


def test_provision_then_list(small_scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(out), "--hmac-kinds", "meter"])
    assert result.exit_code == 0, result.output
    catalogue = catalogue_of(read_scenario(small_scenario_file).network)
    field_ring, centre_ring = FieldKeyring.load(out / FIELD_FILE), CentreKeyring.load(out / CENTRE_FILE)
    assert set(field_ring.secrets) == set(centre_ring.credentials) == set(catalogue.devices)
    for device, spec in catalogue.devices.items():
        expected = KeyAlgorithm.HMAC_SHA256 if spec.kind is DeviceKind.METER else KeyAlgorithm.ED25519
        assert field_ring.secrets[device].alg is expected
        assert field_ring.secrets[device].credential() == centre_ring.credentials[device]
    assert field_ring.centre_public == centre_ring.centre_public
    for name in (FIELD_FILE, CENTRE_FILE):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    meters = sum(d.kind is DeviceKind.METER for d in catalogue.devices.values())
    assert f"{len(catalogue)} new key(s), 0 kept" in result.output
    assert f"{meters} hmac-sha256" in result.output

    listed = runner.invoke(app, ["list", str(out), "--json"])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.output)
    assert len(document["devices"]) == len(catalogue)
    first = document["devices"][0]
    credential = centre_ring.credentials[first["device"]]
    assert first["fingerprint"] == credential.fingerprint and first["alg"] == credential.alg.value
    assert document["centre"]["device"] == "centre"
    secrets_text = {s.secret.hex() for s in field_ring.secrets.values()}
    assert not any(secret in listed.output for secret in secrets_text)

    table = runner.invoke(app, ["list", str(out)])
    assert table.exit_code == 0 and f"{len(catalogue)} device key(s)" in table.output


def test_provision_again_keeps_keys_unless_forced(small_scenario_file: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(tmp_path)]).exit_code == 0
    before = CentreKeyring.load(tmp_path / CENTRE_FILE)
    again = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(tmp_path)])
    assert again.exit_code == 0 and f"0 new key(s), {len(before.credentials)} kept" in again.output
    assert CentreKeyring.load(tmp_path / CENTRE_FILE) == before
    forced = runner.invoke(app, ["provision", str(small_scenario_file), "--out", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    after = CentreKeyring.load(tmp_path / CENTRE_FILE)
    assert set(after.credentials) == set(before.credentials)
    assert after.command_secret != before.command_secret


def test_errors_exit_2_and_say_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", str(tmp_path)])
    assert result.exit_code == 2
    assert "gridmesh keys provision" in result.output
    (tmp_path / CENTRE_FILE).write_text("{not json")
    (tmp_path / FIELD_FILE).write_text("{}")
    corrupt = runner.invoke(app, ["list", str(tmp_path)])
    assert corrupt.exit_code == 2 and "cannot be read" in corrupt.output
