"""The REST API and WebSocket against a fake centre: auth on every endpoint, roles, JSON errors, OpenAPI."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.centre_double import READY_CASE, STALE_CASE, T0, FakeCentre, sample_alarms, sample_state
from gridmesh.api import Hub
from gridmesh.api.ports import FaultRequest
from gridmesh.api.stream import QUEUE_SIZE, TRY_AGAIN_LATER
from gridmesh.security.tokens import Principal, Role, TokenStore

EXPECTED_PATHS = {
    "/api/v1/network",
    "/api/v1/devices",
    "/api/v1/state",
    "/api/v1/history",
    "/api/v1/substation/history",
    "/api/v1/alarms",
    "/api/v1/alarms/{alarm_id}/acknowledge",
    "/api/v1/events",
    "/api/v1/counters",
    "/api/v1/dead-letters",
    "/api/v1/devices/{device_id}/commands",
    "/api/v1/whoami",
    "/api/v1/tokens",
    "/api/v1/tokens/{token_id}",
    "/api/v1/faults",
    "/api/v1/faults/{fault_id}/repair",
    "/api/v1/flisr",
    "/api/v1/flisr/{case_id}",
    "/api/v1/flisr/{case_id}/confirm",
    "/api/v1/control",
    "/api/v1/ev/chargers",
    "/api/v1/ev/sessions",
    "/api/v1/ev/pushes",
    "/api/v1/dr/events",
    "/api/v1/dr/events/{event_id}",
    "/api/v1/dr/results",
    "/api/v1/microgrids",
    "/api/v1/coordination",
    "/api/v1/vpp",
    "/api/v1/vpp/{site}/envelope",
    "/api/v1/vpp/{site}/dispatch",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, concrete path) the OpenAPI document lists, path parameters filled with a placeholder."""
    routes = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        concrete = path.replace("{alarm_id}", "al-1").replace("{device_id}", "battery-A2")
        concrete = concrete.replace("{token_id}", "x").replace("{site}", "vpp-1")
        routes.extend((method.upper(), concrete) for method in operations)
    return routes


def test_every_endpoint_needs_a_token(client: TestClient) -> None:
    routes = api_routes(client)
    assert {path for _, path in routes} >= {"/api/v1/network", "/api/v1/state", "/api/v1/tokens"}
    assert len(routes) == len(EXPECTED_PATHS) + 4  # /tokens, /faults, /dr/events, /coordination: GET and POST
    for method, path in routes:
        for headers in ({}, bearer("gm_not-a-real-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            body = response.json()
            assert body["error"] in {"missing bearer token", "invalid or revoked token"}
            assert "gridmesh token create" in body["fix"]
            assert response.headers["www-authenticate"] == "Bearer"


def test_viewer_reads_everything(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    h = bearer(tokens[Role.VIEWER])
    network = client.get("/api/v1/network", headers=h).json()
    assert [b["id"] for b in network["buses"]][:3] == ["MV", "A0", "A1"]
    assert network["branches"][0] == {"id": "T-A", "kind": "transformer", "from_bus": "MV", "to_bus": "A0"}
    state = client.get("/api/v1/state", headers=h).json()
    assert len(state["v_pu"]) == len(network["buses"]) and state["v_pu"][10] is None
    assert state["sites"][1] == {
        "site": "mg-b",
        "import_kw": -27.0,
        "soc_pct": None,
        "renewable_share_pct": 100.0,
        "islanded": True,
        "frequency_hz": 49.712,
    }
    assert [d["id"] for d in client.get("/api/v1/devices?site=mg-a", headers=h).json()] == ["meter-A3", "battery-A2"]
    assert [d["id"] for d in client.get("/api/v1/devices?kind=inverter", headers=h).json()] == ["inverter-B4"]
    alarms = client.get("/api/v1/alarms", headers=h).json()
    assert [a["id"] for a in alarms] == ["al-1", "al-2", "al-3"] and all(a["active"] for a in alarms)
    assert client.get("/api/v1/counters", headers=h).json()["rejected.bad-signature"] == 3
    assert client.get("/api/v1/dead-letters?reason=replay", headers=h).json() == []
    assert client.get("/api/v1/dead-letters", headers=h).json()[0]["reason"] == "bad-signature"
    events = client.get("/api/v1/events", params={"kind": "device-offline"}, headers=h).json()
    assert [e["source"] for e in events] == ["meter-A3"]
    assert client.get("/api/v1/whoami", headers=h).json()["role"] == "viewer"
    control = client.get("/api/v1/control", params={"limit": 1}, headers=h).json()
    assert control["controllers"] == ["mpc", "self-consumption"] and len(control["steps"]) == 1
    assert control["steps"][0]["curtailed_kw"] == {"pv-B4": 3.5}
    assert control["steps"][0]["refusals"][0]["reason"] == "SOC window"


def test_history_passes_the_window_and_buckets(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    params = {
        "device": "battery-A2",
        "quantity": "TotW",
        "start": "2026-01-15T11:00:00Z",
        "end": "2026-01-15T13:00:00+01:00",
        "every": "PT15M",
    }
    series = client.get("/api/v1/history", params=params, headers=bearer(tokens[Role.VIEWER])).json()
    device, quantity, start, end, every = centre.history_calls[-1]
    assert (device, quantity, every) == ("battery-A2", "TotW", timedelta(minutes=15))
    assert start == T0 - timedelta(hours=1) and end == T0 - timedelta(hours=0)  # 13:00+01:00 is 12:00Z
    assert len(series["t"]) == 4 and series["every_s"] == 900.0  # 11:00, 11:15, 11:30, 11:45
    assert series["value"] == [1000.0, 1010.0, 1020.0, 1030.0] and series["min"][0] == 950.0


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"quantity": "TotW"}, "query.device"),
        ({"device": "battery-A2", "quantity": "TotW", "start": "2026-01-15T11:00:00"}, "query.start"),
        ({"device": "battery-A2", "quantity": "TotW", "every": "often"}, "query.every"),
    ],
)
def test_invalid_query_is_a_json_422(
    client: TestClient, tokens: dict[Role, str], params: dict[str, str], where: str
) -> None:
    response = client.get("/api/v1/history", params=params, headers=bearer(tokens[Role.VIEWER]))
    assert response.status_code == 422
    body = response.json()
    assert body["error"].startswith(f"invalid request: {where}")
    assert where in [p["where"] for p in body["problems"]] and body["fix"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"quantity": "Watts"}, "unknown quantity 'Watts'"),
        ({"start": "2026-01-15T12:00:00Z", "end": "2026-01-15T11:00:00Z"}, "is not before end"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-15T00:00:00Z", "every": "PT1S"}, "1209600 buckets"),
    ],
)
def test_domain_validation_is_a_json_422(
    client: TestClient, tokens: dict[Role, str], params: dict[str, str], error: str
) -> None:
    query = {"device": "battery-A2", "quantity": "TotW", **params}
    response = client.get("/api/v1/history", params=query, headers=bearer(tokens[Role.VIEWER]))
    assert response.status_code == 422
    assert error in response.json()["error"] and response.json()["fix"]


def test_unknown_device_is_a_json_404(client: TestClient, tokens: dict[Role, str]) -> None:
    response = client.get(
        "/api/v1/history", params={"device": "nope", "quantity": "TotW"}, headers=bearer(tokens[Role.VIEWER])
    )
    assert response.status_code == 404
    assert response.json() == {"error": "no device 'nope'", "fix": "list the devices with GET /api/v1/devices"}


def test_no_state_yet_is_503_with_a_fix(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    centre.current = None
    response = client.get("/api/v1/state", headers=bearer(tokens[Role.VIEWER]))
    assert response.status_code == 503 and "retry" in response.json()["fix"]


def test_viewer_may_not_acknowledge_or_command(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    h = bearer(tokens[Role.VIEWER])
    for response in (
        client.post("/api/v1/alarms/al-1/acknowledge", headers=h),
        client.post("/api/v1/devices/battery-A2/commands", json={"action": "set-power", "value": 1e3}, headers=h),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == "this needs the operator role; token 'test-viewer' has viewer"
        assert "--role operator" in response.json()["fix"]
    assert centre.acknowledged == [] and centre.commands == []


def test_operator_acknowledges(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    response = client.post("/api/v1/alarms/al-2/acknowledge", headers=bearer(tokens[Role.OPERATOR]))
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "test-operator"
    assert centre.acknowledged == [("al-2", "test-operator")]
    missing = client.post("/api/v1/alarms/al-9/acknowledge", headers=bearer(tokens[Role.OPERATOR]))
    assert missing.status_code == 404 and missing.json()["error"] == "no alarm 'al-9'"


def test_commands(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    h = bearer(tokens[Role.OPERATOR])
    sent = client.post("/api/v1/devices/battery-A2/commands", json={"action": "set-power", "value": -5000}, headers=h)
    assert sent.status_code == 202 and sent.json()["status"] == "sent"
    assert centre.commands == [("battery-A2", "set-power", -5000.0, "test-operator")]
    refused = client.post("/api/v1/devices/meter-A3/commands", json={"action": "open"}, headers=h)
    assert refused.status_code == 409
    assert refused.json()["error"] == "meter-A3 is not controllable"
    for body in ({"action": "set-power"}, {"action": "open", "value": 1.0}, {"action": "explode"}):
        bad = client.post("/api/v1/devices/battery-A2/commands", json=body, headers=h)
        assert bad.status_code == 422 and bad.json()["problems"], body
    assert len(centre.commands) == 1


def test_viewer_reads_faults_and_flisr_cases(client: TestClient, tokens: dict[Role, str]) -> None:
    h = bearer(tokens[Role.VIEWER])
    faults = client.get("/api/v1/faults", headers=h).json()
    assert [(f["id"], f["element"], f["repaired"]) for f in faults] == [
        ("F2", "L-A3", None),
        ("F1", "L-B2", "2026-01-15T11:50:00Z"),
    ]
    cases = client.get("/api/v1/flisr", headers=h).json()
    assert [(c["id"], c["status"]) for c in cases] == [
        (READY_CASE, "awaiting-confirmation"),
        ("rtn-1", "failed"),
        (STALE_CASE, "awaiting-confirmation"),
    ]
    assert cases[1]["steps"][1]["outcome"] == "refused by the device: interlock" and cases[1]["restored_kw"] is None
    case = client.get(f"/api/v1/flisr/{READY_CASE}", headers=h).json()
    assert [(s["switch"], s["action"], s["purpose"], s["outcome"]) for s in case["steps"]] == [
        ("S-A3", "open", "isolate", None),
        ("S-A4", "open", "isolate", None),
        ("S-AB", "close", "restore", None),
    ]
    assert (case["restored_customers"], case["unrestored_customers"], case["restored_kw"]) == (14, 3, 61.5)
    assert case["plan_ms"] == 37.5 and case["trips"] == ["CB-A"] and case["opened"] == "2026-01-15T11:58:00.200000Z"
    missing = client.get("/api/v1/flisr/fault-9", headers=h)
    assert missing.status_code == 404
    assert missing.json() == {"error": "unknown FLISR case 'fault-9'", "fix": "list them with GET /api/v1/flisr"}


def test_viewer_may_not_inject_repair_or_confirm(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    h = bearer(tokens[Role.VIEWER])
    for response in (
        client.post("/api/v1/faults", json={"element": "L-A2"}, headers=h),
        client.post("/api/v1/faults/F2/repair", headers=h),
        client.post(f"/api/v1/flisr/{READY_CASE}/confirm", headers=h),
    ):
        assert response.status_code == 403
        assert "--role operator" in response.json()["fix"]
    assert centre.injected == [] and centre.repaired == [] and centre.confirmed == []


def test_operator_injects_and_repairs_faults(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    h = bearer(tokens[Role.OPERATOR])
    injected = client.post("/api/v1/faults", json={"element": "L-B4"}, headers=h)
    assert injected.status_code == 202
    assert injected.json()["id"] == "F3" and injected.json()["injected_by"] == "test-operator"
    body = {"element": "L-A5", "fault_type": "line-to-ground", "permanent": False, "position": 1}
    assert client.post("/api/v1/faults", json=body, headers=h).status_code == 202
    assert client.post("/api/v1/faults", json={"element": "A2", "table": "buses"}, headers=h).status_code == 202
    on_bus = client.post("/api/v1/faults", json={"element": "A2", "table": "buses", "position": 0.5}, headers=h)
    assert on_bus.status_code == 400 and on_bus.json()["fix"] == "omit it for a bus fault"
    assert centre.injected == [
        (FaultRequest(element="L-B4"), "test-operator"),  # the defaults: a permanent three-phase line fault
        (FaultRequest(element="L-A5", fault_type="line-to-ground", permanent=False, position=1.0), "test-operator"),
        (FaultRequest(element="A2", table="buses"), "test-operator"),
    ]
    assert centre.injected[0][0].fault_type == "three-phase" and centre.injected[0][0].permanent
    unknown = client.post("/api/v1/faults", json={"element": "L-Z9"}, headers=h)
    assert unknown.status_code == 404 and unknown.json()["fix"] == "list them with GET /api/v1/network"

    repaired = client.post("/api/v1/faults/F2/repair", headers=h)
    assert repaired.status_code == 202 and repaired.json()["repaired_by"] == "test-operator"
    again = client.post("/api/v1/faults/F2/repair", headers=h)
    assert again.status_code == 400 and again.json() == {
        "error": "fault F2 was already repaired",
        "fix": "nothing to do",
    }
    assert client.post("/api/v1/faults/F9/repair", headers=h).status_code == 404
    assert centre.repaired == [("F2", "test-operator")]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"element": "L-A2", "fault_type": "lightning"}, "body.fault_type"),
        ({"element": "L-A2", "position": 1.5}, "body.position"),
        ({"element": "L-A2", "position": -0.1}, "body.position"),
        ({"element": "T-A", "table": "transformers"}, "body.table"),
        ({"element": ""}, "body.element"),
        ({"table": "lines"}, "body.element"),
    ],
)
def test_invalid_fault_is_a_json_422(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre, body: dict[str, Any], where: str
) -> None:
    response = client.post("/api/v1/faults", json=body, headers=bearer(tokens[Role.OPERATOR]))
    assert response.status_code == 422
    assert [p["where"] for p in response.json()["problems"]] == [where]
    assert centre.injected == []


def test_confirm_flisr(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    h = bearer(tokens[Role.OPERATOR])
    confirmed = client.post(f"/api/v1/flisr/{READY_CASE}/confirm", headers=h)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "executing"
    assert centre.confirmed == [(READY_CASE, "test-operator")]
    twice = client.post(f"/api/v1/flisr/{READY_CASE}/confirm", headers=h)
    assert (
        twice.status_code == 409
        and twice.json()["error"] == f"case {READY_CASE} is executing, not awaiting confirmation"
    )
    stale = client.post(f"/api/v1/flisr/{STALE_CASE}/confirm", headers=h)
    assert stale.status_code == 409
    assert stale.json() == {
        "error": "stale plan: switch S-AB is now closed; the plan assumed otherwise",
        "fix": "plan again from the present grid state",
    }
    assert client.post("/api/v1/flisr/fault-9/confirm", headers=h).status_code == 404
    assert centre.confirmed == [(READY_CASE, "test-operator")]
    case = client.get(f"/api/v1/flisr/{STALE_CASE}", headers=bearer(tokens[Role.VIEWER])).json()
    assert case["status"] == "awaiting-confirmation"  # a refused confirmation executes nothing


def test_token_administration(client: TestClient, tokens: dict[Role, str], store: TokenStore) -> None:
    admin = bearer(tokens[Role.ADMIN])
    assert client.get("/api/v1/tokens", headers=bearer(tokens[Role.OPERATOR])).status_code == 403
    created = client.post("/api/v1/tokens", json={"role": "viewer", "name": "wallboard"}, headers=admin)
    assert created.status_code == 201
    new = created.json()
    assert new["token"].startswith("gm_") and new["role"] == "viewer"
    assert client.get("/api/v1/whoami", headers=bearer(new["token"])).json()["name"] == "wallboard"
    listed = client.get("/api/v1/tokens", headers=admin).json()
    assert {t["name"] for t in listed} == {"test-viewer", "test-operator", "test-admin", "wallboard"}
    assert all(set(t) == {"id", "name", "role", "created", "revoked"} for t in listed)
    revoked = client.delete(f"/api/v1/tokens/{new['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert client.get("/api/v1/whoami", headers=bearer(new["token"])).status_code == 401
    assert client.delete("/api/v1/tokens/nope", headers=admin).status_code == 404
    blank = client.post("/api/v1/tokens", json={"role": "root", "name": " "}, headers=admin)
    assert blank.status_code == 422 and {p["where"] for p in blank.json()["problems"]} == {"body.role", "body.name"}


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == EXPECTED_PATHS
    assert spec["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token (`gm_…`) from `gridmesh token create`",
    }
    assert spec["paths"]["/api/v1/network"]["get"]["security"] == [{"token": []}]
    assert "StateView" in spec["components"]["schemas"]
    assert "swagger-ui" in client.get("/docs").text


def test_dashboard_page_loads_without_a_token_and_unknown_paths_are_json(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="network"' in page.text
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["fix"].startswith("check the path")


def test_websocket_pushes_state_and_alarms(client: TestClient, tokens: dict[Role, str], centre: FakeCentre) -> None:
    with client.websocket_connect(f"/api/v1/stream?token={tokens[Role.VIEWER]}") as ws:
        assert ws.receive_json() == {"type": "hello", "data": {"role": "viewer", "user": "test-viewer"}}
        centre.push(sample_state(T0 + timedelta(seconds=1), import_a_kw=-3.0))
        first = ws.receive_json()
        assert first["type"] == "state" and first["data"]["sites"][0]["import_kw"] == -3.0
        alarm = sample_alarms()[0].model_copy(update={"cleared": T0})
        pusher = threading.Thread(target=centre.push, args=(alarm,))  # the centre pushes from its own threads
        pusher.start()
        pusher.join()
        second = ws.receive_json()
        assert second["type"] == "alarm"
        assert second["data"]["id"] == "al-1" and second["data"]["active"] is False


def test_websocket_sends_the_latest_state_on_connect(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    centre.push(sample_state(T0 + timedelta(seconds=7)))
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_json({"token": tokens[Role.OPERATOR]})  # first-message auth keeps the token out of the URL
        assert ws.receive_json()["data"]["role"] == "operator"
        assert ws.receive_json()["data"]["time"] == "2026-01-15T12:00:07Z"


@pytest.mark.parametrize("url", ["/api/v1/stream?token=gm_wrong", "/api/v1/stream"])
def test_websocket_refuses_bad_tokens(client: TestClient, url: str) -> None:
    with client.websocket_connect(url) as ws:
        if "token=" not in url:
            ws.send_json({"token": "gm_wrong"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401 and "token" in closed.value.reason


class StalledSocket:
    """A WebSocket whose peer never reads: every send after the hello blocks."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.application_state = WebSocketState.CONNECTED
        self._never = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        if len(self.sent) > 1:
            await self._never.wait()

    async def receive(self) -> dict[str, Any]:
        await self._never.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason or "")


def test_a_slow_client_is_dropped_without_blocking_the_others() -> None:
    async def scenario() -> tuple[StalledSocket, Hub]:
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        slow = StalledSocket()
        serving = asyncio.create_task(hub.serve(slow, Principal("t1", "slow", Role.VIEWER)))  # type: ignore[arg-type]
        while hub.clients == 0:
            await asyncio.sleep(0)
        for i in range(QUEUE_SIZE + 2):  # one in flight, QUEUE_SIZE queued, one too many
            hub.publish("alarm", {"n": i})
        await asyncio.wait_for(serving, 5)
        return slow, hub

    slow, hub = asyncio.run(scenario())
    assert slow.closed == (TRY_AGAIN_LATER, "client too slow; reconnect")
    assert hub.dropped_clients == 1 and hub.clients == 0


def test_viewer_reads_ev_charging(client: TestClient, tokens: dict[Role, str]) -> None:
    h = bearer(tokens[Role.VIEWER])
    chargers = client.get("/api/v1/ev/chargers", headers=h).json()
    assert [(c["id"], c["connected"], c["power_kw"], c["limit_kw"]) for c in chargers] == [
        ("cp-A4", True, 7.4, 7.4),
        ("cp-B1", False, 0.0, None),
    ]
    assert chargers[0]["site"] == "mg-a" and chargers[0]["status"] == "1 Occupied, 2 Available"
    sessions = client.get("/api/v1/ev/sessions", params={"limit": 1}, headers=h).json()
    assert [(s["transaction_id"], s["open"], s["requested_kwh"]) for s in sessions] == [("tx-2", True, 30.0)]
    pushes = client.get("/api/v1/ev/pushes", headers=h).json()
    assert [(p["accepted"], p["outcomes"]["cp-B1"], p["wall_s"]) for p in pushes] == [
        (1, "not_connected", 0.042),
        (2, "accepted", 0.05),
    ]
    assert client.get("/api/v1/ev/pushes", params={"limit": 0}, headers=h).status_code == 422


def test_viewer_reads_dr_events_and_results_but_may_not_create_or_cancel(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    h = bearer(tokens[Role.VIEWER])
    (event,) = client.get("/api/v1/dr/events", headers=h).json()
    assert (event["id"], event["status"], event["opts"]) == ("peak-1", "completed", {"mg-a": "optIn", "mg-b": "optOut"})
    (result,) = client.get("/api/v1/dr/results", headers=h).json()
    assert (result["requested_kw"], result["delivered_kwh"], result["opted_in"]) == (50.0, 27.0, ["mg-a"])
    assert result["vens"][0]["percent_of_requested"] == 90.0 and result["vens"][1]["note"] == "not opted in"
    body = {"sites": ["mg-a"], "level": 5.0, "start": "2099-01-01T00:00:00Z", "duration_minutes": 30}
    assert client.post("/api/v1/dr/events", json=body, headers=h).status_code == 403
    assert client.delete("/api/v1/dr/events/peak-1", headers=h).status_code == 403
    assert centre.dr_actions == []


def test_operator_creates_and_cancels_dr_events(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    h = bearer(tokens[Role.OPERATOR])
    body = {"levels": {"mg-a": 12.5, "mg-b": 7.5}, "start": "2099-01-01T10:00:00+01:00", "duration_minutes": 45}
    created = client.post("/api/v1/dr/events", json=body, headers=h)
    assert created.status_code == 201, created.text
    event = created.json()
    assert (event["status"], event["requested_kw"], event["signal"]) == ("scheduled", 20.0, "LOAD_DISPATCH")
    assert (event["start"], event["end"]) == ("2099-01-01T09:00:00Z", "2099-01-01T09:45:00Z")
    cancelled = client.delete(f"/api/v1/dr/events/{event['id']}", headers=h)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.delete(f"/api/v1/dr/events/{event['id']}", headers=h)
    assert again.status_code == 409 and again.json()["error"] == f"event {event['id']}: already cancelled"
    assert client.delete("/api/v1/dr/events/dr-99", headers=h).status_code == 404
    assert centre.dr_actions == [("create", event["id"], "test-operator"), ("cancel", event["id"], "test-operator")]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"sites": ["mg-a"], "level": 5, "start": "2001-01-01T00:00:00Z", "duration_minutes": 5}, 409, "in the past"),
        (
            {"sites": ["elsewhere"], "level": 5, "start": "2099-01-01T00:00:00Z", "duration_minutes": 5},
            409,
            "unknown VEN",
        ),
        ({"sites": ["mg-a"], "start": "2099-01-01T00:00:00Z", "duration_minutes": 5}, 409, "no sites and level"),
        ({"sites": ["mg-a"], "level": 5, "start": "2099-01-01T00:00:00Z", "duration_minutes": 0}, 422, None),
        ({"sites": ["mg-a"], "level": 5, "start": "2099-01-01T00:00:00", "duration_minutes": 5}, 422, None),
        (
            {"sites": ["mg-a"], "level": 5, "start": "2099-01-01T00:00:00Z", "duration_minutes": 5, "signal": "X"},
            422,
            None,
        ),
    ],
)
def test_bad_dr_events_are_refused_with_the_reason(
    client: TestClient, tokens: dict[Role, str], body: dict[str, object], status: int, error: str | None
) -> None:
    reply = client.post("/api/v1/dr/events", json=body, headers=bearer(tokens[Role.OPERATOR]))
    assert reply.status_code == status, reply.text
    if error is not None:
        assert error in reply.json()["error"] and reply.json()["fix"]


def test_viewer_reads_microgrids_coordination_and_vpp(client: TestClient, tokens: dict[Role, str]) -> None:
    h = bearer(tokens[Role.VIEWER])
    microgrids = client.get("/api/v1/microgrids", headers=h).json()
    assert [(m["site"], m["mode"], m["agent_online"]) for m in microgrids] == [
        ("mg-a", "connected", True),
        ("mg-b", "islanded", True),
    ]
    assert microgrids[1]["reason"] == "PCC S-B open" and microgrids[1]["islanded"] is True
    assert microgrids[0]["plan_seq"] == 1042 and microgrids[0]["import_kw"] == 42.5
    (run,) = client.get("/api/v1/coordination", headers=h).json()
    assert run["state"] == "done" and run["iterations"] == len(run["residuals"]) == 4
    assert run["residuals"][-1] == {
        "iteration": 4,
        "primal": 0.4,
        "dual": 0.05,
        "eps_primal": 0.5,
        "eps_dual": 0.1,
        "rho": 0.2,
    }
    assert run["gap"] == pytest.approx((run["objective_eur"] - run["centralised_eur"]) / run["centralised_eur"])
    assert run["plans_sent"] == ["mg-a", "mg-b"] and len(run["pcc_kw"]["mg-a"]) == 24
    assert client.get("/api/v1/vpp", headers=h).json() == [
        {"id": "vpp-1", "name": "Valley VPP", "members": ["mg-a", "mg-b"]}
    ]
    envelope = client.get("/api/v1/vpp/vpp-1/envelope", params={"day": "2026-03-02"}, headers=h).json()
    assert envelope["day"] == "2026-03-02" and envelope["time"][0] == "2026-03-02T00:00:00+00:00"
    assert len(envelope["up_kw"]) == len(envelope["down_kw"]) == len(envelope["time"]) == 4
    unknown = client.get("/api/v1/vpp/vpp-9/envelope", headers=h)
    assert unknown.status_code == 404 and "GET /api/v1/vpp" in unknown.json()["fix"]
    assert client.get("/api/v1/vpp/vpp-1/envelope", params={"day": "soon"}, headers=h).status_code == 422


def test_coordination_run_needs_an_operator_and_one_at_a_time(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    refused = client.post("/api/v1/coordination", json={}, headers=bearer(tokens[Role.VIEWER]))
    assert refused.status_code == 403 and centre.coordination_requests == []
    op = bearer(tokens[Role.OPERATOR])
    started = client.post("/api/v1/coordination", json={"day": "2026-01-16"}, headers=op)
    assert started.status_code == 202
    assert started.json()["state"] == "running" and started.json()["day"] == "2026-01-16"
    assert centre.coordination_requests == [(date(2026, 1, 16), "test-operator")]
    busy = client.post("/api/v1/coordination", headers=op)
    assert busy.status_code == 409 and "in progress" in busy.json()["error"]
    runs = client.get("/api/v1/coordination", headers=op).json()
    assert [r["id"] for r in runs] == ["co-2", "co-1"]  # newest first
    centre.run_list[0] = centre.run_list[0].model_copy(update={"state": "done"})
    again = client.post("/api/v1/coordination", headers=op)  # no body: the grid's current day
    assert again.status_code == 202 and centre.coordination_requests[-1] == (None, "test-operator")
    assert client.post("/api/v1/coordination", json={"day": "tomorrow"}, headers=op).status_code == 422


def test_a_vpp_award_is_dispatched_by_an_operator_and_its_delivery_reported(
    client: TestClient, tokens: dict[Role, str], centre: FakeCentre
) -> None:
    award = {"day": "2026-03-02", "award_kw": [100.0, 150.0, -50.0, 0.0]}
    refused = client.post("/api/v1/vpp/vpp-1/dispatch", json=award, headers=bearer(tokens[Role.VIEWER]))
    assert refused.status_code == 403 and centre.dispatches == []
    op = bearer(tokens[Role.OPERATOR])
    answer = client.post("/api/v1/vpp/vpp-1/dispatch", json=award, headers=op)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["target_kw"] == [100.0, 110.0, -50.0, 0.0]  # 150 kW is beyond the 110 kW up capability
    assert body["reason"][1] == "above up capability" and body["shortfall_kw"][1] == 40.0
    assert centre.dispatches == [("vpp-1", "test-operator")]
    short = client.post("/api/v1/vpp/vpp-1/dispatch", json={"award_kw": [1.0]}, headers=op)
    assert short.status_code == 400 and "4 finite values" in short.json()["error"]
    assert client.post("/api/v1/vpp/vpp-9/dispatch", json=award, headers=op).status_code == 404
