"""`gridmesh token create | list | revoke`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmesh.cli.token import app
from gridmesh.security.tokens import Role, store_in

runner = CliRunner()


def test_create_list_revoke(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = runner.invoke(app, ["create", "--role", "operator", "--name", "control-room", "--data", data])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("gm_")
    principal = store_in(Path(data)).verify(token)
    assert principal is not None and principal.role is Role.OPERATOR and principal.name == "control-room"

    listed = runner.invoke(app, ["list", "--data", data, "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["name"], r["role"], r["revoked"]) for r in rows] == [
        (principal.token_id, "control-room", "operator", False)
    ]
    assert token not in listed.stdout

    table = runner.invoke(app, ["list", "--data", data])
    assert "control-room" in table.stdout and "active" in table.stdout

    revoked = runner.invoke(app, ["revoke", principal.token_id, "--data", data])
    assert revoked.exit_code == 0 and f"revoked {principal.token_id}" in revoked.stdout
    assert store_in(Path(data)).verify(token) is None


def test_errors_exit_2_with_a_hint(tmp_path: Path) -> None:
    data = str(tmp_path)
    bad_role = runner.invoke(app, ["create", "--role", "root", "--name", "x", "--data", data])
    assert bad_role.exit_code == 2 and "viewer" in bad_role.output
    unknown = runner.invoke(app, ["revoke", "nope", "--data", data])
    assert unknown.exit_code == 2 and "gridmesh token list" in unknown.output
    empty = runner.invoke(app, ["list", "--data", data])
    assert empty.exit_code == 0 and "gridmesh token create" in empty.output


def test_default_data_folder_is_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    created = runner.invoke(app, ["create", "--role", "viewer", "--name", "wallboard"])
    assert created.exit_code == 0
    assert (tmp_path / "gridmesh-data" / "tokens.json").exists()
