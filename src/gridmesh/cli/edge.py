"""``gridmesh edge``: one microgrid's edge agent over an MQTT broker; ``gridmesh keys edge``: its keys."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridmesh.adapters.mqtt.bus import MqttBus
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors, print_issues, wait_until_stopped
from gridmesh.cli.controllers import ControllerName, build_controller
from gridmesh.errors import ScenarioError
from gridmesh.model.kinds import SiteLevel
from gridmesh.security.edge_keys import load_edge_keyring, provision_edge_keys
from gridmesh.security.keys import KeyringError
from gridmesh.services.clock import SimClock
from gridmesh.services.edge_agent import EdgeAgent
from gridmesh.services.edge_link import offline_state
from gridmesh.services.edge_site import check_microgrid
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.telemetry.catalogue import catalogue_of

ScenarioArg = Annotated[str, typer.Argument(help="scenario YAML, or `demo`")]


class EdgeController(StrEnum):
    """The local controllers an edge agent can run (besides following the centre's plan)."""

    MPC = "mpc"
    SELF_CONSUMPTION = "self-consumption"


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
    return typer.Exit(2)


def edge(
    scenario: ScenarioArg,
    site: Annotated[str, typer.Option("--site", help="the microgrid (level-1 site id) this agent runs")],
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker URL, e.g. mqtt://127.0.0.1:1883")],
    data: Annotated[Path, typer.Option("--data", help="data folder: outbox buffer, local historian")] = Path(
        "gridmesh-data"
    ),
    keys: Annotated[
        Path | None, typer.Option("--keys", help="folder holding edge-<site>-keys.json (default <data>/keys)")
    ] = None,
    speed: Annotated[float, typer.Option("--speed", min=0.001, help="simulated seconds per wall second")] = 1.0,
    controller: Annotated[
        EdgeController, typer.Option("--controller", help="local controller when no centre plan is in force")
    ] = EdgeController.MPC,
) -> None:
    """Run one microgrid's control cycle at the edge: its devices' telemetry in, signed commands out; follows
    the centre's plan while connected, falls back to local control without it, islands when the PCC opens."""
    loaded = scenario_cli.load(scenario)
    try:
        check_microgrid(loaded.network, site)
    except ScenarioError as exc:
        print_issues(exc.issues, source=f"--site {site}")
        raise typer.Exit(2) from exc
    try:
        ring = load_edge_keyring(keys or data / "keys", site)
    except KeyringError as exc:
        raise _fail(str(exc)) from exc
    data.mkdir(parents=True, exist_ok=True)
    clock = SimClock(speed=speed)
    client = f"gridmesh-edge-{site}"
    bus = MqttBus(
        mqtt, client_id=client, buffer_path=data / f"{client}-outbox.sqlite", will=offline_state(site, clock.now_ns())
    )
    historian = EmbeddedHistorian(data / f"edge-{site}.duckdb")
    agent = EdgeAgent(
        loaded,
        site,
        bus,
        ring,
        clock,
        historian,
        [build_controller(ControllerName(controller.value))],
        link=lambda: bus.connected,
    )
    agent.start()
    console.print(f"edge agent of {site}: {len(agent.catalogue)} devices via {mqtt} at ×{speed:g}; Ctrl-C stops")
    try:
        wait_until_stopped()
    finally:
        agent.stop()
        bus.close()
        historian.close()


def provision(
    scenario: ScenarioArg,
    out: Annotated[Path, typer.Option("--out", help="the folder of field-keys.json and centre-keys.json")],
    site: Annotated[list[str] | None, typer.Option("--site", help="only this microgrid (repeatable)")] = None,
) -> None:
    """A signing key per microgrid edge agent (edge-<site>-keys.json, 0600) and their public keys
    (edge-public.json, for the field and the centre); existing agent keys are kept."""
    network = scenario_cli.load(scenario).network
    micro = sorted(s.id for s in network.sites.values() if s.level is SiteLevel.MICROGRID and s.pcc)
    try:
        for chosen in site or ():
            check_microgrid(network, chosen)
        rings = provision_edge_keys(out, catalogue_of(network), site or micro)
    except ScenarioError as exc:
        print_issues(exc.issues, source="--site")
        raise typer.Exit(2) from exc
    except KeyringError as exc:
        raise _fail(str(exc)) from exc
    for name, ring in rings.items():
        console.print(f"{name}: agent key {ring.credential.fingerprint}, {len(ring.credentials)} device(s)")
