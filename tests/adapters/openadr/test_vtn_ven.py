"""End to end over real HTTPS on localhost: registration with X.509 certificates, events, opt answers,
the site callback, TELEMETRY_USAGE reports and measured results; refusals of bad certificates and
bad events; cancellation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from openadr_support import BASE_KW, FakeSite, History, site_ven

from gridmesh.adapters.openadr import (
    DrInstruction,
    DrSignal,
    DrVtn,
    EventRefused,
    OpenAdrPki,
    Opt,
    VenFleet,
    create_ca,
    issue_certificate,
)
from gridmesh.errors import NotFound
from support.brokers import wait_for


def _never(instruction: DrInstruction) -> bool:
    return False


@pytest.fixture(scope="module")
def sites() -> dict[str, FakeSite]:
    return {name: FakeSite(name) for name in ("site-a", "site-b")}


@pytest.fixture(scope="module")
def fleet(vtn: DrVtn, pki: OpenAdrPki, sites: dict[str, FakeSite]) -> Iterator[VenFleet]:
    vens = VenFleet([site_ven(vtn, pki, sites["site-a"]), site_ven(vtn, pki, sites["site-b"], policy=_never)])
    assert vens.start() == {"site-a": True, "site-b": True}
    yield vens
    vens.stop()


def _second(offset: float) -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=0) + dt.timedelta(seconds=1 + offset)


def test_registered_vens_get_events_opt_in_and_their_response_is_measured(
    vtn: DrVtn, fleet: VenFleet, sites: dict[str, FakeSite], history: History
) -> None:
    assert set(vtn.registrations()) == {"site-a", "site-b"}
    start, duration = _second(5), dt.timedelta(seconds=3)  # lead time for a poll on a busy machine
    event = vtn.create_event(["site-a", "site-b"], DrSignal.LOAD_DISPATCH, start, duration, 2.5, event_id="shed-1")
    history.grid = pd.date_range(start, periods=3, freq="s")

    def received(site: str) -> list[DrInstruction]:
        return [i for i in sites[site].instructions if i.event_id.startswith("shed-1.")]

    wait_for(lambda: bool(received("site-a")), 10, "site-a to receive the event")
    (instruction,) = received("site-a")
    assert (instruction.signal, instruction.shed_kw) == (DrSignal.LOAD_DISPATCH, 2.5)
    assert (instruction.start, instruction.end) == (start, start + duration)
    def answers() -> dict[str, Opt]:
        return next(opts for e, opts, _ in vtn.events() if e.event_id == "shed-1")

    wait_for(lambda: Opt.PENDING not in answers().values(), 10, "both opt answers")
    assert answers() == {"site-a": Opt.IN, "site-b": Opt.OUT}
    assert received("site-b") == []  # opted out: the site is never told to act

    covered = history.grid
    wait_for(lambda: covered.isin(vtn.readings("site-a").index).all() and dt.datetime.now(dt.UTC) > event.end,
             20, "site-a's telemetry over the whole event")
    readings = vtn.readings("site-a")
    assert readings[covered].tolist() == [BASE_KW - 2.5] * 3, (readings, instruction)
    assert (readings[readings.index < start] == BASE_KW).all()

    (result,) = [r for r in vtn.results() if r.event.event_id == "shed-1"]
    assert result.opted_in == ("site-a",)
    assert result.requested_kw == pytest.approx(2.5)
    a, b = result.vens
    assert a.delivered_kwh == pytest.approx(2.5 * 3 / 3600)  # 2.5 kW for 3 s against a flat 10 kW baseline
    assert a.percent_of_requested == pytest.approx(100.0)
    assert result.delivered_kwh == pytest.approx(2.5 * 3 / 3600)
    assert b.opt is Opt.OUT and b.delivered_kwh is None and "not opted in" in b.note


def test_events_in_the_past_or_without_duration_are_refused(vtn: DrVtn, fleet: VenFleet) -> None:
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(EventRefused, match="starts in the past"):
        vtn.create_event(["site-a"], DrSignal.LOAD_DISPATCH, now - dt.timedelta(minutes=1), dt.timedelta(hours=1), 1.0)
    with pytest.raises(EventRefused, match="duration must be positive"):
        vtn.create_event(["site-a"], DrSignal.LOAD_DISPATCH, now + dt.timedelta(minutes=1), dt.timedelta(0), 1.0)
    with pytest.raises(EventRefused, match="unknown VEN"):
        vtn.create_event(["nowhere"], DrSignal.SIMPLE, now + dt.timedelta(minutes=1), dt.timedelta(minutes=1), 1)
    assert all(e.event_id == "shed-1" or e.start > now for e, _, _ in vtn.events())


def test_cancel_reaches_the_site(vtn: DrVtn, fleet: VenFleet, sites: dict[str, FakeSite]) -> None:
    start = _second(60)
    vtn.create_event({"site-a": 1.0}, DrSignal.LOAD_DISPATCH, start, dt.timedelta(minutes=5), event_id="later")
    wait_for(lambda: any(i.start == start for i in sites["site-a"].instructions), 10, "the event to arrive")
    vtn.cancel_event("later")
    wait_for(lambda: any(i.start == start and i.cancelled for i in sites["site-a"].instructions), 10,
             "the cancellation to arrive")
    assert [c for e, _, c in vtn.events() if e.event_id == "later"] == [True]
    with pytest.raises(EventRefused, match="already cancelled"):
        vtn.cancel_event("later")
    with pytest.raises(NotFound):
        vtn.cancel_event("no-such-event")
    (later,) = [r for r in vtn.results() if r.event.event_id == "later"]
    assert later.cancelled and later.delivered_kwh is None


def test_bad_certificates_are_refused_and_the_vtn_stays_up(
    vtn: DrVtn, pki: OpenAdrPki, fleet: VenFleet, tmp_path: Path
) -> None:
    rogue_ca = create_ca(tmp_path / "rogue", name="rogue-ca")
    foreign = issue_certificate(rogue_ca, tmp_path / "rogue", "site-a")  # right name, a CA the VTN does not trust
    unknown = issue_certificate(pki.ca, tmp_path / "copy", "site-a")  # our CA, not the certificate provisioned
    stranger = issue_certificate(pki.ca, tmp_path / "stranger", "intruder")  # our CA, a VEN the registry lacks
    impostor = VenFleet([site_ven(vtn, pki, FakeSite("site-a"), foreign)])
    try:
        assert impostor.start() == {"site-a": False}  # refused in the TLS handshake: no OpenADR reply at all
        assert "TLS" in (impostor.vens["site-a"].refusal or "")
    finally:
        impostor.stop()
    for credentials, site, reason in ((unknown, "site-a", "fingerprint"), (stranger, "intruder", "not known")):
        impostor = VenFleet([site_ven(vtn, pki, FakeSite(site), credentials)])
        try:
            assert impostor.start() == {site: False}
            assert reason in (impostor.vens[site].refusal or "")
        finally:
            impostor.stop()
    refused = vtn.refusals()
    assert {r.fingerprint for r in refused} >= {unknown.fingerprint, stranger.fingerprint}
    assert any("fingerprint" in r.reason and r.ven == "site-a" for r in refused)
    # the VTN still serves the genuine VENs
    assert vtn.registrations()["site-a"]
    assert all(fleet.vens[s].registered for s in ("site-a", "site-b"))
