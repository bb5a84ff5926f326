"""The link between the centre and the microgrid edge agents: topics, messages, and the centre's side of it.

Topics (``{site}`` is the microgrid id; ``agent`` takes the place of a device id)::

    gridmesh/v1/{site}/agent/plan     centre → agent  AgentPlan, signed by the centre's command key
    gridmesh/v1/{site}/agent/report   agent → centre  AgentReport, signed by the agent's key, seq +1 each
    gridmesh/v1/{site}/agent/state    agent → all     AgentState, retained, unsigned (like device presence)

A plan is the centre's word for one site until ``expires``: a PCC schedule (``pcc_kw``, kW, import
positive) and/or prices (EUR/kWh) per step of ``step_s`` seconds from ``start`` (UTC ns); empty lists
mean "no opinion" and make the plan a heartbeat. The state message carries ``device``, ``online`` and
``ts`` like :class:`~gridmesh.telemetry.envelope.Presence`, so the centre's presence tracking shows the
agent online or offline without change; ``mode`` says how it runs (``connected``, ``fallback``,
``islanded``). See ``docs/edge.md``.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TypeVar, cast

import msgspec

from gridmesh.security.edge_keys import agent_id
from gridmesh.security.keys import DeviceCredential, DeviceSecret
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import Bus, Message
from gridmesh.telemetry.envelope import TOPIC_ROOT, Signed

AGENT = "agent"  # the device segment of an agent's topics
PLAN, REPORT, STATE = "plan", "report", "state"
PLAN_LIFETIME_NS = 30 * 60 * 1_000_000_000  # a plan not renewed within two control steps is void
_MAX_STEPS = 96 * 7  # a week of 15-minute steps: more is refused as implausible

Detail = dict[str, str | float | int | bool]


class AgentMode(StrEnum):
    CONNECTED = "connected"  # following the centre's plan (or its heartbeat with no plan)
    FALLBACK = "fallback"  # centre unheard or plan expired: local MPC / self-consumption, local tariff
    ISLANDED = "islanded"  # PCC open or upstream supply lost: island energy management


class AgentPlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The centre's plan for one microgrid; see the module docstring."""

    site: str
    seq: int
    ts: int
    expires: int
    start: int = 0
    step_s: float = 900.0
    pcc_kw: list[float] = msgspec.field(default_factory=list)
    import_price: list[float] = msgspec.field(default_factory=list)
    export_price: list[float] = msgspec.field(default_factory=list)
    issuer: str = "centre"
    alg: str = "ed25519"
    sig: str = ""


class AgentReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an agent did: ``kind`` ``step`` (one control step: ``values`` in kW per battery/generator/load,
    generator convention for batteries), ``mode`` (a mode change, with ``reason``) or ``resync`` (back in
    touch: what happened while the centre was not heard)."""

    site: str
    seq: int
    ts: int
    kind: str
    mode: str
    detail: Detail = msgspec.field(default_factory=dict)
    values: dict[str, float] = msgspec.field(default_factory=dict)
    alg: str = "ed25519"
    sig: str = ""


class AgentState(msgspec.Struct, frozen=True, omit_defaults=True):
    """Retained state of an agent (also its last will, ``online`` false)."""

    device: str
    online: bool
    ts: int
    mode: str = ""
    reason: str = ""
    since: int = 0  # when the present mode began (UTC ns)
    plan_seq: int = 0  # the centre plan in force (0: none)
    report_seq: int = 0  # the latest report published


def agent_topic(site: str, channel: str) -> str:
    """``gridmesh/v1/{site}/agent/{channel}``; ``channel`` is ``plan``, ``report`` or ``state``."""
    if channel not in (PLAN, REPORT, STATE):
        raise ValueError(f"an agent channel is {PLAN}, {REPORT} or {STATE}, got {channel!r}")
    return f"{TOPIC_ROOT}/{site}/{AGENT}/{channel}"


S = TypeVar("S", AgentPlan, AgentReport)


def sign_link(message: S, secret: DeviceSecret) -> S:
    """:func:`~gridmesh.security.signing.sign` for the link's messages: the same canonical bytes (the
    struct with an empty ``sig``); the casts stand in for the two not being in ``Signed``."""
    return cast(S, sign(cast(Signed, message), secret))


def verify_link(message: AgentPlan | AgentReport, credential: DeviceCredential) -> bool:
    return verify(cast(Signed, message), credential)


def offline_state(site: str, ts_ns: int) -> tuple[str, bytes]:
    """An agent's last will (topic, payload) for the MQTT adapter (which also publishes it on a clean close,
    after the agent's own offline state: hence no mode and a neutral reason)."""
    return agent_topic(site, STATE), msgspec.json.encode(
        AgentState(agent_id(site), False, ts_ns, reason="agent offline")
    )


class PlanPublisher:
    """The centre's side: signs and publishes plans (and heartbeats) to the agents, and remembers each site's
    latest plan so that a periodic :meth:`renew` repeats the schedule in force (an agent takes the newest
    plan: a bare heartbeat would void it)."""

    def __init__(self, bus: Bus, command_secret: DeviceSecret, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.bus, self.secret, self.clock = bus, command_secret, clock
        self._seq = itertools.count(time.time_ns() // 1_000)
        self.latest: dict[str, AgentPlan] = {}
        self._lock = threading.Lock()

    def renew(self, site: str) -> AgentPlan:
        """Send ``site`` its schedule again (same start, steps and expiry), or a heartbeat when it has none
        in force."""
        now = self.clock()
        with self._lock:
            plan = self.latest.get(site)
        if plan is None or plan.expires <= now or not (plan.pcc_kw or plan.import_price):
            return self.publish(site)
        return self.publish(
            site,
            start_ns=plan.start,
            step_s=plan.step_s,
            pcc_kw=plan.pcc_kw,
            import_price=plan.import_price,
            export_price=plan.export_price,
            lifetime_ns=plan.expires - now,
        )

    def publish(
        self,
        site: str,
        *,
        start_ns: int = 0,
        step_s: float = 900.0,
        pcc_kw: Sequence[float] = (),
        import_price: Sequence[float] = (),
        export_price: Sequence[float] = (),
        lifetime_ns: int = PLAN_LIFETIME_NS,
    ) -> AgentPlan:
        """Sign and publish a plan for ``site``; no schedule and no prices make it a heartbeat."""
        now = self.clock()
        plan = AgentPlan(
            site,
            next(self._seq),
            now,
            now + lifetime_ns,
            start_ns or now,
            float(step_s),
            [float(v) for v in pcc_kw],
            [float(v) for v in import_price],
            [float(v) for v in export_price],
        )
        problem = plan_problem(plan, site)
        if problem:
            raise ValueError(problem)
        signed = sign_link(plan, self.secret)
        self.bus.publish(agent_topic(site, PLAN), msgspec.json.encode(signed), retain=True)
        with self._lock:
            self.latest[site] = signed
        return signed


def plan_problem(plan: AgentPlan, site: str) -> str:
    """Why ``plan`` is not a sensible plan for ``site`` (signature aside), or ``""``."""
    if plan.site != site:
        return f"plan for {plan.site!r} on the topic of {site!r}"
    if not 0 < plan.step_s <= 86_400:
        return f"step_s {plan.step_s} is not within 0 … 86400 s"
    for name in ("pcc_kw", "import_price", "export_price"):
        values = getattr(plan, name)
        if len(values) > _MAX_STEPS:
            return f"{name} has {len(values)} steps, more than {_MAX_STEPS}"
        if not all(math.isfinite(v) for v in values):
            return f"{name} holds a value that is not a finite number"
    if bool(plan.import_price) != bool(plan.export_price):
        return "give import_price and export_price together"
    return ""


class AgentStates:
    """The centre's view of the agents: the latest retained state and the verified reports per site.

    Subscribe :meth:`handle_state` to ``gridmesh/v1/+/agent/state`` and :meth:`handle_reports` to
    ``gridmesh/v1/+/agent/report``; ``on_report`` receives every verified report (to store it as an event).
    A report whose signature does not verify with the site's agent key is dropped and counted.
    """

    def __init__(
        self,
        agents: Mapping[str, DeviceCredential],
        *,
        on_report: Callable[[AgentReport], None] | None = None,
    ) -> None:
        self.agents, self.on_report = agents, on_report
        self._states: dict[str, AgentState] = {}
        self._lock = threading.Lock()
        self.rejected = 0
        self._state_decoder = msgspec.json.Decoder(AgentState)
        self._report_decoder = msgspec.json.Decoder(AgentReport)

    def handle_state(self, batch: Sequence[Message]) -> None:
        for message in batch:
            site = message.topic.split("/")[2]
            try:
                state = self._state_decoder.decode(message.payload)
            except msgspec.DecodeError:
                continue
            if state.device == agent_id(site):
                with self._lock:
                    self._states[site] = state

    def handle_reports(self, batch: Sequence[Message]) -> None:
        for message in batch:
            site = message.topic.split("/")[2]
            credential = self.agents.get(site)
            try:
                report = self._report_decoder.decode(message.payload)
            except msgspec.DecodeError:
                report = None
            if report is None or credential is None or report.site != site or not verify_link(report, credential):
                self.rejected += 1
                continue
            if self.on_report is not None:
                self.on_report(report)

    def states(self) -> dict[str, AgentState]:
        """site → the agent's latest state (mode, since, plan in force, online)."""
        with self._lock:
            return dict(self._states)
