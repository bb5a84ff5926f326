"""FLISR as a live service: a protection lockout in, isolation and restoration commands out.

A *case* opens when a switch device reports ``lockout`` (a permanent fault: the reclose sequence
failed). After a short settle time — fault passage indicators arrive as events and telemetry right
after the trip — the fault is located from the tripped devices and the indicators (``FltInd``), a plan
is computed on the grid as reported now (switch positions from telemetry, loads from the meters), and
then either executed at once (automatic mode) or held for an operator's confirmation. Execution sends
the steps one by one through the command service (checked, signed, acknowledged); a switch that refuses
or does not answer makes the planner produce the next-best plan without it. After the repair the
operator orders the return to the normal configuration (break before make). Every step is an event in
the historian (kind ``flisr``) with its timestamp, so a case can be replayed from the event log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gridmesh.errors import CommandRefused, NotFound
from gridmesh.model.network import Network
from gridmesh.model.sections import sections_of
from gridmesh.optim.flisr import Plan, assert_valid, next_plan, plan
from gridmesh.optim.flisr_check import SwitchingCheck
from gridmesh.optim.flisr_locate import locate
from gridmesh.optim.flisr_types import PlanRefused, Step
from gridmesh.optim.normal_state import return_to_normal
from gridmesh.services.commands import CommandService
from gridmesh.services.historian.base import StoredEvent
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 10.0


class FlisrMode(StrEnum):
    AUTOMATIC = "automatic"
    CONFIRM = "confirm"  # operator-confirmed: the plan waits on the dashboard


class CaseStatus(StrEnum):
    AWAITING = "awaiting-confirmation"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"


@dataclass
class FlisrCase:
    """One fault response (or one return to normal), with its plan and what happened, in order."""

    id: str
    kind: str  # "fault" or "return-to-normal"
    opened_ns: int
    trips: tuple[str, ...]
    status: CaseStatus = CaseStatus.AWAITING
    plan: Plan | None = None
    steps: tuple[Step, ...] = ()
    plan_ms: float = 0.0
    done: list[tuple[Step, str]] = field(default_factory=list)  # (step, outcome)
    log: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


class FlisrService:
    """Opens, plans and executes FLISR cases; thread-safe, one worker thread per executing case."""

    def __init__(
        self,
        network: Network,
        catalogue: Catalogue,
        commands: CommandService,
        *,
        present: Callable[[], Network],
        indications: Callable[[], Mapping[str, bool]],
        loads_kw: Callable[[], Mapping[str, float]],
        clock: Callable[[], int],
        on_event: Callable[[list[StoredEvent]], None],
        mode: FlisrMode = FlisrMode.AUTOMATIC,
        settle_s: float = 0.3,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.mode, self.settle_s, self.ack_timeout_s = mode, settle_s, ack_timeout_s
        self.commands, self.clock, self.on_event = commands, clock, on_event
        self._present, self._indications, self._loads = present, indications, loads_kw
        self._check = SwitchingCheck(network)
        self._device_of = {d.element: d.id for d in catalogue.devices.values() if d.kind is DeviceKind.SWITCH}
        self._cases: dict[str, FlisrCase] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0
        self._timer: threading.Timer | None = None
        self._workers: list[threading.Thread] = []
        self._first_lockout = 0.0
        self._stopped = threading.Event()

    def stop(self, timeout_s: float = 30.0) -> None:
        """No new cases (a pending one is dropped); executing cases stop after their current step. Returns
        once the threads that open and execute cases are done, so that nothing is logged after the
        historian behind ``on_event`` has closed."""
        with self._lock:
            self._stopped.set()
            timer, self._timer = self._timer, None
            threads = [*self._workers, *([timer] if timer is not None else [])]
        if timer is not None:
            timer.cancel()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- opening cases --------------------------------------------------------------------------------
    def lockout(self, switch: str) -> None:
        """A protective device locked out; plan after the settle time (indicators arrive meanwhile)."""
        with self._lock:
            if self._stopped.is_set() or switch in self._pending:
                return
            if not self._pending:
                self._first_lockout = time.time()
            self._pending.add(switch)
            self._timer = threading.Timer(self.settle_s, self._open_case)
            self._timer.daemon = True
            self._timer.start()
            self._track(self._timer)  # a timer already opening a case is waited for too

    def _track(self, thread: threading.Thread) -> None:
        """Keep ``thread`` for :meth:`stop` to wait for (the caller holds the lock)."""
        self._workers = [t for t in self._workers if t.is_alive()]
        self._workers.append(thread)

    def _next_id(self, kind: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{kind}-{self.clock() // 1_000_000}-{self._counter}"

    def _open_case(self) -> None:
        with self._lock:
            trips, self._pending = tuple(sorted(self._pending)), set()
            lockout_wall = self._first_lockout
            if self._stopped.is_set():
                return
        if not trips:
            return
        case = FlisrCase(self._next_id("fault"), "fault", self.clock(), trips)
        with self._lock:
            self._cases[case.id] = case
        self._note(case, "opened", f"lockout of {', '.join(trips)}", lockout_wall_s=lockout_wall)
        try:
            self._plan(case)
        except PlanRefused as refused:
            case.message = str(refused)
            self._note(case, "refused", str(refused), severity="warning")
            case.status = CaseStatus.FAILED
            return
        if self.mode is FlisrMode.AUTOMATIC:
            self._execute(case)

    def _plan(self, case: FlisrCase) -> None:
        started = time.perf_counter()
        grid = self._present()
        sections = sections_of(grid)
        indications = {sw: v for sw, v in self._indications().items() if sw in sections.switch_sides}
        location = locate(grid, sections, case.trips, indications)
        chosen = plan(grid, sections, location, self._loads(), check=self._check)
        case.plan, case.steps = chosen, chosen.steps
        case.plan_ms = (time.perf_counter() - started) * 1e3
        r = chosen.chosen
        self._note(
            case,
            "planned",
            f"fault in section(s) {sorted(location.faulted)} (confidence {location.confidence:.2f}); "
            f"{len(r.steps)} steps restore {r.restored_customers} customers / {r.restored_kw:.0f} kW, "
            f"{r.unrestored_customers} wait for repair; planned in {case.plan_ms:.0f} ms",
            steps=[str(s) for s in r.steps],
            conflicting=list(location.conflicting),
            plan_ms=round(case.plan_ms, 1),
        )

    def return_to_normal(self, user: str) -> FlisrCase:
        """A case that puts every remote switch back to its normal state (after the repair)."""
        steps = return_to_normal(self._present())
        case = FlisrCase(self._next_id("normal"), "return-to-normal", self.clock(), (), steps=steps)
        with self._lock:
            self._cases[case.id] = case
        ordered = f"return to normal ordered by {user}: {len(steps)} steps"
        self._note(case, "opened", ordered, steps=[str(s) for s in steps])
        if self.mode is FlisrMode.AUTOMATIC:
            self._execute(case)
        return case

    # -- executing ------------------------------------------------------------------------------------
    def confirm(self, case_id: str, user: str) -> FlisrCase:
        """Execute an awaiting case, unless the grid changed since it was planned (then it is refused)."""
        case = self.case(case_id)
        if case.status is not CaseStatus.AWAITING:
            raise CommandRefused(f"case {case_id} is {case.status.value}, not awaiting confirmation")
        if case.plan is not None:
            try:
                assert_valid(case.plan, self._present())
            except PlanRefused as stale:
                self._note(case, "refused", f"confirmation by {user} refused: {stale}", severity="warning")
                raise
        self._note(case, "confirmed", f"confirmed by {user}")
        self._execute(case)
        return case

    def _execute(self, case: FlisrCase) -> None:
        case.status = CaseStatus.EXECUTING
        thread = threading.Thread(target=self._run, args=(case,), name=f"flisr:{case.id}", daemon=True)
        with self._lock:
            thread.start()
            self._track(thread)

    def _run(self, case: FlisrCase) -> None:
        queue = list(case.steps)
        while queue:
            if self._stopped.is_set():
                self._fail(case, f"the centre stopped with {len(queue)} steps left")
                return
            step = queue.pop(0)
            outcome = self._operate(step)
            case.done.append((step, outcome))
            self._note(case, "step", f"{step}: {outcome}", switch=step.switch, action=str(step.action), outcome=outcome)
            if outcome == "done":
                continue
            if case.plan is None:
                self._fail(case, f"{step.switch} did not operate: {outcome}")
                return
            try:
                case.plan = next_plan(case.plan, step.switch)
            except PlanRefused as refused:
                self._fail(case, str(refused))
                return
            done = {(s.switch, s.action) for s, o in case.done if o == "done"}
            queue = [s for s in case.plan.steps if (s.switch, s.action) not in done]
            case.steps = case.plan.steps
            self._note(case, "replanned", f"next-best plan without {step.switch}: {len(queue)} steps left")
        self._note(case, "done", f"{len(case.done)} steps executed")
        case.status = CaseStatus.DONE  # after the event is stored: a reader seeing "done" finds it logged

    def _fail(self, case: FlisrCase, message: str) -> None:
        case.message = message
        self._note(case, "failed", message, severity="major")
        case.status = CaseStatus.FAILED

    def _operate(self, step: Step) -> str:
        """Send one switching command and wait for the device's answer: "done" or why not."""
        device = self._device_of.get(step.switch)
        if device is None:
            return "no remote device for this switch"
        try:
            record = self.commands.send(device, str(step.action), 0.0, user="flisr")
        except CommandRefused as refused:
            return f"refused by the centre: {refused}"
        deadline = time.monotonic() + self.ack_timeout_s
        while time.monotonic() < deadline:
            answer = self.commands.record(device, record.seq)
            if answer is not None and answer.status != "sent":
                return "done" if answer.status == "done" else f"refused by the device: {answer.reason}"
            if self._stopped.wait(0.02):
                return "no acknowledgement before the centre stopped"
        return f"no acknowledgement within {self.ack_timeout_s:g} s"

    # -- reading --------------------------------------------------------------------------------------
    def case(self, case_id: str) -> FlisrCase:
        with self._lock:
            found = self._cases.get(case_id)
        if found is None:
            raise NotFound(f"unknown FLISR case {case_id!r}", "list cases with GET /api/v1/flisr")
        return found

    def cases(self) -> list[FlisrCase]:
        with self._lock:
            return sorted(self._cases.values(), key=lambda c: c.opened_ns, reverse=True)

    def _note(self, case: FlisrCase, what: str, message: str, severity: str = "info", **data: Any) -> None:
        # ts_ns: the grid's (simulated) time; wall_s: the wall clock, for the time-to-command target.
        entry = {"ts_ns": self.clock(), "wall_s": time.time(), "what": what, "message": message, **data}
        case.log.append(entry)
        self.on_event(
            [StoredEvent(entry["ts_ns"], "flisr", case.id, f"{what}: {message}", severity, {"case": case.id, **entry})]
        )
