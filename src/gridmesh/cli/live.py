"""``gridmesh run`` / ``centre`` / ``field``: the live platform, in one process or over an MQTT broker."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.panel import Panel

from gridmesh.api.app import create_app
from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console
from gridmesh.cli.controllers import ControllerName, build_controller
from gridmesh.security.tokens import ensure_operator_token, store_in
from gridmesh.services.bus import Bus, InProcessBus
from gridmesh.services.centre import CentreSettings, ControlCentre
from gridmesh.services.clock import SimClock
from gridmesh.services.field import gateway_will
from gridmesh.services.platform import Platform, mqtt_bus, start_centre, start_field

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
) -> None:
    """The whole platform in one process: centre, dashboard, historian and field simulator; no server needed."""
    loaded = scenario_cli.load(scenario)
    data.mkdir(parents=True, exist_ok=True)
    clock = SimClock(speed=speed)
    bus: Bus = InProcessBus() if mqtt is None else mqtt_bus(mqtt, client_id="gridmesh-run", data=data)
    with console.status("starting the centre and the field simulator …"):
        centre, store = start_centre(
            loaded,
            data,
            bus,
            clock=clock,
            historian_url=historian,
            settings=CentreSettings(cycle_s=cycle),
            keys=keys,
            controllers=[build_controller(name) for name in controller or []],
        )
        platform = Platform(bus, store, centre)
        platform.field, platform.sunspec = start_field(loaded, data, bus, clock=clock, keys=keys)
    console.print(f"{len(centre.catalogue):,} devices of {loaded.network.name} playing at ×{speed:g}")
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
) -> None:
    """The control centre alone, fed by field devices through an MQTT broker."""
    loaded = scenario_cli.load(scenario)
    data.mkdir(parents=True, exist_ok=True)
    bus = mqtt_bus(mqtt, client_id="gridmesh-centre", data=data)
    settings = CentreSettings(cycle_s=cycle)
    the_centre, store = start_centre(
        loaded,
        data,
        bus,
        clock=SimClock(speed=speed),
        historian_url=historian,
        settings=settings,
        keys=keys,
        controllers=[build_controller(name) for name in controller or []],
    )
    _serve(Platform(bus, store, the_centre), the_centre, data, host, port)


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
) -> None:
    """The field simulator alone: the scenario's devices publish to an MQTT broker and obey commands."""
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
    console.print(f"field simulator: {len(simulator.catalogue):,} devices → {mqtt} at ×{speed:g}; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        platform.stop()
