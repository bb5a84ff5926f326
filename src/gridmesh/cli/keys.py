"""``gridmesh keys …``: provision and list the per-device keys of a scenario's devices."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.security.keys import (
    CENTRE,
    CENTRE_FILE,
    FIELD_FILE,
    CentreKeyring,
    KeyringError,
    ensure_keyrings,
    fingerprint,
)
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of

app = typer.Typer(help="Provision and list per-device keys (Ed25519, or HMAC-SHA256).", no_args_is_help=True)


@app.command()
def provision(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    out: Annotated[Path, typer.Option("--out", help="directory for field-keys.json and centre-keys.json")],
    hmac_kinds: Annotated[
        list[DeviceKind] | None,
        typer.Option("--hmac-kinds", help="device kinds that sign with HMAC-SHA256 (repeat the option)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace existing keys (every device must be re-keyed)")
    ] = False,
) -> None:
    """Keys for every device of the scenario's catalogue plus the centre's command key (files mode 0600).

    Existing keyrings are kept and only devices without a key are added, unless --force.
    """
    catalogue = catalogue_of(scenario_cli.load(scenario).network)
    kinds = set(hmac_kinds or ())
    hmac_devices = [d.id for d in catalogue.devices.values() if d.kind in kinds]
    if force:
        for name in (FIELD_FILE, CENTRE_FILE):
            (out / name).unlink(missing_ok=True)
    try:
        existing = _known_devices(out)
        field_ring, _ = ensure_keyrings(out, catalogue.devices, hmac_devices=hmac_devices)
    except KeyringError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    added = len(field_ring.secrets) - len(existing)
    algs = Counter(s.alg.value for s in field_ring.secrets.values())
    summary = ", ".join(f"{n} {alg}" for alg, n in sorted(algs.items()))
    console.print(f"{added} new key(s), {len(existing)} kept — {summary}")
    console.print(f"wrote {out / FIELD_FILE} (device secrets: install on the devices, keep private)")
    console.print(f"wrote {out / CENTRE_FILE} (centre credentials and command key: keep private)")


def _known_devices(directory: Path) -> set[str]:
    path = directory / CENTRE_FILE
    return set(CentreKeyring.load(path).credentials) if path.exists() else set()


@app.command("list")
def list_keys(
    directory: Annotated[Path, typer.Argument(help="directory holding centre-keys.json")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every device's algorithm and key fingerprint (a SHA-256 digest: no secret is shown)."""
    try:
        ring = CentreKeyring.load(directory / CENTRE_FILE)
    except KeyringError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    rows = [(c.device, c.alg.value, c.fingerprint) for c in sorted(ring.credentials.values(), key=lambda c: c.device)]
    centre = (CENTRE, "ed25519", fingerprint(ring.centre_public))
    if as_json:
        keys = [{"device": d, "alg": a, "fingerprint": f} for d, a, f in rows]
        print(json.dumps({"centre": dict(zip(("device", "alg", "fingerprint"), centre, strict=True)), "devices": keys}))
        return
    table = Table(title=f"{len(rows)} device key(s) in {directory}", title_justify="left")
    for column in ("device", "algorithm", "fingerprint"):
        table.add_column(column)
    table.add_row(*(f"[bold]{escape(text)}[/bold]" for text in centre))
    for row in rows:
        table.add_row(*(escape(text) for text in row))
    console.print(table)
