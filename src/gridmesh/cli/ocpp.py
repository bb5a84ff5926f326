"""``gridmesh ocpp provision``: passwords (and TLS certificates) for a scenario's OCPP chargers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gridmesh.adapters.ocpp import SecurityProfile, provision_passwords, registry_from_network
from gridmesh.adapters.ocpp.auth import HASH_FILE, SECRET_FILE, CredentialError
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console
from gridmesh.services.ev_service import TLS_FOLDER, ocpp_tls_files

app = typer.Typer(help="OCPP chargers: credentials for the central system and the stations.", no_args_is_help=True)


@app.callback()
def ocpp() -> None:
    """OCPP chargers: credentials for the central system and the stations."""


@app.command()
def provision(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    out: Annotated[Path, typer.Option("--out", help="keys folder (what `gridmesh run/centre/field --keys` read)")],
    profile: Annotated[
        int,
        typer.Option(
            "--profile",
            min=1,
            max=3,
            help="security profile: 2 adds a CA and the central system's TLS certificate, 3 also one "
            "client certificate per charger",
        ),
    ] = 1,
) -> None:
    """Give every charger without one a random password; existing chargers keep theirs.

    The centre needs ocpp-passwords.json (salted hashes); the stations (or `gridmesh field`) need
    ocpp-charger-secrets.json (the passwords) — both are written 0600.
    """
    loaded = scenario_cli.load(scenario)
    registry = registry_from_network(loaded.network)
    if not registry:
        raise typer.BadParameter(f"{loaded.network.name} has no in-service EV chargers", param_hint="SCENARIO")
    out.mkdir(parents=True, exist_ok=True)
    try:
        fresh = provision_passwords(list(registry), out)
    except CredentialError as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from exc
    files = [out / HASH_FILE, out / SECRET_FILE]
    if profile > 1:
        ocpp_tls_files(out, list(registry), client_certificates=profile == SecurityProfile(3))
        files.append(out / TLS_FOLDER)
    table = Table(title=f"OCPP chargers of {loaded.network.name}")
    for column in ("charger", "bus", "site", "password"):
        table.add_column(column)
    for charger_id, binding in registry.items():
        state = "new" if charger_id in fresh else "kept"
        table.add_row(charger_id, binding.bus, binding.sites[0] if binding.sites else "grid", state)
    console.print(table)
    console.print(
        f"{len(fresh)} new, {len(registry) - len(fresh)} kept (profile {profile}); wrote "
        + ", ".join(str(f) for f in files)
    )
