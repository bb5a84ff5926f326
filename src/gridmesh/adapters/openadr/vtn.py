"""The centre's OpenADR 2.0b VTN: openleadr's ``OpenADRServer`` over mutual TLS in its own thread.

Only VENs in the registry (one per scenario site, each with the fingerprint of its provisioned
certificate) may register; openleadr checks the TLS client certificate and the XML signature against
that fingerprint on every message. Operators create and cancel events through ``create_event`` /
``cancel_event``; VENs' opt answers and TELEMETRY_USAGE reports are collected, and ``results`` measures
each event against the VENs' baselines.

openleadr keeps some settings on the ``VTNService`` class (signing key, ``ven_lookup``), so one VTN per
process.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
from aiohttp import web
from openleadr import OpenADRServer, errors, objects
from openleadr.messaging import parse_message
from openleadr.utils import get_cert_fingerprint_from_request

from gridmesh.adapters.openadr import compat
from gridmesh.adapters.openadr.certificates import Credentials, OpenAdrPki
from gridmesh.adapters.openadr.events import DrEvent, DrSignal, EventRefused, check_event
from gridmesh.adapters.openadr.loop import LoopThread
from gridmesh.adapters.openadr.results import EventResult, Opt, event_result, readings_series
from gridmesh.analytics.dr_baseline import BaselineMethod
from gridmesh.errors import GridmeshError, NotFound
from gridmesh.model.scenario import Scenario

compat.install()

PATH_PREFIX = "/OpenADR2/Simple/2.0b"
# kW per reported unit for OpenADR's powerReal (unit W) by SI scale code
_KW_PER_UNIT = {"none": 1e-3, "k": 1.0, "M": 1e3}


class VtnError(GridmeshError):
    """The VTN cannot start (no credentials for a site, port in use...)."""


@dataclass(frozen=True)
class VtnConfig:
    """Where the VTN listens and how often VENs poll (OpenADR pull model); ``interval`` is the grid
    (baseline and results) on which reported telemetry is averaged."""

    vtn_id: str = "GRIDMESH-VTN"
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, see ``DrVtn.url``
    poll_interval: dt.timedelta = dt.timedelta(seconds=10)
    market_context: str = "oadr://gridmesh/dr"
    interval: dt.timedelta = dt.timedelta(minutes=15)
    baseline: BaselineMethod = field(default_factory=BaselineMethod)


@dataclass(frozen=True)
class Refusal:
    """A request the VTN refused: who (VEN id as claimed, certificate fingerprint), when and why."""

    at: dt.datetime
    ven: str | None
    fingerprint: str | None
    reason: str


@dataclass
class _Tracked:
    event: DrEvent
    oadr_ids: dict[str, str]  # VEN → openleadr event id
    opts: dict[str, Opt]
    cancelled: bool = False


def registry_from_scenario(scenario: Scenario, pki: OpenAdrPki) -> dict[str, str]:
    """One VEN per site of the scenario: site id → expected certificate fingerprint."""
    missing = sorted(set(scenario.network.sites) - set(pki.vens))
    if missing:
        raise VtnError(f"no VEN certificate for site(s) {', '.join(missing)}: provision them with provision_pki")
    return {site: pki.vens[site].fingerprint for site in scenario.network.sites}


class DrVtn:
    """The VTN service. ``start()`` returns the base URL VENs use; ``stop()`` shuts it down.

    ``history_kw(ven)`` supplies a VEN's past load (kW per ``config.interval``, aware index), e.g. from
    the historian, for baselines; reported telemetry is added to it.
    """

    def __init__(
        self,
        ca: Credentials,
        vtn: Credentials,
        fingerprints: Mapping[str, str],
        *,
        config: VtnConfig = VtnConfig(),
        history_kw: Callable[[str], pd.Series] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.config = config
        self._ca, self._vtn = ca, vtn
        self._fingerprints = dict(fingerprints)
        self._history = history_kw
        self._clock = clock
        self._lock = threading.Lock()
        self._registrations: dict[str, str] = {}
        self._readings: dict[str, list[tuple[dt.datetime, float]]] = {}
        self._events: dict[str, _Tracked] = {}
        self._by_oadr_id: dict[str, tuple[str, str]] = {}
        self._refusals: list[Refusal] = []
        self._loop = LoopThread("openadr-vtn")
        self._server: Any = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """Base URL for VENs (``https://host:port/OpenADR2/Simple/2.0b``)."""
        if self._url is None:
            raise VtnError("the VTN is not running")
        return self._url

    def start(self) -> str:
        self._loop.start()
        try:
            self._url = self._loop.run(self._start())
        except Exception:
            self._loop.stop()
            raise
        return self._url

    def stop(self) -> None:
        if self._runner is not None and self._loop.running:
            self._loop.run(self._runner.cleanup())
        self._runner, self._url = None, None
        self._loop.stop()

    async def _start(self) -> str:
        cert, key, ca = str(self._vtn.cert_path), str(self._vtn.key_path), str(self._ca.cert_path)
        server = OpenADRServer(
            vtn_id=self.config.vtn_id, cert=cert, key=key, http_cert=cert, http_key=key, http_ca_file=ca,
            http_host=self.config.host, http_port=self.config.port, http_path_prefix=PATH_PREFIX,
            requested_poll_freq=self.config.poll_interval, ven_lookup=self._ven_lookup, show_fingerprint=False,
        )
        server.add_handler("on_create_party_registration", self._on_create_party_registration)
        server.add_handler("on_cancel_party_registration", self._on_cancel_party_registration)
        server.add_handler("on_register_report", self._on_register_report)
        server.app.middlewares.append(self._audit)
        # OpenADRServer.run() would do the same but prints a banner and hides the bound port (port 0)
        runner = web.AppRunner(server.app)
        await runner.setup()
        site = web.TCPSite(runner, host=self.config.host, port=self.config.port, ssl_context=server.ssl_context)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise VtnError(f"cannot listen on {self.config.host}:{self.config.port}: {err}") from err
        server.app_runner = runner  # so that OpenADRServer.stop() also works
        self._server, self._runner = server, runner
        port = runner.addresses[0][1]
        return f"https://{self.config.host}:{port}{PATH_PREFIX}"

    # ----------------------------------------------------------------- registration
    def _ven_lookup(self, ven_id: str) -> dict[str, str | None] | None:
        """openleadr's hook: the fingerprint it checks TLS and signatures against; None for unknown VENs."""
        fingerprint = self._fingerprints.get(ven_id)
        if fingerprint is None:
            return None
        with self._lock:
            registration = self._registrations.get(ven_id)
        return {"ven_id": ven_id, "ven_name": ven_id, "fingerprint": fingerprint, "registration_id": registration}

    def _on_create_party_registration(self, payload: dict[str, Any]) -> tuple[str, str]:
        # openleadr has already matched the TLS certificate with the claimed ven_id; check again here for a
        # VEN that claims only a name (then openleadr skips its check)
        ven = payload.get("ven_id") or payload.get("ven_name")
        if ven not in self._fingerprints:
            raise errors.NotRegisteredOrAuthorizedError(f"VEN {ven!r} is not known to this VTN")
        if payload.get("fingerprint") != self._fingerprints[ven]:
            raise errors.NotRegisteredOrAuthorizedError(
                f"certificate fingerprint {payload.get('fingerprint')} is not the one provisioned for VEN {ven}"
            )
        registration = f"reg-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._registrations[ven] = registration
        return ven, registration

    def _on_cancel_party_registration(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self._registrations.pop(payload.get("ven_id", ""), None)
        return "oadrCanceledPartyRegistration", {"registration_id": payload.get("registration_id")}

    def registrations(self) -> dict[str, str]:
        """Registered VENs → their registration ids."""
        with self._lock:
            return dict(self._registrations)

    def refusals(self) -> list[Refusal]:
        """Refused registrations and messages, with openleadr's reason, oldest first."""
        with self._lock:
            return list(self._refusals)

    @web.middleware
    async def _audit(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Record refusals: OpenADR error replies (a ``responseCode`` other than 200) and HTTP 403s."""
        response: web.StreamResponse = await handler(request)
        body = response.text if isinstance(response, web.Response) else None
        reason = None
        if response.status == web.HTTPForbidden.status_code:
            reason = body or "forbidden"
        elif body and "responseCode>200<" not in body and "responseCode>" in body:
            _, reply = parse_message(body)
            reason = f"{reply['response']['response_code']} {reply['response']['response_description']}"
        if reason is not None:
            ven = None
            try:
                _, sent = parse_message(await request.read())
                ven = sent.get("ven_id") or sent.get("ven_name")
            except Exception:  # a malformed request is still recorded, without its VEN id
                ven = None
            refusal = Refusal(self._clock(), ven, get_cert_fingerprint_from_request(request), reason)
            with self._lock:
                self._refusals.append(refusal)
        return response

    # ----------------------------------------------------------------- reports
    def _on_register_report(
        self, ven_id: str, resource_id: str, measurement: str, unit: str | None, scale: str | None,
        min_sampling_interval: dt.timedelta, max_sampling_interval: dt.timedelta,
    ) -> tuple[Callable[[list[tuple[dt.datetime, float]]], None], dt.timedelta] | None:
        """Accept every VEN's real-power TELEMETRY_USAGE at its fastest offered rate (kW stored)."""
        if measurement != "RealPower" or unit != "W" or (scale or "none") not in _KW_PER_UNIT:
            return None
        return partial(self._on_readings, ven_id, _KW_PER_UNIT[scale or "none"]), min_sampling_interval

    def _on_readings(self, ven: str, kw_per_unit: float, values: list[tuple[dt.datetime, float]]) -> None:
        with self._lock:
            self._readings.setdefault(ven, []).extend((t, float(v) * kw_per_unit) for t, v in values)

    def readings(self, ven: str) -> pd.Series:
        """A VEN's reported load, kW per ``config.interval`` (mean of the samples in each interval)."""
        with self._lock:
            samples = list(self._readings.get(ven, ()))
        return readings_series(samples, self.config.interval)

    def sample_count(self, ven: str) -> int:
        with self._lock:
            return len(self._readings.get(ven, ()))

    # ----------------------------------------------------------------- events
    def create_event(
        self,
        vens: Sequence[str] | Mapping[str, float],
        signal: DrSignal | str,
        start: dt.datetime,
        duration: dt.timedelta,
        level: float | None = None,
        *,
        event_id: str | None = None,
    ) -> DrEvent:
        """Send an event to ``vens`` (site ids, all at ``level``; or a mapping site → level).

        Refused with ``EventRefused`` (reason and fix) when in the past, not positive in duration, for an
        unknown VEN or with a bad level. VENs receive it at their next poll.
        """
        event_id = event_id or f"dr-{uuid.uuid4().hex[:10]}"
        if self._runner is None:
            raise VtnError("the VTN is not running: start() it before creating events")
        if isinstance(vens, Mapping):
            levels = {str(v): float(x) for v, x in vens.items()}
        elif level is None:
            raise EventRefused(f"event {event_id}: level: no level given", "give the signal level")
        else:
            levels = dict.fromkeys(vens, float(level))
        with self._lock:
            if event_id in self._events:
                raise EventRefused(f"event {event_id}: event_id: already used", "choose another id")
        event = check_event(event_id, signal, start, duration, levels, now=self._clock(),
                            known_vens=self._fingerprints)
        tracked = _Tracked(event, {v: f"{event_id}.{i}" for i, v in enumerate(event.vens)},
                           dict.fromkeys(event.vens, Opt.PENDING))
        with self._lock:
            self._events[event_id] = tracked
            self._by_oadr_id.update({oid: (event_id, ven) for ven, oid in tracked.oadr_ids.items()})
        self._loop.run(self._send(tracked))
        return event

    async def _send(self, tracked: _Tracked) -> None:
        # one openleadr event per VEN: openleadr keeps one opt callback per event id and drops it after the
        # first answer, so a shared id would lose every other VEN's answer
        event = tracked.event
        for ven, level in event.levels.items():
            self._server.add_event(
                ven_id=ven, signal_name=event.signal.value, signal_type=event.signal.signal_type,
                intervals=[objects.Interval(dtstart=event.start, duration=event.duration, signal_payload=level)],
                callback=self._on_opt, event_id=tracked.oadr_ids[ven], market_context=self.config.market_context,
            )

    def _on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        with self._lock:
            key = self._by_oadr_id.get(event_id)
            if key is not None and key[1] == ven_id:
                self._events[key[0]].opts[ven_id] = Opt.IN if opt_type == Opt.IN.value else Opt.OUT

    def cancel_event(self, event_id: str) -> None:
        """Cancel an event that has not ended; VENs learn it at their next poll."""
        with self._lock:
            tracked = self._events.get(event_id)
        if tracked is None:
            raise NotFound(f"no DR event {event_id!r}", "list events with events()")
        if tracked.cancelled:
            raise EventRefused(f"event {event_id}: already cancelled", "nothing to do")
        if tracked.event.end <= self._clock():
            raise EventRefused(f"event {event_id}: already ended at {tracked.event.end.isoformat()}", "nothing to do")
        self._loop.run(self._cancel(tracked))
        with self._lock:
            tracked.cancelled = True

    async def _cancel(self, tracked: _Tracked) -> None:
        for ven, oadr_id in tracked.oadr_ids.items():
            self._server.cancel_event(ven, oadr_id)

    def events(self) -> list[tuple[DrEvent, dict[str, Opt], bool]]:
        """Every event with each VEN's answer so far and whether it was cancelled, in creation order."""
        with self._lock:
            return [(t.event, dict(t.opts), t.cancelled) for t in self._events.values()]

    def results(self, *, excluded_days: Sequence[dt.date] = ()) -> list[EventResult]:
        """Each event's requested kW, opted-in VENs and delivered kWh against the baseline
        (``config.baseline``; past event days are excluded from baselines automatically)."""
        events = self.events()
        past = {e.start.date() for e, _, cancelled in events if not cancelled}
        out = []
        for event, opts, cancelled in events:
            actual = {v: self.readings(v) for v in event.vens}
            history = {v: self._history(v) for v in event.vens} if self._history is not None else {}
            skip = (past - {event.start.date()}) | set(excluded_days)
            out.append(event_result(event, cancelled=cancelled, opts=opts, actual_kw=actual, history_kw=history,
                                    method=self.config.baseline, excluded_days=sorted(skip)))
        return out
