"""The edge agent: one microgrid's control cycle and MPC, run at the site on its own devices' telemetry.

The agent sees only its site (:mod:`~gridmesh.services.edge_site`): it subscribes to
``gridmesh/v1/{site}/+/telemetry``, ``…/event`` and ``…/ack`` and to the centre's plans
(``gridmesh/v1/{site}/agent/plan``); it verifies its devices' signatures with the centre's own ingest
(:class:`~gridmesh.services.ingest.Ingest`, on a local historian) into its own
:class:`~gridmesh.services.live_image.LiveImage`, and runs the study's control cycle live
(:class:`~gridmesh.services.live_control.LiveControl`: window from readings, look-ahead from the profiles
as forecast, MPC by default) on the site network. Its commands are signed with its own key and can only
name its own devices (the command service knows no others). Device ``state`` messages are not read:
they are unsigned and drive availability, never control; supply loss comes from signed last gasps.

Modes, judged at every cycle (``docs/edge.md``):

* ``islanded`` — the PCC is open (newest of its ``Pos`` telemetry, ``trip``/``lockout``/``reclose``
  events) or every meter of the site sent a last gasp (upstream supply lost): the island energy
  management (:mod:`~gridmesh.services.edge_island`) orders the grid-forming battery, curtails
  inverters, caps shed EV chargers at zero and opens the supply relays of the meters of shed loads.
* ``fallback`` — the broker connection is down, no plan or heartbeat came from the centre for
  ``silence_steps`` control steps, or the plan expired: local controllers on the local tariff.
* ``connected`` — a fresh plan is in force: :class:`~gridmesh.services.edge_plan.PccFollower` holds the
  PCC at the centre's schedule and the plan's prices replace the local tariff.

Every mode change is a signed ``mode`` report; every control step a ``step`` report; coming back from
fallback a ``resync`` report of what was done meanwhile, and the retained state is republished. Reports
go out through the bus: over MQTT the store-and-forward buffer keeps them, in order, while the link is
down.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import msgspec
import numpy as np
import pandas as pd

from gridmesh.control.controller import Controller
from gridmesh.control.mpc import ModelPredictiveControl
from gridmesh.errors import CommandRefused
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites
from gridmesh.security.edge_keys import EdgeKeyring, agent_id
from gridmesh.services.bus import Bus, Message
from gridmesh.services.clock import Clock
from gridmesh.services.commands import CLOSE, OPEN, RELEASE, SET_POWER, CommandService
from gridmesh.services.edge_island import DEFAULT_RESERVE_STEPS, IslandPlanner, IslandStep
from gridmesh.services.edge_link import (
    PLAN,
    REPORT,
    STATE,
    AgentMode,
    AgentPlan,
    AgentReport,
    AgentState,
    Detail,
    agent_topic,
    plan_problem,
    sign_link,
    verify_link,
)
from gridmesh.services.edge_plan import PccFollower, PlanTariff
from gridmesh.services.edge_site import check_microgrid, site_catalogue, site_network
from gridmesh.services.historian.base import Historian, ReadingRows
from gridmesh.services.ingest import Ingest
from gridmesh.services.live_control import LiveControl, LiveDecision
from gridmesh.services.live_image import LiveImage
from gridmesh.sim.profiles_at import ProfilesAt
from gridmesh.telemetry.catalogue import DeviceKind
from gridmesh.telemetry.envelope import TOPIC_ROOT, Event
from gridmesh.units import W_PER_KW

log = logging.getLogger(__name__)

USER = "edge-agent"
OPENED = frozenset({"trip", "lockout"})
CLOSED = frozenset({"reclose", "reclose-success"})
POS_OPEN = 1.0  # XCBR Dbpos: 1 open, 2 closed


@dataclass(frozen=True)
class EdgeSettings:
    step: timedelta = timedelta(minutes=15)
    horizon_steps: int = 96
    silence_steps: int = 2  # no plan or heartbeat for this many control steps → fallback
    cycle_s: float = 1.0  # wall seconds between cycles of the background thread
    reserve_steps: int = DEFAULT_RESERVE_STEPS  # island: critical energy kept for this many steps
    deadband: float = 0.01  # of a device's rating: a smaller change is not sent again


@dataclass(frozen=True)
class AgentStep:
    """One control step of the agent: its mode, and the live decision or the island step it took."""

    mode: AgentMode
    decision: LiveDecision | None
    island: IslandStep | None


class EdgeAgent:
    """See the module docstring. :meth:`cycle` runs one cycle (tests); :meth:`start` runs it in a thread."""

    def __init__(
        self,
        scenario: Scenario,
        site: str,
        bus: Bus,
        keys: EdgeKeyring,
        clock: Clock,
        historian: Historian,
        controllers: Sequence[Controller] | None = None,
        *,
        settings: EdgeSettings | None = None,
        link: Callable[[], bool] = lambda: True,
    ) -> None:
        """``controllers``: the local ones (default: the MPC); ``link``: whether the broker connection is
        up (``lambda: mqtt_bus.connected``; in-process it always is)."""
        check_microgrid(scenario.network, site)
        if keys.site != site:
            raise ValueError(f"the keyring is the agent key of {keys.site!r}, not of {site!r}")
        self.site, self.bus, self.keys, self.clock, self.link = site, bus, keys, clock, link
        self.settings = settings or EdgeSettings()
        s = self.settings
        self.network = site_network(scenario.network, site)
        self.catalogue = site_catalogue(scenario.network, site)
        self.image = LiveImage(self.catalogue)
        ring = keys.as_centre_keyring()
        self.ingest = Ingest(
            self.catalogue, ring, historian, clock=clock.now_ns, on_accept=self._accepted, on_event=self._event
        )
        self.commands = CommandService(
            self.network, self.catalogue, ring, bus, clock=clock.now_ns, on_event=historian.write_events
        )
        self.follower = PccFollower()
        local = (
            list(controllers) if controllers is not None else [ModelPredictiveControl(horizon_steps=s.horizon_steps)]
        )
        self.local_tariff = PlanTariff()
        self.live = LiveControl(
            self.network,
            resolve_sites(self.network),
            self.catalogue,
            self.image,
            ProfilesAt(self.network, scenario.profiles),
            self.commands,
            clock,
            [self.follower, *local],
            step=s.step,
            horizon_steps=s.horizon_steps,
            tariff=self.local_tariff,
            deadband=s.deadband,
        )
        # A site without storage cannot hold an island up: islanded, it only reports.
        self.island = IslandPlanner(self.network, reserve_steps=s.reserve_steps) if self.network.batteries else None
        pcc = scenario.network.sites[site].pcc or ""
        self._pcc_device = self.catalogue.by_element(DeviceKind.SWITCH).get(pcc)
        self._meters = {d.id for d in self.catalogue.devices.values() if d.kind is DeviceKind.METER}
        self._lock = threading.Lock()
        self._plan: AgentPlan | None = None
        self._pcc_event: tuple[bool, int] | None = None  # (closed, ts) of the newest PCC protection event
        self._dark: set[str] = set()  # meters whose last gasp is not yet followed by power-restored
        self.mode: AgentMode | None = None
        self.reason = ""
        self._since = 0
        self._fallback: dict[str, int] = {}  # while in fallback: since, steps, first report seq
        self._held: dict[str, tuple[str, float]] = {}  # island orders in force: device → (action, W)
        self._disconnected: dict[str, float] = {}  # consumers shed and held off → their demand when shed, kW
        self._last_step: int | None = None
        self._seq = itertools.count(time.time_ns() // 1_000)
        self.report_seq = 0
        self.rejected_plans: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = msgspec.json.Decoder(AgentPlan)
        for channel in ("telemetry", "event"):
            bus.subscribe(f"{TOPIC_ROOT}/{site}/+/{channel}", self.ingest.handle)
        bus.subscribe(f"{TOPIC_ROOT}/{site}/+/ack", self.commands.handle_acks)
        bus.subscribe(agent_topic(site, PLAN), self._on_plan)

    # -- inputs (bus threads) -------------------------------------------------------------------------
    def _on_plan(self, batch: Sequence[Message]) -> None:
        """Take the newest authentic plan; anything else is ignored with the reason logged."""
        for message in batch:
            try:
                plan = self._decoder.decode(message.payload)
            except msgspec.DecodeError as exc:
                self._reject_plan(f"malformed plan: {exc}")
                continue
            if not verify_link(plan, self.keys.centre_credential):
                self._reject_plan(f"plan {plan.seq} ignored: bad signature (not signed by the centre)")
                continue
            problem = plan_problem(plan, self.site)
            if problem:
                self._reject_plan(f"plan {plan.seq} ignored: {problem}")
                continue
            with self._lock:
                if self._plan is None or plan.seq > self._plan.seq:
                    self._plan = plan

    def _accepted(self, rows: ReadingRows) -> None:
        self.image.update(rows)

    def _reject_plan(self, reason: str) -> None:
        log.warning("edge agent %s: %s", self.site, reason)
        self.rejected_plans.append(reason)

    def _event(self, event: Event) -> None:
        """Signed events of the site's devices: PCC protection and meters' supply."""
        with self._lock:
            if self._pcc_device is not None and event.device == self._pcc_device.id:
                if event.kind in OPENED | CLOSED and (self._pcc_event is None or event.ts >= self._pcc_event[1]):
                    self._pcc_event = (event.kind in CLOSED, event.ts)
            elif event.device in self._meters and event.kind == "last-gasp":
                self._dark.add(event.device)
            elif event.kind == "power-restored":
                self._dark.discard(event.device)

    # -- modes ----------------------------------------------------------------------------------------
    def _islanded(self) -> str:
        """Why the site is islanded now, or ``""``."""
        with self._lock:
            event, dark = self._pcc_event, len(self._dark)
        if self._pcc_device is not None:
            pos = self.image.series(DeviceKind.SWITCH, "Pos")
            k = pos.devices.index(self._pcc_device.id)
            reading = (bool(pos.value[k] != POS_OPEN), int(pos.ts_ns[k])) if np.isfinite(pos.value[k]) else None
            newest = max((x for x in (event, reading) if x is not None), key=lambda x: x[1], default=None)
            if newest is not None and not newest[0]:
                return f"PCC {self._pcc_device.element} open"
        if self._meters and dark == len(self._meters):
            return "upstream supply lost (every meter of the site sent a last gasp)"
        return ""

    def _judge(self, now_ns: int) -> tuple[AgentMode, str, AgentPlan | None]:
        islanded = self._islanded()
        if islanded:
            return AgentMode.ISLANDED, islanded, None
        if not self.link():
            return AgentMode.FALLBACK, "connection to the broker lost", None
        with self._lock:
            plan = self._plan
        silence = self.settings.silence_steps * self.settings.step // timedelta(microseconds=1) * 1_000
        if plan is None:
            return AgentMode.FALLBACK, "no plan from the centre yet", None
        if plan.expires < now_ns:
            return AgentMode.FALLBACK, f"plan {plan.seq} expired", None
        if now_ns - plan.ts > silence:
            return AgentMode.FALLBACK, f"centre silent for {self.settings.silence_steps} control steps", None
        return AgentMode.CONNECTED, "", plan

    def _change(self, mode: AgentMode, reason: str, now_ns: int) -> None:
        """Enter ``mode`` (or the same mode for another reason): report it, and resync after a fallback."""
        before = self.mode
        log.info("edge agent %s: %s → %s (%s)", self.site, before, mode.value, reason or "plan in force")
        if before is AgentMode.ISLANDED and mode is not AgentMode.ISLANDED:
            self._release_island_orders()
        if before is AgentMode.FALLBACK and mode is not AgentMode.FALLBACK:
            f, self._fallback = self._fallback, {}
            self._report("resync", mode, {**f, "last_seq": self.report_seq})
        self.mode, self.reason, self._since = mode, reason, now_ns
        self._report("mode", mode, {"from": before.value if before else "", "reason": reason})
        if mode is AgentMode.FALLBACK and before is not AgentMode.FALLBACK:
            self._fallback = {"since": now_ns, "steps": 0, "first_seq": self.report_seq}
        self.publish_state()

    # -- the cycle ------------------------------------------------------------------------------------
    def cycle(self) -> AgentStep | None:
        """Judge the mode, then run the control step if a new one has begun; the step, else ``None``."""
        now, now_ns = self.clock.now(), self.clock.now_ns()
        mode, reason, plan = self._judge(now_ns)
        if mode is not self.mode or (mode is not AgentMode.CONNECTED and reason != self.reason):
            self._change(mode, reason, now_ns)
        start = self.live.step_start(now)
        start_ns = pd.Timestamp(start).value
        if self._last_step is not None and start_ns <= self._last_step:
            return None
        self._last_step = start_ns
        if mode is AgentMode.ISLANDED and self.island is None:
            self._report("step", mode, {"shed": "", "problem": "no storage to form the island"})
            step = AgentStep(mode, None, None)
        elif mode is AgentMode.ISLANDED and self.island is not None:
            window, _ = self.live.window(now)
            island = self.island.plan(window, self._disconnected)
            self._island_orders(island, dict(zip(self.network.generators, window.gen_p_kw[0].tolist(), strict=True)))
            self._report_island(island)
            step = AgentStep(mode, None, island)
        else:
            self.follower.schedule = plan
            self.live.tariff = PlanTariff(plan=plan) if plan is not None and plan.import_price else self.local_tariff
            decision = self.live.tick(now)
            if decision is not None:
                self._report_decision(decision, plan)
            step = AgentStep(mode, decision, None)
        if self._fallback:
            self._fallback["steps"] += 1
        self.publish_state()
        return step

    def _order(self, device: str, action: str, watts: float, rating_w: float) -> None:
        """Send an island order unless the same one is in force (within the deadband)."""
        held = self._held.get(device)
        if held is not None and held[0] == action and abs(held[1] - watts) <= self.settings.deadband * rating_w:
            return
        try:
            self.commands.send(device, action, watts, user=USER)
        except CommandRefused as refused:
            log.warning("edge agent %s: island order to %s not sent: %s", self.site, device, refused)
            return
        self._held[device] = (action, watts)

    def _island_orders(self, island: IslandStep, output_kw: dict[str, float]) -> None:
        net = self.network
        batteries = self.catalogue.by_element(DeviceKind.BATTERY)
        inverters = self.catalogue.by_element(DeviceKind.INVERTER)
        chargers = self.catalogue.by_element(DeviceKind.EVSE)
        meters = self.catalogue.by_element(DeviceKind.METER)
        rating = net.batteries[island.battery].p_kw * W_PER_KW
        self._order(batteries[island.battery].id, SET_POWER, island.battery_kw * W_PER_KW, rating)
        for generator, kw in island.curtailed_kw.items():
            if generator in inverters:
                limit = max(output_kw[generator] - kw, 0.0) * W_PER_KW
                self._order(inverters[generator].id, SET_POWER, limit, net.generators[generator].p_kw * W_PER_KW)
        shed = set(island.shed)
        for consumer in island.shed:
            if consumer in chargers:
                self._order(chargers[consumer].id, SET_POWER, 0.0, 1.0)
            elif consumer in meters:
                self._order(meters[consumer].id, OPEN, 0.0, 1.0)
            self._disconnected.setdefault(consumer, island.shed_demand_kw[consumer])
        for consumer in [c for c in self._disconnected if c not in shed]:
            del self._disconnected[consumer]
        self._release(
            [inverters[g].id for g in net.generators if g in inverters and g not in island.curtailed_kw]
            + [chargers[c].id for c in net.ev_chargers if c in chargers and c not in shed]
            + [meters[x].id for x in net.loads if x in meters and x not in shed]
        )

    def _release(self, devices: Sequence[str]) -> None:
        """Hand ``devices`` back: setpoints and caps released, supply relays opened by the agent closed."""
        for device in devices:
            held = self._held.get(device)
            if held is not None and held[0] not in (RELEASE, CLOSE):
                self._order(device, CLOSE if held[0] == OPEN else RELEASE, 0.0, 1.0)

    def _release_island_orders(self) -> None:
        """Back on the grid: hand curtailment and EV caps back and reconnect the loads shed (the control cycle
        sets batteries again)."""
        battery_devices = {d.id for d in self.catalogue.devices.values() if d.kind is DeviceKind.BATTERY}
        self._release([d for d in self._held if d not in battery_devices])
        self._held.clear()
        self._disconnected.clear()

    # -- reports and state ----------------------------------------------------------------------------
    def _report(self, kind: str, mode: AgentMode, detail: Detail, values: dict[str, float] | None = None) -> None:
        seq = next(self._seq)
        report = AgentReport(self.site, seq, self.clock.now_ns(), kind, mode.value, detail, values or {})
        self.bus.publish(agent_topic(self.site, REPORT), msgspec.json.encode(sign_link(report, self.keys.secret)))
        self.report_seq = seq

    def _report_decision(self, decision: LiveDecision, plan: AgentPlan | None) -> None:
        values = {**decision.setpoints_kw, **{f"curtail:{g}": kw for g, kw in decision.curtailed_kw.items()}}
        detail: Detail = {
            "commands": len(decision.commands),
            "refusals": len(decision.refusals),
            "failed": "; ".join(decision.failed),
            "plan_seq": plan.seq if plan is not None else 0,
        }
        self._report("step", self.mode or AgentMode.FALLBACK, detail, values)

    def _report_island(self, island: IslandStep) -> None:
        detail: Detail = {
            "shed": ",".join(island.shed),
            "served_kw": island.served_kw,
            "shed_kw": island.shed_kw,
            "critical_kw": island.critical_kw,
            "critical_served_kw": island.critical_served_kw,
        }
        values = {island.battery: island.battery_kw, **{f"curtail:{g}": kw for g, kw in island.curtailed_kw.items()}}
        self._report("step", AgentMode.ISLANDED, detail, values)

    def state(self, *, online: bool = True) -> AgentState:
        with self._lock:
            plan_seq = self._plan.seq if self._plan is not None and self.mode is AgentMode.CONNECTED else 0
        return AgentState(
            agent_id(self.site),
            online,
            self.clock.now_ns(),
            mode=self.mode.value if self.mode else "",
            reason=self.reason,
            since=self._since,
            plan_seq=plan_seq,
            report_seq=self.report_seq,
        )

    def publish_state(self, *, online: bool = True) -> None:
        """The retained ``gridmesh/v1/{site}/agent/state`` message (mode, since, plan in force)."""
        self.bus.publish(agent_topic(self.site, STATE), msgspec.json.encode(self.state(online=online)), retain=True)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the edge agent of {self.site} is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"edge-{self.site}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop cycling and publish the agent offline (retained)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=30)
        self.publish_state(online=False)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except Exception:
                log.exception("edge agent %s: cycle failed; the next cycle retries", self.site)
            self._stop.wait(max(0.0, self.settings.cycle_s - (time.monotonic() - started)))
