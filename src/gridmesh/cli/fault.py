"""``gridmesh fault …``: study a fault offline, or inject and repair faults in a running platform."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from gridmesh.cli import scenario as scenario_cli
from gridmesh.cli.console import console, errors
from gridmesh.errors import GridmeshError
from gridmesh.optim.fault_study import study_fault
from gridmesh.physics.short_circuit import Fault, FaultType
from gridmesh.sim.profiles_at import ProfilesAt

app = typer.Typer(help="Faults: study one offline, or inject/repair in a running platform.", no_args_is_help=True)

Element = Annotated[str, typer.Argument(help="line id (or bus id with --bus)")]
Type = Annotated[FaultType, typer.Option("--type", help="fault type (IEC 60909)")]
Bus = Annotated[bool, typer.Option("--bus", help="the element is a bus, not a line")]
Temporary = Annotated[bool, typer.Option("--temporary", help="clears on the first reclose")]
Position = Annotated[float | None, typer.Option("--position", min=0.0, max=1.0, help="fraction along the line")]
Url = Annotated[str, typer.Option("--url", help="the running centre")]
Token = Annotated[
    str | None, typer.Option("--token", help="operator token (default: $GRIDMESH_TOKEN)", show_default=False)
]


@app.command()
def study(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or `demo`")],
    element: Element,
    fault_type: Type = FaultType.THREE_PHASE,
    bus: Bus = False,
    temporary: Temporary = False,
    position: Position = None,
    at: Annotated[datetime | None, typer.Option("--at", help="loads at this time (default: scenario start)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Fault currents, the protection response and the FLISR plan for one fault, on a snapshot."""
    loaded = scenario_cli.load(scenario)
    fault = Fault(element, "buses" if bus else "lines", fault_type, position=position, permanent=not temporary)
    base = ProfilesAt(loaded.network, loaded.profiles).values(at or loaded.time.start)
    loads_kw = dict(zip(loaded.network.loads, base.load_p_kw[0].tolist(), strict=True))
    try:
        result = study_fault(loaded.network, fault, loads_kw)
    except GridmeshError as exc:
        errors.print(f"[red]cannot study this fault[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    p = result.protection
    chosen = result.plan.chosen if result.plan is not None else None
    if as_json:
        out: dict[str, Any] = {
            "fault": {"element": element, "table": fault.table, "type": fault_type.value, "permanent": not temporary},
            "fault_ka": result.fault_ka,
            "tripped": p.tripped,
            "locked_out": p.locked_out,
            "protection": [{"t_s": e.t_s, "switch": e.switch, "action": str(e.action)} for e in p.events],
            "indications": p.indications,
            "plan": None
            if chosen is None
            else {
                "steps": [
                    {"switch": s.switch, "action": str(s.action), "purpose": str(s.purpose)} for s in chosen.steps
                ],
                "restored_customers": chosen.restored_customers,
                "unrestored_customers": chosen.unrestored_customers,
                "restored_kw": chosen.restored_kw,
                "plan_ms": result.plan_ms,
            },
        }
        console.print_json(json.dumps(out))
        return
    console.print(f"fault current [bold]{result.fault_ka:.2f} kA[/bold] ({fault_type.value} on {escape(element)})")
    events = Table("t (s)", "switch", "action", "detail", title="protection", title_justify="left")
    for e in p.events:
        events.add_row(f"{e.t_s:.1f}", escape(e.switch), str(e.action), escape(e.detail))
    console.print(events if p.events else f"[yellow]nothing trips[/yellow]: {escape(p.note)}")
    if chosen is None:
        console.print("no FLISR plan: the fault cleared or nothing tripped" if p.tripped or p.events else "")
        return
    steps = Table(
        "#", "switch", "action", "purpose", title=f"FLISR plan ({result.plan_ms:.0f} ms)", title_justify="left"
    )
    for k, s in enumerate(chosen.steps, 1):
        steps.add_row(str(k), escape(s.switch), str(s.action), str(s.purpose))
    console.print(steps)
    console.print(
        f"restores {chosen.restored_customers} customers ({chosen.restored_kw:.0f} kW); "
        f"{chosen.unrestored_customers} wait for the repair"
    )


def _post(url: str, token: str | None, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    token = token or os.environ.get("GRIDMESH_TOKEN")
    if not token:
        errors.print("[red]no token[/red]: pass --token or set GRIDMESH_TOKEN (an operator token)")
        raise typer.Exit(2)
    try:
        reply = httpx.post(f"{url.rstrip('/')}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        errors.print(f"[red]cannot reach {escape(url)}[/red]: {escape(str(exc))} — is `gridmesh run` running?")
        raise typer.Exit(2) from exc
    data: dict[str, Any] = reply.json()
    if reply.status_code >= 400:
        errors.print(f"[red]{escape(str(data.get('error')))}[/red] — {escape(str(data.get('fix', '')))}")
        raise typer.Exit(2)
    return data


@app.command()
def inject(
    element: Element,
    fault_type: Type = FaultType.THREE_PHASE,
    bus: Bus = False,
    temporary: Temporary = False,
    position: Position = None,
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Put a fault into the running platform's twin; protection and FLISR respond live."""
    body = {
        "element": element,
        "table": "buses" if bus else "lines",
        "fault_type": fault_type.value,
        "permanent": not temporary,
        "position": position,
    }
    fault = _post(url, token, "/api/v1/faults", body)
    console.print(f"fault [bold]{fault['id']}[/bold] injected; follow it on the dashboard or GET /api/v1/flisr")


@app.command()
def repair(
    fault_id: Annotated[str, typer.Argument(help="id printed by `gridmesh fault inject`")],
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Repair a fault; the grid returns to its normal configuration (break before make)."""
    _post(url, token, f"/api/v1/faults/{fault_id}/repair")
    console.print(f"fault {escape(fault_id)} repaired; return to normal ordered")
