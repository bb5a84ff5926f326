"""``gridmesh token``: create, list and revoke API tokens of a data folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gridmesh.cli.console import console, errors
from gridmesh.security.tokens import Role, TokenError, store_in

DEFAULT_DATA = Path("gridmesh-data")

app = typer.Typer(help="API tokens: each has a role (viewer < operator < admin) and is stored hashed.")

DataDir = Annotated[Path, typer.Option("--data", help="data folder of the control centre")]


@app.command()
def create(
    role: Annotated[Role, typer.Option(help="viewer reads; operator also acknowledges and commands; admin all")],
    name: Annotated[str, typer.Option(help="who or what uses the token, e.g. control-room")],
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    try:
        token = store_in(data).create(role, name)
    except TokenError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    print(token)  # plain stdout so that `TOKEN=$(gridmesh token create …)` works
    errors.print(f"[green]{role.value} token for {name!r} created[/green]; it is shown only this once.")


@app.command("list")
def list_tokens(
    data: DataDir = DEFAULT_DATA,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List tokens (id, name, role, created, revoked); the tokens themselves cannot be shown."""
    try:
        records = store_in(data).list()
    except TokenError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        rows = [
            {"id": r.id, "name": r.name, "role": r.role.value, "created": r.created.isoformat(), "revoked": r.revoked}
            for r in records
        ]
        print(json.dumps(rows, indent=2))
        return
    if not records:
        errors.print(f"no tokens in {data}; create one with `gridmesh token create --role viewer --name NAME`")
        return
    table = Table(title=f"tokens in {data}", title_justify="left")
    for column in ("id", "name", "role", "created (UTC)", "status"):
        table.add_column(column)
    for r in records:
        status = "[red]revoked[/red]" if r.revoked else "[green]active[/green]"
        table.add_row(r.id, r.name, r.role.value, r.created.strftime("%Y-%m-%d %H:%M:%S"), status)
    console.print(table)


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="token id from `gridmesh token list`")],
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Revoke a token; a running server refuses it from its next request on."""
    try:
        record = store_in(data).revoke(token_id)
    except TokenError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"revoked {record.id} ({record.name}, {record.role.value})")
