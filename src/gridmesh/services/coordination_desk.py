"""The centre's coordination desk: day-ahead ADMM over the microgrids, and the VPP's envelope, on demand.

An operator (or a schedule) asks for the day-ahead co-optimisation of a day: the desk builds the case from
the scenario's profiles for that day (the microgrids' private data and the feeder's limits, as
``gridmesh coordinate demo`` does), runs the ADMM rounds in a worker thread while recording each round's
residuals for the dashboard, solves the same case centralised for the gap, and sends every microgrid's
edge agent its PCC schedule (a signed plan, :class:`~gridmesh.services.edge_link.PlanPublisher`). One run
at a time; a second request while one runs is refused with the reason.

Days are read from the profiles as the live grid reads them: a day outside the profiles at the same date
of the profiles' year; the plans sent keep the real day. The VPP of a day (its twin and
baseline) is built once per day: its envelope (:mod:`gridmesh.optim.vpp_envelope`) and the delivery of an award
(disaggregated at least cost, run through the twin) are computed from it on demand.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np

from gridmesh.errors import CommandRefused, GridmeshError
from gridmesh.model.scenario import Scenario
from gridmesh.optim.admm import AdmmResult, AdmmSettings, Residuals, solve_admm
from gridmesh.optim.coordination_case import CoordinationCase, demo_case, solve_centralised
from gridmesh.optim.vpp_disaggregate import disaggregate
from gridmesh.optim.vpp_envelope import vpp_envelope
from gridmesh.services.edge_link import PlanPublisher
from gridmesh.sim.profiles_at import in_profile_year
from gridmesh.sim.twin import StudyTwin
from gridmesh.sim.vpp_study import VppCase, deliver, delivery_frame, envelope_document, vpp_case, vpp_sites

log = logging.getLogger(__name__)

RunState = Literal["running", "done", "failed"]


@dataclass
class CoordinationRun:
    """One day-ahead co-optimisation: its rounds as they come, then the result."""

    id: str
    day: date
    requested_by: str
    started: datetime
    state: RunState = "running"
    agents: tuple[str, ...] = ()
    rounds: list[Residuals] = field(default_factory=list)
    finished: datetime | None = None
    converged: bool = False
    objective_eur: float | None = None
    centralised_eur: float | None = None
    pcc_kw: dict[str, list[float]] = field(default_factory=dict)  # per microgrid, hourly
    price_eur_per_kw: dict[str, list[float]] = field(default_factory=dict)
    plans_sent: tuple[str, ...] = ()
    error: str = ""

    @property
    def gap(self) -> float | None:
        """Relative distance of the distributed plan's cost from the centralised optimum."""
        if self.objective_eur is None or not self.centralised_eur:
            return None
        return (self.objective_eur - self.centralised_eur) / abs(self.centralised_eur)


def profile_day(scenario: Scenario, day: date) -> datetime:
    """Midnight of ``day`` in the profiles (a live day is read at the same date of the profiles' year)."""
    return in_profile_year(scenario.profiles, datetime.combine(day, datetime.min.time()))


def day_case(scenario: Scenario, day: date) -> CoordinationCase:
    """The microgrids and feeder of ``day`` at hourly resolution, from the scenario's profiles."""
    twin = StudyTwin(scenario.with_time(start=profile_day(scenario, day), days=1))
    window, _ = twin.window(0, twin.steps)
    return demo_case(window, twin.engine)


class RunStopped(GridmeshError):
    """The centre stopped while a coordination run was in progress."""


class CoordinationDesk:
    """Runs day-ahead coordination and VPP envelopes for the centre; thread-safe for the API."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        publisher: PlanPublisher | None = None,
        settings: AdmmSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep: int = 20,
    ) -> None:
        self.scenario, self.publisher, self.clock, self.keep = scenario, publisher, clock, keep
        self.settings = settings or AdmmSettings()
        self._runs: list[CoordinationRun] = []
        self._cases: dict[tuple[str, date], VppCase] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- day-ahead coordination -----------------------------------------------------------------------
    def start(self, day: date, user: str) -> CoordinationRun:
        """Start the day-ahead co-optimisation of ``day`` in the background; refused while one runs."""
        with self._lock:
            if self._stopping.is_set():
                raise CommandRefused("the centre is stopping", "start it again, then ask")
            if self._worker is not None and self._worker.is_alive():
                raise CommandRefused("a coordination run is in progress", "wait for it to finish, then ask again")
            run = CoordinationRun(f"co-{next(self._ids)}", day, user, self.clock())
            self._runs = [run, *self._runs][: self.keep]
            self._worker = threading.Thread(target=self._run, args=(run,), name=f"coordination-{run.id}", daemon=True)
            self._worker.start()
        return run

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running coordination (if any) has finished (tests, shutdown)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """No new runs; a run in progress ends at its next round (``failed``, the centre stopped)."""
        self._stopping.set()
        self.wait(timeout)

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise RunStopped("the centre stopped before the run finished")

    def runs(self) -> list[CoordinationRun]:
        """Runs, newest first (the running one included, its rounds so far)."""
        with self._lock:
            return list(self._runs)

    def _run(self, run: CoordinationRun) -> None:
        try:
            case = day_case(self.scenario, run.day)
            run.agents = tuple(m.id for m in case.microgrids)

            def on_round(residuals: Residuals) -> None:
                run.rounds.append(residuals)
                self._check_stopping()

            self._check_stopping()
            result = solve_admm(case.microgrids, case.feeder, settings=self.settings, on_round=on_round)
            self._check_stopping()
            central = solve_centralised(case)
            self._finish(run, case, result, central.objective_eur)
        except (GridmeshError, ValueError) as exc:
            log.warning("coordination %s failed: %s", run.id, exc)
            run.error, run.state, run.finished = str(exc), "failed", self.clock()

    def _finish(self, run: CoordinationRun, case: CoordinationCase, result: AdmmResult, central_eur: float) -> None:
        run.converged, run.objective_eur, run.centralised_eur = result.converged, result.objective_eur, central_eur
        run.pcc_kw = {a: np.round(result.pcc_kw[i], 3).tolist() for i, a in enumerate(run.agents)}
        run.price_eur_per_kw = {a: np.round(result.price[i], 6).tolist() for i, a in enumerate(run.agents)}
        if self.publisher is not None and result.converged:
            start = datetime.combine(run.day, datetime.min.time(), tzinfo=UTC)
            start_ns = int(start.timestamp() * 1e9)
            step_s = case.feeder.dt_h * 3600.0
            lifetime_ns = int((timedelta(days=1) + timedelta(seconds=step_s)).total_seconds() * 1e9)
            for agent, schedule in run.pcc_kw.items():
                self.publisher.publish(
                    agent, start_ns=start_ns, step_s=step_s, pcc_kw=schedule, lifetime_ns=lifetime_ns
                )
            run.plans_sent = run.agents
        run.state, run.finished = "done", self.clock()

    # -- the VPP --------------------------------------------------------------------------------------
    def vpp_sites(self) -> list[str]:
        return vpp_sites(self.scenario.network)

    def _case(self, site: str | None, day: date) -> VppCase:
        """The VPP ``site`` (default: the first) on ``day``, built once (a twin of the day and its baseline)."""
        sites = self.vpp_sites()
        chosen = site or (sites[0] if sites else "")
        with self._lock:
            case = self._cases.get((chosen, day))
        if case is None:
            case = vpp_case(self.scenario, site=chosen, day=profile_day(self.scenario, day))
            with self._lock:
                self._cases[(chosen, day)] = case
        return case

    def envelope(self, site: str | None, day: date) -> dict[str, Any]:
        """The VPP's envelope for ``day``: per interval up/down capability, the storage energy window and the
        cost curve (:func:`~gridmesh.sim.vpp_study.envelope_document`)."""
        started = time.perf_counter()
        case = self._case(site, day)
        document = envelope_document(case, vpp_envelope(case.fleet))
        document["seconds"] = time.perf_counter() - started
        return document

    def dispatch(self, site: str | None, day: date, award_kw: Sequence[float]) -> dict[str, Any]:
        """Disaggregate an award (kW per interval, positive: more injection) to the VPP's assets at least cost,
        run the day's twin with it and report delivery against the award (per interval and totals)."""
        case = self._case(site, day)
        award = np.asarray(award_kw, dtype=np.float64)
        if award.shape != (len(case.times),) or not np.isfinite(award).all():
            raise ValueError(f"award_kw must be {len(case.times)} finite values (one per interval of the day)")
        envelope = vpp_envelope(case.fleet)
        delivery = deliver(case, disaggregate(case.fleet, award, envelope=envelope))
        frame = delivery_frame(case, envelope, delivery)
        intervals: dict[str, list[Any]] = {"time": [t.isoformat() for t in frame["time"]]}
        for column in ("award_kw", "target_kw", "delivered_kw", "shortfall_kw"):
            intervals[column] = np.round(frame[column].to_numpy(dtype=np.float64), 3).tolist()
        intervals["reason"] = [str(r) for r in frame["reason"]]
        return {"site": case.site, "day": day.isoformat(), "summary": delivery.summary, "intervals": intervals}
