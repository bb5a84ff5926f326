"""The dashboard in a real headless Chromium: map drawn, cards and alarms shown, acknowledge, live update.

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

from api.centre_double import FEEDER_LENGTH, T0, FakeCentre, sample_state
from gridmesh.api import Hub, create_app
from gridmesh.api.ports import ReadingsView
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    centre = FakeCentre()
    store = TokenStore(tmp_path / "tokens.json")
    token = store.create(Role.OPERATOR, "night-shift")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(centre, store, hub=Hub()), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", centre, token)
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
    expect(page.locator("#counters")).to_contain_text("123,456")
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
