"""The dashboard in a real headless Chromium: map drawn, cards and alarms shown, acknowledge, live update;
the self-healing panel: FLISR cases confirmed (and a stale one refused), faults injected and repaired.

The server is uvicorn in a thread on a socket bound before it starts, so the browser's first request
simply waits in the listen backlog: no polling for readiness.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from api.centre_double import FEEDER_LENGTH, READY_CASE, STALE_CASE, T0, FakeCentre, sample_state
from gridmesh.api import Hub, create_app
from gridmesh.api.ports import FaultRequest, ReadingsView, VppDispatchRequest
from gridmesh.security.tokens import Role, TokenStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000


@dataclass
class Served:
    url: str
    centre: FakeCentre
    operator_token: str
    viewer_token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    centre = FakeCentre()
    store = TokenStore(tmp_path / "tokens.json")
    token = store.create(Role.OPERATOR, "night-shift")
    viewer = store.create(Role.VIEWER, "wallboard")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(centre, store, hub=Hub()), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", centre, token, viewer)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def page() -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install it with `apt-get install chromium` (the dashboard test needs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 1100})
        finally:
            browser.close()


def distinct_colours(png: bytes) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    return len(colours)


def viewer_page(page: Page, served: Served, errors: list[str]) -> Page:
    """A second tab of the same browser signed in with the viewer token; its page errors join ``errors``."""
    browser = page.context.browser
    assert browser is not None
    wallboard = browser.new_page(viewport={"width": 1440, "height": 1100})
    wallboard.on("pageerror", lambda exc: errors.append(str(exc)))
    wallboard.goto(f"{served.url}/#token={served.viewer_token}")
    return wallboard


def test_dashboard_live(served: Served, page: Page, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{served.url}/#token={served.operator_token}")

    canvas = page.locator("canvas#network")
    expect(canvas).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    n_buses = 1 + 2 * FEEDER_LENGTH
    assert canvas.get_attribute("data-drawn-buses") == str(n_buses)
    assert canvas.get_attribute("data-drawn-branches") == str(2 * FEEDER_LENGTH)
    assert "token=" not in page.url  # the token leaves the address bar once stored

    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.locator("#role")).to_have_text("operator · night-shift")
    hofweiler = page.locator('.site[data-site="mg-a"]')
    expect(hofweiler).to_contain_text("Hofweiler")
    expect(hofweiler.locator(".flow")).to_contain_text("42.5 kW")
    expect(hofweiler.locator(".flow")).to_contain_text("import")
    expect(page.locator('.site[data-site="mg-b"] .badge')).to_have_text("islanded")
    expect(page.locator('.site[data-site="mg-b"] .island-hz')).to_have_text("49.71 Hz")  # the island's frequency
    expect(page.locator('.site[data-site="mg-a"] .island-hz')).to_have_count(0)
    expect(page.locator("#counters")).to_contain_text("123,456")
    control = page.locator("#control")
    expect(control.locator('[data-part="controllers"]')).to_have_text("mpc › self-consumption · every 15 min")
    expect(control.locator("tbody tr")).to_have_count(2, timeout=WAIT_MS)
    newest = control.locator("tbody tr").first
    expect(newest).to_contain_text("bat-A2 -20 kW")
    expect(newest).to_contain_text("pv-B4 +3.5 kW")
    expect(newest).to_contain_text("bat-A2: SOC window")
    expect(page.locator("#device-chart")).to_have_attribute("data-points", "240", timeout=WAIT_MS)

    rows = page.locator("#alarms tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-alarm-id", "al-1")  # critical first
    row = page.locator('tr[data-alarm-id="al-2"]')
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.locator(".status")).to_contain_text("acknowledged by night-shift", timeout=WAIT_MS)
    assert served.centre.acknowledged == [("al-2", "night-shift")]
    expect(row.get_by_role("button")).to_have_count(0)

    # the centre pushes a new state from its own thread: mg-a now exports
    later = sample_state(T0 + timedelta(minutes=1), import_a_kw=-12.0, substation_p_kw=95.0)
    pusher = threading.Thread(target=served.centre.push, args=(later,))
    pusher.start()
    pusher.join()
    expect(canvas).to_have_attribute("data-state-time", "2026-01-15T12:01:00Z", timeout=WAIT_MS)
    expect(hofweiler.locator(".flow")).to_contain_text("12.0 kW")
    expect(hofweiler.locator(".flow")).to_contain_text("export")
    expect(page.locator("#substation-now")).to_contain_text("95.0 kW")

    # a live reading of the charted device extends its chart within one push
    device, quantity = page.locator("#pick-device").input_value(), page.locator("#pick-quantity").input_value()
    reading_t = (T0 + timedelta(minutes=2)).timestamp()
    live = ReadingsView(device=[device], quantity=[quantity], phase=[""], value=[1234.0], t=[reading_t])
    pusher = threading.Thread(target=served.centre.push, args=(live,))
    pusher.start()
    pusher.join()
    expect(page.locator("#device-chart")).to_have_attribute("data-points", "241", timeout=WAIT_MS)

    canvas.hover(position={"x": 5, "y": 5})  # empty corner: no tooltip
    expect(page.locator("#tooltip")).to_be_hidden()

    shot = tmp_path / "dashboard.png"
    png = page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000
    assert distinct_colours(png) > 200
    assert errors == []


def test_self_healing_panel(served: Served, page: Page, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{served.url}/#token={served.operator_token}")
    panel = page.locator("#self-healing")
    cases = panel.locator("article.case")
    expect(cases).to_have_count(3, timeout=WAIT_MS)
    expect(cases.first).to_have_attribute("data-case-id", READY_CASE)  # newest first
    expect(panel).to_contain_text("2 awaiting confirmation · 1 fault in the grid")

    failed = panel.locator('article[data-case-id="rtn-1"]')
    expect(failed.locator(".status-badge")).to_have_text("failed")
    expect(failed).to_contain_text("S-B2 did not operate: refused by the device: interlock")
    expect(failed.locator('li.step[data-outcome="failed"]')).to_have_attribute("data-switch", "S-B2")
    expect(failed.get_by_role("button")).to_have_count(0)

    ready = panel.locator(f'article[data-case-id="{READY_CASE}"]')
    expect(ready.locator(".status-badge")).to_have_text("awaiting confirmation")
    expect(ready.locator(".case-facts")).to_contain_text("trips CB-A")
    expect(ready.locator(".case-facts")).to_contain_text("planned in 37.5 ms")
    expect(ready.locator(".case-facts")).to_contain_text("restored 14 customers · 61.5 kW")
    expect(ready.locator(".case-facts")).to_contain_text("unrestored 3 customers")
    steps = ready.locator("li.step")
    expect(steps).to_have_count(3)
    assert [steps.nth(i).get_attribute("data-switch") for i in range(3)] == ["S-A3", "S-A4", "S-AB"]
    expect(steps.nth(0)).to_contain_text("open")
    expect(steps.nth(0).locator(".purpose")).to_have_text("isolate")
    expect(steps.nth(2).locator(".purpose")).to_have_text("restore")
    expect(steps.nth(2).locator(".outcome")).to_have_text("planned")

    # confirm: the fake starts executing; when its worker finishes, the next push refreshes the panel
    ready.get_by_role("button", name="Confirm").click()
    expect(ready).to_have_attribute("data-status", "executing", timeout=WAIT_MS)
    expect(ready.locator(".status-badge")).to_have_text("executing")
    expect(ready.get_by_role("button")).to_have_count(0)
    assert served.centre.confirmed == [(READY_CASE, "night-shift")]
    served.centre.finish(READY_CASE)
    pusher = threading.Thread(target=served.centre.push, args=(sample_state(T0 + timedelta(minutes=1)),))
    pusher.start()
    pusher.join()
    expect(ready).to_have_attribute("data-status", "done", timeout=WAIT_MS)
    expect(ready.locator('li.step[data-outcome="done"]')).to_have_count(3)

    # a stale plan is refused with the reason and what to do
    stale = panel.locator(f'article[data-case-id="{STALE_CASE}"]')
    stale.get_by_role("button", name="Confirm").click()
    expect(stale.locator(".case-error")).to_contain_text(
        "stale plan: switch S-AB is now closed; the plan assumed otherwise", timeout=WAIT_MS
    )
    expect(stale.locator(".case-error")).to_contain_text("plan again from the present grid state")
    expect(stale).to_have_attribute("data-status", "awaiting-confirmation")
    assert served.centre.confirmed == [(READY_CASE, "night-shift")]

    # inject a fault through the form, then repair it
    line_ids = {b.id for b in served.centre.net.branches if b.kind == "line"}
    options = panel.locator("datalist#fault-elements option")
    expect(options).to_have_count(len(line_ids))
    assert set(options.evaluate_all("(os) => os.map((o) => o.value)")) == line_ids
    panel.get_by_label("element id").fill("L-B4")
    panel.get_by_label("fault type").select_option("line-to-ground")
    panel.get_by_label("permanent").uncheck()
    panel.get_by_role("button", name="Inject").click()
    expect(panel.locator(".form-result")).to_have_text("F3: line-to-ground fault on L-B4 injected", timeout=WAIT_MS)
    request = FaultRequest(element="L-B4", table="lines", fault_type="line-to-ground", permanent=False)
    assert served.centre.injected == [(request, "night-shift")]
    row = panel.locator('tr[data-fault-id="F3"]')
    expect(row).to_contain_text("temporary", timeout=WAIT_MS)
    row.get_by_role("button", name="Repair").click()
    expect(row.locator(".fault-state")).to_contain_text("by night-shift", timeout=WAIT_MS)
    assert served.centre.repaired == [("F3", "night-shift")]

    shot = tmp_path / "self-healing.png"
    png = page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000
    assert distinct_colours(png) > 200

    # a viewer sees the same cases and faults, without the operator's buttons and form
    wallboard = viewer_page(page, served, errors)
    seen = wallboard.locator("#self-healing")
    expect(seen.locator('tr[data-fault-id="F2"]')).to_contain_text("in the grid", timeout=WAIT_MS)
    expect(seen.locator("article.case")).to_have_count(3)
    expect(seen.get_by_role("button")).to_have_count(0)
    expect(seen.locator("form")).to_be_hidden()
    expect(seen).to_contain_text("need an operator token")
    assert errors == []


def test_ev_and_demand_response_panels(served: Served, page: Page, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{served.url}/#token={served.operator_token}")

    ev = page.locator("#ev-charging")
    expect(ev.locator('[data-part="summary"]')).to_have_text("1 of 2 connected · 7.4 kW now", timeout=WAIT_MS)
    charging = ev.locator('tr[data-charger="cp-A4"]')
    expect(charging).to_contain_text("online 2.0.1")
    expect(charging).to_contain_text("1 Occupied, 2 Available")
    expect(charging.locator("td.num").nth(1)).to_have_text("7.4 kW")  # the limit smart charging set
    expect(ev.locator('tr[data-charger="cp-B1"]')).to_contain_text("offline")
    expect(ev.locator('[data-part="push"]')).to_contain_text("1 accepted · 1 not reached · 42 ms · plan optimal")
    expect(ev.locator("tr[data-transaction]")).to_have_count(2)
    expect(ev.locator('tr[data-transaction="tx-2"]')).to_contain_text("6.2 kWh / 30 kWh")

    dr = page.locator("#demand-response")
    finished = dr.locator('tr[data-event="peak-1"]')
    expect(finished).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    expect(finished).to_contain_text("mg-a optIn")
    expect(finished).to_contain_text("mg-b optOut")
    expect(finished.get_by_role("button")).to_have_count(0)  # nothing to cancel once completed
    result = dr.locator('tr[data-result="peak-1"]')
    expect(result).to_contain_text("50 kW")
    expect(result).to_contain_text("27 kWh")
    expect(result).to_contain_text("mg-a 90 %")
    expect(result).to_contain_text("mg-b: not opted in")

    # the operator creates an event for Lindenhof, then cancels it
    dr.get_by_label("microgrid").select_option("mg-b")
    dr.get_by_label("level").fill("12.5")
    dr.get_by_label("start in minutes").fill("5")
    dr.get_by_label("duration in minutes").fill("30")
    dr.get_by_role("button", name="Create").click()
    expect(dr.locator(".form-result")).to_have_text("dr-2 scheduled for mg-b", timeout=WAIT_MS)
    created = dr.locator('tr[data-event="dr-2"]')
    expect(created).to_have_attribute("data-status", "scheduled", timeout=WAIT_MS)
    expect(created).to_contain_text("12.5 kW")
    expect(created).to_contain_text("mg-b pending")
    (event,) = [e for e in served.centre.dr_event_list if e.id == "dr-2"]
    assert event.levels == {"mg-b": 12.5} and event.end - event.start == timedelta(minutes=30)
    created.get_by_role("button", name="Cancel").click()
    expect(created).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
    assert served.centre.dr_actions == [("create", "dr-2", "night-shift"), ("cancel", "dr-2", "night-shift")]

    # an event starting now is in the past by the time it arrives: refused with the reason
    dr.get_by_label("start in minutes").fill("0")
    dr.get_by_role("button", name="Create").click()
    expect(dr.locator(".form-result")).to_contain_text(
        "starts in the past — give a start in the future", timeout=WAIT_MS
    )

    for panel, name in ((ev, "ev"), (dr, "dr")):
        png = panel.screenshot(path=str(tmp_path / f"{name}.png"))
        assert distinct_colours(png) > 20  # drawn, not blank

    # a viewer sees events and results without the form or cancel buttons
    wallboard = viewer_page(page, served, errors)
    seen = wallboard.locator("#demand-response")
    expect(seen.locator("tr[data-event]")).to_have_count(2, timeout=WAIT_MS)
    expect(seen.get_by_role("button")).to_have_count(0)
    expect(seen.locator("form")).to_be_hidden()
    expect(seen).to_contain_text("need an operator token")
    assert errors == []


def test_coordination_panel(served: Served, page: Page, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{served.url}/#token={served.operator_token}")

    panel = page.locator("#coordination")
    expect(panel.locator('[data-part="agent-count"]')).to_have_text("2 of 2 agents online", timeout=WAIT_MS)
    connected = panel.locator('tr[data-site="mg-a"]')
    expect(connected).to_have_attribute("data-mode", "connected")
    expect(connected.locator(".chip.mode")).to_have_text("connected")
    expect(connected).to_contain_text("42.5 kW")
    islanded = panel.locator('tr[data-site="mg-b"]')
    expect(islanded.locator(".chip.mode")).to_have_text("islanded")
    expect(islanded).to_contain_text("PCC S-B open")
    expect(islanded).to_contain_text("-27 kW")

    summary = panel.locator('[data-part="run-summary"]')
    expect(summary).to_contain_text("co-1", timeout=WAIT_MS)
    expect(summary.locator('[data-part="iterations"]')).to_have_text("4")
    expect(summary.locator('[data-part="gap"]')).to_have_text("1 %")  # (101 − 100) / 100
    expect(summary).to_contain_text("converged")
    expect(summary).to_contain_text("plans sent to mg-a, mg-b")
    rounds = panel.locator('[data-part="rounds"] tbody tr')
    expect(rounds).to_have_count(4)
    expect(rounds.nth(3)).to_have_class("converged")  # 0.4 ≤ 0.5 kW and 0.05 ≤ 0.1 €/kW
    expect(rounds.nth(0)).not_to_have_class("converged")

    # the run's outcome: one line per microgrid in both charts, each microgrid in the same colour in both
    schedules = panel.locator('[data-part="schedules"]')
    expect(schedules).to_be_visible()
    expect(panel.locator('[data-part="schedules-note"]')).to_be_hidden()
    pcc, price = panel.locator('[data-part="pcc-chart"]'), panel.locator('[data-part="price-chart"]')
    for chart in (pcc, price):
        expect(chart).to_have_attribute("data-points", "24")
        expect(chart).to_have_attribute("data-lines", "2")
        expect(chart.locator("polyline.overlay")).to_have_count(2)
        expect(chart.locator(".legend text")).to_have_text(["mg-a", "mg-b"])
    strokes = [
        c.locator("polyline.overlay").evaluate_all("ls => ls.map(l => l.getAttribute('stroke'))") for c in (pcc, price)
    ]
    assert strokes[0] == strokes[1] and len(set(strokes[0])) == 2
    assert distinct_colours(schedules.screenshot(path=str(tmp_path / "schedules.png"))) > 20
    # a poll with the same run re-renders the agents' rows but leaves the charts as drawn
    pcc.locator("polyline.overlay").first.evaluate("line => line.setAttribute('data-probe', '')")
    connected.evaluate("row => row.setAttribute('data-probe', '')")
    expect(panel.locator("tr[data-probe]")).to_have_count(0, timeout=WAIT_MS)
    expect(pcc.locator("polyline[data-probe]")).to_have_count(1)

    expect(panel.locator('[data-part="up-max"]')).to_have_text("120 kW", timeout=WAIT_MS)
    expect(panel.locator('[data-part="down-max"]')).to_have_text("80 kW")
    expect(panel.locator('[data-part="envelope"]')).to_have_attribute("data-points", "4")
    assert served.centre.envelope_requests == [("vpp-1", None)]

    # the operator starts a run: it is posted, shows as running, and a second click is refused with the reason
    panel.get_by_role("button", name="Run day-ahead coordination").click()
    expect(panel.locator('[data-part="run-result"]')).to_have_text("co-2 started for 2026-01-15", timeout=WAIT_MS)
    assert served.centre.coordination_requests == [(None, "night-shift")]
    expect(summary).to_contain_text("co-2", timeout=WAIT_MS)
    expect(summary.locator(".run-state")).to_have_text("running")
    expect(schedules).to_be_hidden()  # a run in progress has no schedules yet
    expect(panel.locator('[data-part="schedules-note"]')).to_have_text(
        "no schedules yet: they come with the run's outcome"
    )
    panel.get_by_role("button", name="Run day-ahead coordination").click()
    expect(panel.locator('[data-part="run-result"]')).to_contain_text("in progress", timeout=WAIT_MS)

    # the operator awards 105 kW from 01:00 to 04:00; 02:00 and 03:00 are beyond the up capability (100, 30 kW)
    dispatched = panel.locator('[data-part="dispatch-result"]')
    panel.get_by_label("award kW").fill("105")
    panel.get_by_label("award from").fill("05:00")
    panel.get_by_label("award to").fill("06:00")
    panel.get_by_role("button", name="Dispatch award").click()
    expect(dispatched).to_have_text("no interval of 2026-01-15 starts between 05:00 and 06:00")
    panel.get_by_label("award from").fill("01:00")
    panel.get_by_label("award to").fill("04:00")
    refusal = {"error": "no profiles for 2026-01-15", "fix": "ask for a day the profiles cover"}
    page.route("**/api/v1/vpp/vpp-1/dispatch", lambda route: route.fulfill(status=404, json=refusal), times=1)
    panel.get_by_role("button", name="Dispatch award").click()
    expect(dispatched).to_have_text("no profiles for 2026-01-15 — ask for a day the profiles cover", timeout=WAIT_MS)
    assert served.centre.awards == []
    panel.get_by_role("button", name="Dispatch award").click()
    expect(dispatched).to_have_text("award for 2026-01-15 dispatched", timeout=WAIT_MS)
    award = VppDispatchRequest(day=T0.date(), award_kw=[0.0, 105.0, 105.0, 105.0])
    assert served.centre.awards == [(award, "night-shift")]
    outcome = panel.locator('[data-part="dispatch-summary"]')
    expect(outcome.locator('[data-part="delivered-share"]')).to_have_text("74.6 %")  # 235 of 315 kWh
    expect(outcome.locator('[data-part="clipped-intervals"]')).to_have_text("2")
    expect(outcome.locator('[data-part="clipped-kwh"]')).to_have_text("80 kWh")
    expect(outcome.locator('[data-part="cost"]')).to_have_text("28.2 €")
    expect(outcome.locator('[data-part="mae"]')).to_have_text("0 kW")
    expect(outcome).to_contain_text("first at 02:00: above up capability")
    delivery = panel.locator('[data-part="delivery"]')
    expect(delivery).to_have_attribute("data-points", "4")
    expect(delivery).to_have_attribute("data-lines", "3")
    expect(delivery.locator("polyline.overlay")).to_have_count(3)
    expect(delivery.locator(".legend text")).to_have_text(["award", "target", "delivered"])
    expect(panel.locator('[data-part="envelope"]')).to_have_attribute("data-lines", "0")
    assert distinct_colours(delivery.screenshot(path=str(tmp_path / "delivery.png"))) > 20
    png = panel.screenshot(path=str(tmp_path / "coordination.png"))
    assert distinct_colours(png) > 20

    # a viewer sees the panel without the button
    wallboard = viewer_page(page, served, errors)
    seen = wallboard.locator("#coordination")
    expect(seen.locator("tr[data-site]")).to_have_count(2, timeout=WAIT_MS)
    expect(seen.locator('[data-part="up-max"]')).to_have_text("120 kW", timeout=WAIT_MS)
    expect(seen.get_by_role("button")).to_have_count(0)
    expect(seen.locator('[data-part="award-form"]')).to_be_hidden()
    expect(seen).to_contain_text("needs an operator token")
    expect(seen.locator('[data-part="dispatch-note"]')).to_have_text("dispatching an award needs an operator token")
    expect(seen.locator('[data-part="dispatch-note"]')).to_be_visible()
    assert errors == []
