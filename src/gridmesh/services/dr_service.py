"""Demand response in the live platform: the OpenADR VTN inside the centre, automatic peak events, results;
and one VEN per microgrid in the field.

Centre side (:class:`DrService`): the VTN (:mod:`gridmesh.adapters.openadr`, mutual TLS, certificates
provisioned once under ``<keys>/openadr``) knows one VEN per microgrid (level-1 site). Operators create and
cancel events through the API; with a threshold set, a thread checks every ``step_minutes`` of grid time
whether the profile forecast of the substation's net load (or a site's consumption) over the next
``horizon_h`` exceeds it and creates one ``LOAD_DISPATCH`` event per run above it
(:func:`~gridmesh.adapters.openadr.events_for_peaks`), split over the microgrids by flexible kW.

Field side (:func:`start_vens`): each microgrid's VEN reports the site's consumption from the field
simulator's last power flow, minus the kW shed by every accepted event active now; accepting an event
records the instruction (the field's loads themselves are not changed).

Time. openleadr runs events on the wall clock (it decides an event's status from ``datetime.now()``), so
events are wall-clock: grid-time instants of the forecast are converted with the platform speed
(``wall = wall_now + (t − grid_now) / speed``) and the VTN averages reports per ``interval`` of wall time
(default 15 grid minutes at the platform speed). The baseline of a result is modelled: each VEN's
consumption from the scenario's profiles at the same grid instants on the 20 days before (the profile
twin of the "10 of 10" baseline), since a live run rarely has ten weekdays of history.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridmesh.adapters.openadr import (
    AlwaysOptIn,
    DrEvent,
    DrInstruction,
    DrSignal,
    DrVtn,
    EventRefused,
    EventResult,
    OpenAdrPki,
    Opt,
    OptPolicy,
    SiteVen,
    VenConfig,
    VenFleet,
    VtnConfig,
    events_for_peaks,
    fingerprint_of,
    issue_certificate,
    provision_pki,
)
from gridmesh.adapters.openadr.certificates import CA_NAME, VTN_NAME, Credentials
from gridmesh.api.ports import DrEventView, DrResultView, VenResultView
from gridmesh.errors import GridmeshError
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites
from gridmesh.physics.powerflow import FloatArray
from gridmesh.services.clock import Clock
from gridmesh.services.field import FieldSimulator
from gridmesh.sim.profiles_at import ProfilesAt

log = logging.getLogger(__name__)
PKI_FOLDER = "openadr"
HISTORY_DAYS = 20
SUBSTATION = "substation"


def microgrids(scenario: Scenario) -> list[str]:
    """The sites that get a VEN: every microgrid (groups and VPPs are their members' sum)."""
    return [s.id for s in scenario.network.sites.values() if s.level is SiteLevel.MICROGRID]


def _loaded(folder: Path, name: str) -> Credentials | None:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    return Credentials(name, cert, key, fingerprint_of(cert)) if cert.exists() and key.exists() else None


def load_pki(folder: Path, ven_ids: Sequence[str]) -> OpenAdrPki:
    """The PKI the centre provisioned (the field needs the CA, the VTN's certificate and the VENs' keys)."""
    ca, vtn = _loaded(folder, CA_NAME), _loaded(folder, VTN_NAME)
    vens = {v: _loaded(folder / "vens", v) for v in ven_ids}
    missing = [n for n, c in [("ca", ca), ("vtn", vtn), *vens.items()] if c is None]
    if missing or ca is None or vtn is None:
        raise GridmeshError(
            f"OpenADR certificates missing under {folder}: {', '.join(missing)} — start the centre "
            "once with this data folder (it provisions them) or copy its keys/openadr folder here"
        )
    return OpenAdrPki(ca, vtn, {v: c for v, c in vens.items() if c is not None})


def ensure_pki(folder: Path, ven_ids: Sequence[str]) -> OpenAdrPki:
    """Load the PKI under ``folder``, provisioning it on first use (and a certificate for any new VEN)."""
    ca, vtn = _loaded(folder, CA_NAME), _loaded(folder, VTN_NAME)
    if ca is None or vtn is None:
        return provision_pki(folder, ven_ids)
    vens = {v: _loaded(folder / "vens", v) or issue_certificate(ca, folder / "vens", v) for v in ven_ids}
    return OpenAdrPki(ca, vtn, vens)


class SiteModel:
    """Each microgrid's consumption (kW, its loads) and the grid's net load (loads − generation) from the
    scenario's profiles at any grid instant (naive UTC)."""

    def __init__(self, scenario: Scenario) -> None:
        net = scenario.network
        self.profiles = ProfilesAt(net, scenario.profiles)
        sites = resolve_sites(net)
        buses = [net.loads[k].bus for k in net.loads]
        self.masks = {s: np.array([b in sites[s].buses for b in buses], dtype=bool) for s in microgrids(scenario)}
        flexible = np.array([load.p_kw * load.flexible_share for load in net.loads.values()])
        self.flexible_kw = {s: float(flexible[mask].sum()) for s, mask in self.masks.items()}

    def kw(self, when: dt.datetime) -> dict[str, float]:
        """Per microgrid its consumption, and ``substation``: the whole grid's loads minus generation."""
        values = self.profiles.values(when.replace(tzinfo=None))
        load = values.load_p_kw[0]
        out = {s: float(load[m].sum()) for s, m in self.masks.items()}
        out[SUBSTATION] = float(load.sum() - values.gen_p_kw[0].sum())
        return out


@dataclass(frozen=True)
class DrSettings:
    """The centre's VTN and its peak trigger (``threshold_kw`` None: operator events only).

    ``target`` is ``substation`` (net load) or a microgrid id (its consumption); ``interval`` is the
    VTN's averaging interval in wall time (None: 15 grid minutes at the platform speed, at least 1 s).
    """

    host: str = "127.0.0.1"
    port: int = 8443
    poll_s: float = 10.0
    interval: dt.timedelta | None = None
    threshold_kw: float | None = None
    target: str = SUBSTATION
    horizon_h: float = 6.0
    step_minutes: float = 15.0
    min_shed_kw: float = 0.0


class DrService:
    """The VTN of the centre, operator events, the peak trigger and results."""

    def __init__(
        self, scenario: Scenario, keys: Path, *, clock: Clock, speed: float = 1.0, settings: DrSettings | None = None
    ) -> None:
        self.settings = s = settings or DrSettings()
        self.clock, self.speed = clock, speed
        self.sites = microgrids(scenario)
        if s.threshold_kw is not None and s.target not in (SUBSTATION, *self.sites):
            known = ", ".join(self.sites)
            raise ValueError(f"DR target {s.target!r} is neither 'substation' nor a microgrid ({known})")
        self.pki = ensure_pki(keys / PKI_FOLDER, self.sites)
        self.model = SiteModel(scenario)
        interval = s.interval or dt.timedelta(seconds=max(1.0, 900.0 / speed))
        config = VtnConfig(host=s.host, port=s.port, poll_interval=dt.timedelta(seconds=s.poll_s), interval=interval)
        registry = {v: self.pki.vens[v].fingerprint for v in self.sites}
        self.vtn = DrVtn(self.pki.ca, self.pki.vtn, registry, config=config, history_kw=self._history)
        self.auto_refusals: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.vtn.url

    def start(self) -> DrService:
        self.vtn.start()
        if self.settings.threshold_kw is not None:
            self._thread = threading.Thread(target=self._run, name="dr-peak-trigger", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.vtn.stop()

    # -- time ---------------------------------------------------------------------------------------
    def to_wall(self, grid: dt.datetime) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + (grid - self.clock.now()) / self.speed

    def to_grid(self, wall: dt.datetime) -> dt.datetime:
        return self.clock.now() + (wall - dt.datetime.now(dt.UTC)) * self.speed

    # -- operator events ------------------------------------------------------------------------------
    def aligned(self, start: dt.datetime, duration: dt.timedelta) -> tuple[dt.datetime, dt.timedelta]:
        """``start`` and the end moved up to the VTN's interval grid (whole intervals from midnight UTC):
        the VTN averages reports per interval, so an event must cover whole intervals to be measured."""
        if start.tzinfo is None:
            return start, duration  # refused by the event check, with its reason
        step = pd.Timedelta(self.vtn.config.interval)
        first = pd.Timestamp(start).ceil(step)
        last = pd.Timestamp(start + duration).ceil(step)
        return first.to_pydatetime(), (last - first).to_pytimedelta()

    def create(
        self, levels: Mapping[str, float], signal: DrSignal | str, start: dt.datetime, duration: dt.timedelta
    ) -> DrEvent:
        """An event (wall-clock ``start``, moved to the interval grid: :meth:`aligned`); refused with
        ``EventRefused`` (reason and fix) when invalid."""
        begin, length = self.aligned(start, duration)
        return self.vtn.create_event(dict(levels), signal, begin, length if duration > dt.timedelta(0) else duration)

    def cancel(self, event_id: str) -> None:
        self.vtn.cancel_event(event_id)

    def events(self) -> list[tuple[DrEvent, dict[str, Opt], bool]]:
        return self.vtn.events()

    def results(self) -> list[EventResult]:
        return self.vtn.results()

    # -- the peak trigger ---------------------------------------------------------------------------
    def forecast(self, start: dt.datetime) -> pd.Series:
        """The target's profile forecast (kW) from ``start`` (grid time, aware) over the horizon, per 15 min."""
        index = pd.date_range(start, periods=max(int(self.settings.horizon_h * 4), 2), freq="15min")
        values = [self.model.kw(t.to_pydatetime())[self.settings.target] for t in index]
        return pd.Series(values, index=index, dtype=float)

    def check_peaks(self) -> list[DrEvent]:
        """Create the events the forecast asks for (each run above the threshold once); returns them."""
        s = self.settings
        assert s.threshold_kw is not None
        now = self.clock.now()
        first = pd.Timestamp(now).ceil("15min").to_pydatetime()
        weights = self.model.flexible_kw if sum(self.model.flexible_kw.values()) > 0 else None
        planned = events_for_peaks(
            self.forecast(first), s.threshold_kw, vens=self.sites, weights=weights, min_shed_kw=s.min_shed_kw
        )
        known = {e.event_id for e, _, _ in self.vtn.events()}
        lead = dt.timedelta(seconds=2 * s.poll_s)  # a VEN learns an event at its next poll
        created = []
        for event_id, start, duration, levels in planned:
            if event_id in known:
                continue
            begin = max(self.to_wall(start), dt.datetime.now(dt.UTC) + lead)
            begin, length = self.aligned(begin, self.to_wall(start + duration) - begin)
            if length <= dt.timedelta(0):
                continue
            try:
                created.append(self.vtn.create_event(levels, DrSignal.LOAD_DISPATCH, begin, length, event_id=event_id))
            except EventRefused as exc:
                self.auto_refusals.append(str(exc))
                log.warning("peak event not created: %s", exc)
        return created

    def _run(self) -> None:
        wait = max(self.settings.step_minutes * 60 / self.speed, 1.0)
        while not self._stop.is_set():
            try:
                self.check_peaks()
            except Exception:
                log.exception("DR peak check failed; the next one retries")
            self._stop.wait(wait)

    # -- baseline history ---------------------------------------------------------------------------
    def _history(self, ven: str) -> pd.Series:
        """Modelled past load of ``ven`` on the 20 days before each of its events (wall-clock index)."""
        interval = self.vtn.config.interval
        stamps: list[pd.Timestamp] = []
        values: list[float] = []
        for event, _, _ in self.vtn.events():
            if ven not in event.levels:
                continue
            grid = pd.date_range(event.start, event.end, freq=interval, inclusive="left")
            for days in range(1, HISTORY_DAYS + 1):
                back = dt.timedelta(days=days)
                for t in grid:
                    stamps.append(t - back)
                    values.append(self.model.kw(self.to_grid(t.to_pydatetime()) - back)[ven])
        if not stamps:
            return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
        series = pd.Series(values, index=pd.DatetimeIndex(stamps), dtype=float)
        return series[~series.index.duplicated()].sort_index()


# -- field side ---------------------------------------------------------------------------------------
class SiteDemand:
    """How each microgrid answers its VEN's instructions, and what the VEN reports.

    An active shed lowers the site's loads in the field's power flow (``field.load_shed``): the flexible
    loads first, in proportion to what each may defer now, or in proportion to consumption where the site
    has none; never below zero. The VEN reports the site's consumption from that power flow.
    """

    def __init__(self, scenario: Scenario, field: FieldSimulator) -> None:
        self.field = field
        sites = resolve_sites(scenario.network)
        loads = [scenario.network.loads[k] for k in field.grid.engine.index.loads]
        self.masks = {s: np.array([x.bus in sites[s].buses for x in loads], dtype=bool) for s in microgrids(scenario)}
        self._share = np.array([x.flexible_share for x in loads], dtype=np.float64)
        self._lock = threading.Lock()
        self._instructions: dict[str, dict[str, DrInstruction]] = {s: {} for s in self.masks}
        field.load_shed = self.shed_per_load

    def shed_per_load(self) -> FloatArray:
        """kW to shed per load now (power-flow order), from the active instructions of every site."""
        state = self.field.last_state
        shed = np.zeros(self._share.size)
        if state is None:
            return shed
        applied = np.zeros(self._share.size) if state.load_shed_kw is None else state.load_shed_kw
        demand = np.maximum(state.load_p_kw + applied, 0.0)  # before the shed of that power flow
        for site, mask in self.masks.items():
            kw = self.shed_kw(site)
            if kw <= 0:
                continue
            flexible = np.where(mask, demand * self._share, 0.0)
            weight = flexible if flexible.sum() > 0 else np.where(mask, demand, 0.0)
            if weight.sum() > 0:
                shed += np.minimum(kw * weight / weight.sum(), demand)
        return shed

    def on_instruction(self, instruction: DrInstruction) -> None:
        """Keep the latest word on each event (a cancellation replaces the acceptance)."""
        with self._lock:
            self._instructions[instruction.site][instruction.event_id] = instruction

    def shed_kw(self, site: str, now: dt.datetime | None = None) -> float:
        at = now or dt.datetime.now(dt.UTC)
        with self._lock:
            live = list(self._instructions[site].values())
        return float(sum(i.shed_kw for i in live if not i.cancelled and i.active_at(at)))

    def consumption_kw(self, site: str) -> float:
        state = self.field.last_state
        return 0.0 if state is None else float(state.load_p_kw[self.masks[site]].sum())

    def load_kw(self, site: str) -> float:
        """What the VEN reports: the site's consumption in the field's latest power flow, corrected by the
        shed that changed since (the site's loads answer at once; the power flow follows at its next tick)."""
        state = self.field.last_state  # consumption and the shed it was solved with, read together
        if state is None:
            return 0.0
        shed = state.load_shed_kw
        applied = 0.0 if shed is None else float(shed[self.masks[site]].sum())
        consumption = float(state.load_p_kw[self.masks[site]].sum())
        return consumption - (self.shed_kw(site) - applied)


def start_vens(
    scenario: Scenario,
    field: FieldSimulator,
    vtn_url: str,
    keys: Path,
    *,
    report_interval: dt.timedelta = dt.timedelta(seconds=60),
    policy: Callable[[str], OptPolicy] = lambda _: AlwaysOptIn(),
) -> tuple[VenFleet, SiteDemand]:
    """One VEN per microgrid against ``vtn_url``, with the certificates under ``<keys>/openadr``.

    Returns the running fleet (a VEN the VTN refused stays stopped; see ``fleet.vens[site].refusal``)
    and the demand model the VENs report."""
    sites = microgrids(scenario)
    pki = load_pki(keys / PKI_FOLDER, sites)
    demand = SiteDemand(scenario, field)
    vens = [
        SiteVen(
            VenConfig(
                site, vtn_url, pki.vens[site], pki.ca.cert_path, pki.vtn.fingerprint, report_interval=report_interval
            ),
            load_kw=lambda site=site: demand.load_kw(site),  # type: ignore[misc]
            on_instruction=demand.on_instruction,
            policy=policy(site),
        )
        for site in sites
    ]
    fleet = VenFleet(vens)
    registered = fleet.start()
    refused = {s: fleet.vens[s].refusal for s, ok in registered.items() if not ok}
    if refused:
        log.warning("VENs not registered: %s", refused)
    return fleet, demand


__all__ = [
    "DrService",
    "DrSettings",
    "SiteDemand",
    "SiteModel",
    "ensure_pki",
    "event_view",
    "load_pki",
    "microgrids",
    "result_view",
    "start_vens",
]


# -- API views ----------------------------------------------------------------------------------------
def event_view(event: DrEvent, opts: Mapping[str, Opt], cancelled: bool) -> DrEventView:
    now = dt.datetime.now(dt.UTC)
    status = (
        "cancelled" if cancelled else "scheduled" if now < event.start else "active" if now < event.end else "completed"
    )
    return DrEventView(
        id=event.event_id,
        signal=event.signal.value,
        start=event.start,
        end=event.end,
        levels=dict(event.levels),
        opts={v: o.value for v, o in opts.items()},
        status=status,
        requested_kw=event.requested_kw,
    )


def result_view(result: EventResult) -> DrResultView:
    def r(x: float | None, digits: int = 3) -> float | None:
        return None if x is None or not np.isfinite(x) else round(float(x), digits)

    return DrResultView(
        event_id=result.event.event_id,
        cancelled=result.cancelled,
        requested_kw=r(result.requested_kw),
        delivered_kwh=r(result.delivered_kwh, 6),
        opted_in=list(result.opted_in),
        vens=[
            VenResultView(
                ven=v.ven,
                opt=v.opt.value,
                requested_kw=r(v.requested_kw),
                delivered_kwh=r(v.delivered_kwh, 6),
                mean_reduction_kw=r(v.mean_reduction_kw),
                percent_of_requested=r(v.percent_of_requested, 1),
                note=v.note,
            )
            for v in result.vens
        ],
    )
