"""``gridmesh run`` / ``centre`` / ``field``: the live platform, in one process or over an MQTT broker."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.panel import Panel

from gridmesh.adapters.ocpp import SecurityProfile
from gridmesh.api.app import create_app
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, wait_until_stopped
from gridmesh.cli.controllers import ControllerName, build_controller
from gridmesh.security.tokens import ensure_operator_token, store_in
from gridmesh.services.bus import Bus, InProcessBus
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.clock import SimClock
from gridmesh.services.dr_service import SUBSTATION, DrSettings
from gridmesh.services.ev_service import EvSettings
from gridmesh.services.field import gateway_will
from gridmesh.services.platform import (
    Platform,
    mqtt_bus,
    provision_agents,
    start_centre,
    start_edge_agents,
    start_field,
    start_field_protocols,
)

Scenario = Annotated[str, typer.Argument(help="scenario YAML, or `demo`")]
Data = Annotated[Path, typer.Option("--data", help="data folder: historian, keys, tokens, field state")]
Speed = Annotated[float, typer.Option("--speed", min=0.001, help="simulated seconds per wall second")]
Host = Annotated[str, typer.Option("--host", help="address the API listens on")]
Port = Annotated[int, typer.Option("--port", help="port of the API and dashboard")]
Historian = Annotated[
    str | None, typer.Option("--historian", help="postgresql://… or a DuckDB file (default <data>/historian.duckdb)")
]
Keys = Annotated[
    Path | None,
    typer.Option("--keys", help="folder of the keyrings from `gridmesh keys provision` (default <data>/keys)"),
]
Controllers = Annotated[
    list[ControllerName] | None,
    typer.Option("--controller", help="run this controller live every 15 simulated minutes (repeatable)"),
]
Cycle = Annotated[float, typer.Option("--cycle", min=0.2, help="state-estimation cycle, wall seconds")]
NoOcpp = Annotated[bool, typer.Option("--no-ocpp", help="no OCPP: no central system / simulated chargers")]
NoDr = Annotated[bool, typer.Option("--no-dr", help="no OpenADR demand response: no VTN / VENs")]
OcppPort = Annotated[int, typer.Option("--ocpp-port", help="port of the OCPP central system (ws://HOST:PORT/ocpp/ID)")]
OcppHost = Annotated[str, typer.Option("--ocpp-host", help="address the OCPP central system and the VTN listen on")]
OcppProfile = Annotated[
    int,
    typer.Option(
        "--ocpp-profile",
        min=1,
        max=3,
        help="OCPP security profile: 1 password over ws, 2 password over TLS, 3 client certificates",
    ),
]
VtnPort = Annotated[
    int, typer.Option("--vtn-port", help="port of the OpenADR 2.0b VTN (https, mutual TLS; wall-clock events)")
]
DrThreshold = Annotated[
    float | None,
    typer.Option(
        "--dr-threshold-kw",
        help="create DR events automatically when the profile forecast of --dr-target exceeds this (kW)",
    ),
]
DrTarget = Annotated[str, typer.Option("--dr-target", help="`substation` (net load) or a microgrid id")]
OcppUrl = Annotated[
    str, typer.Option("--ocpp-url", help="the centre's OCPP base URL the simulated chargers connect to")
]
VtnUrl = Annotated[
    str, typer.Option("--vtn-url", help="the centre's VTN URL the sites' VENs poll (OpenADR runs on wall-clock time)")
]


def _ev(no_ocpp: bool, host: str, port: int, profile: int) -> EvSettings | None:
    return None if no_ocpp else EvSettings(host=host, port=port, profile=SecurityProfile(profile))


def _dr(no_dr: bool, host: str, port: int, threshold: float | None, target: str) -> DrSettings | None:
    return None if no_dr else DrSettings(host=host, port=port, threshold_kw=threshold, target=target)


def _report(platform: Platform, centre: ControlCentre | None = None) -> None:
    if centre is not None and centre.ev is not None:
        console.print(f"OCPP central system {centre.ev.url}<charger>  ({len(centre.ev.registry)} chargers)")
    if centre is not None and centre.dr is not None:
        console.print(f"OpenADR VTN         {centre.dr.url}  ({len(centre.dr.sites)} VENs, wall-clock events)")
    for problem in platform.problems:
        console.print(f"[yellow]{problem}[/yellow]")


def _serve(platform: Platform, centre: ControlCentre, data: Path, host: str, port: int) -> None:
    tokens = store_in(data)
    token = ensure_operator_token(tokens)
    url = f"http://{host}:{port}/"
    lines = [f"dashboard and API  [bold]{url}[/bold]", f"API reference      {url}docs"]
    if token is not None:
        lines.append(f"operator token     [bold]{token}[/bold]  (shown once; stored hashed in {data}/tokens.json)")
        lines.append(f"open               {url}#token={token}")
    else:
        lines.append("token              create one with `gridmesh token create --role operator --name me`")
    console.print(Panel("\n".join(lines), title="gridmesh control centre", expand=False))
    server = uvicorn.Server(uvicorn.Config(create_app(centre, tokens), host=host, port=port, log_level="warning"))
    # uvicorn shuts the server down on SIGINT/SIGTERM, then re-raises the signal to the handler that was
    # there before; a no-op one lets the platform stop in order (field, bus, centre, historian) and exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping: field, bus, centre, historian …")
        platform.stop()


def run(
    scenario: Scenario = "demo",
    data: Data = Path("gridmesh-data"),
    speed: Speed = 1.0,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    historian: Historian = None,
    cycle: Cycle = 5.0,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="run over this broker instead of in-process")] = None,
    keys: Keys = None,
    controller: Controllers = None,
    no_ocpp: NoOcpp = False,
    no_dr: NoDr = False,
    ocpp_host: OcppHost = "127.0.0.1",
    ocpp_port: OcppPort = 9000,
    ocpp_profile: OcppProfile = 1,
    vtn_port: VtnPort = 8443,
    dr_threshold_kw: DrThreshold = None,
    dr_target: DrTarget = SUBSTATION,
    edge_agents: Annotated[
        bool,
        typer.Option(
            "--edge-agents",
            help="run an edge agent per microgrid in this process (keys provisioned on first start); "
            "they control the microgrids' devices, so not together with --controller",
        ),
    ] = False,
) -> None:
    """The whole platform in one process: centre, dashboard, historian and field simulator; no server needed.

    The centre runs the OCPP central system and the OpenADR VTN; the field simulator's chargers and sites
    connect to them over localhost as real OCPP and OpenADR clients. OpenADR events run on wall-clock time
    (an openleadr limitation): with --speed they last their wall-clock duration."""
    if edge_agents and controller:
        raise typer.BadParameter(
            "the edge agents control the microgrids' batteries; leave out --controller or --edge-agents",
            param_hint="--edge-agents",
        )
    loaded = scenario_cli.load(scenario)
    data.mkdir(parents=True, exist_ok=True)
    clock = SimClock(speed=speed)
    rings = provision_agents(loaded, data, keys) if edge_agents else {}
    bus: Bus = InProcessBus() if mqtt is None else mqtt_bus(mqtt, client_id="gridmesh-run", data=data)
    with console.status("starting the centre and the field simulator …"):
        problems: list[str] = []
        centre, store = start_centre(
            loaded,
            data,
            bus,
            clock=clock,
            historian_url=historian,
            settings=CentreSettings(cycle_s=cycle),
            keys=keys,
            controllers=[build_controller(name) for name in controller or []],
            ev=_ev(no_ocpp, ocpp_host, ocpp_port, ocpp_profile),
            dr=_dr(no_dr, ocpp_host, vtn_port, dr_threshold_kw, dr_target),
            problems=problems,
        )
        platform = Platform(bus, store, centre, problems=problems)
        start_edge_agents(platform, loaded, data, bus, rings, clock=clock)
        platform.field, platform.sunspec = start_field(loaded, data, bus, clock=clock, keys=keys)
        start_field_protocols(
            platform,
            loaded,
            data,
            clock=clock,
            keys=keys,
            ocpp_url=centre.ev.url if centre.ev is not None else None,
            ocpp_profile=SecurityProfile(ocpp_profile),
            vtn_url=centre.dr.url if centre.dr is not None else None,
        )
    console.print(f"{len(centre.catalogue):,} devices of {loaded.network.name} playing at ×{speed:g}")
    if platform.agents:
        console.print(f"edge agents         {', '.join(a.site for a in platform.agents)}")
    _report(platform, centre)
    _serve(platform, centre, data, host, port)


def centre(
    scenario: Scenario,
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker URL, e.g. mqtt://127.0.0.1:1883")],
    data: Data = Path("gridmesh-data"),
    speed: Speed = 1.0,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    historian: Historian = None,
    cycle: Cycle = 5.0,
    keys: Keys = None,
    controller: Controllers = None,
    no_ocpp: NoOcpp = False,
    no_dr: NoDr = False,
    ocpp_host: OcppHost = "127.0.0.1",
    ocpp_port: OcppPort = 9000,
    ocpp_profile: OcppProfile = 1,
    vtn_port: VtnPort = 8443,
    dr_threshold_kw: DrThreshold = None,
    dr_target: DrTarget = SUBSTATION,
) -> None:
    """The control centre alone, fed by field devices through an MQTT broker; chargers connect to its OCPP
    central system, sites' VENs to its VTN (certificates and passwords under <data>/keys or --keys).
    OpenADR events run on wall-clock time (an openleadr limitation), whatever --speed is."""
    loaded = scenario_cli.load(scenario)
    data.mkdir(parents=True, exist_ok=True)
    bus = mqtt_bus(mqtt, client_id="gridmesh-centre", data=data)
    settings = CentreSettings(cycle_s=cycle)
    problems: list[str] = []
    the_centre, store = start_centre(
        loaded,
        data,
        bus,
        clock=SimClock(speed=speed),
        historian_url=historian,
        settings=settings,
        keys=keys,
        controllers=[build_controller(name) for name in controller or []],
        ev=_ev(no_ocpp, ocpp_host, ocpp_port, ocpp_profile),
        dr=_dr(no_dr, ocpp_host, vtn_port, dr_threshold_kw, dr_target),
        problems=problems,
    )
    platform = Platform(bus, store, the_centre, problems=problems)
    _report(platform, the_centre)
    _serve(platform, the_centre, data, host, port)


def field(
    scenario: Scenario,
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker URL, e.g. mqtt://127.0.0.1:1883")],
    data: Data = Path("gridmesh-data"),
    speed: Speed = 1.0,
    keys: Keys = None,
    sunspec: Annotated[
        list[str] | None,
        typer.Option(
            "--sunspec",
            help="serve DEVICE from a SunSpec inverter or battery over Modbus TCP: DEVICE=HOST[:PORT][/UNIT] "
            "(repeatable); that device is then not simulated",
        ),
    ] = None,
    no_ocpp: NoOcpp = False,
    no_dr: NoDr = False,
    ocpp_url: OcppUrl = "ws://127.0.0.1:9000/ocpp/",
    ocpp_profile: OcppProfile = 1,
    vtn_url: VtnUrl = "https://127.0.0.1:8443/OpenADR2/Simple/2.0b",
) -> None:
    """The field simulator alone: the scenario's devices publish to an MQTT broker and obey commands; its
    chargers are OCPP clients of --ocpp-url and its microgrids OpenADR VENs of --vtn-url (passwords and
    certificates from the centre's keys folder: share <data>/keys or pass --keys)."""
    loaded = scenario_cli.load(scenario)
    data.mkdir(parents=True, exist_ok=True)
    clock = SimClock(speed=speed)
    bus = mqtt_bus(mqtt, client_id="gridmesh-field", data=data, will=gateway_will(clock.now_ns()))
    try:
        simulator, gateway = start_field(loaded, data, bus, clock=clock, keys=keys, sunspec=sunspec or ())
    except ValueError as exc:
        bus.close()
        raise typer.BadParameter(str(exc), param_hint="--sunspec") from exc
    platform = Platform(bus, field=simulator, sunspec=gateway)
    start_field_protocols(
        platform,
        loaded,
        data,
        clock=clock,
        keys=keys,
        ocpp_url=None if no_ocpp else ocpp_url,
        ocpp_profile=SecurityProfile(ocpp_profile),
        vtn_url=None if no_dr else vtn_url,
    )
    console.print(f"field simulator: {len(simulator.catalogue):,} devices → {mqtt} at ×{speed:g}; Ctrl-C stops")
    _report(platform)
    try:
        wait_until_stopped()
    finally:
        platform.stop()
