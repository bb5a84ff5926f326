"""The port the API needs from the control centre, and the response models that cross it.

The API is a thin layer: it authenticates, validates and serialises; everything it shows comes from one
object implementing :class:`Centre`. Models are the public JSON schema (they appear in ``/openapi.json``),
so fields carry units in their names (``p_kw``, ``v_pu``) and times are timezone-aware UTC.

Errors the centre raises on purpose are :class:`NotFound` (HTTP 404), :class:`CommandRefused` (409) and
:class:`NotReady` (503); each carries a ``fix`` telling the caller what to do next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, field_validator

from gridmesh.errors import CentreError, CommandRefused, NotFound, NotReady

__all__ = ["CentreError", "CommandRefused", "NotFound", "NotReady"]


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class SiteView(View):
    id: str
    name: str
    level: int = Field(description="1 microgrid, 2 group, 3 virtual power plant")
    pcc: str | None = Field(None, description="switch at the point of common coupling (level 1)")


class BusView(View):
    id: str
    x: float | None = Field(description="longitude (WGS84) or x coordinate; None when unknown")
    y: float | None
    vn_kv: float
    site: str | None = Field(description="microgrid the bus belongs to, if any")


class BranchView(View):
    id: str
    kind: Literal["line", "transformer"]
    from_bus: str
    to_bus: str


class NetworkView(View):
    """The drawn network. ``StateView.v_pu`` follows ``buses`` order, ``StateView.loading_pct`` ``branches``."""

    name: str
    buses: list[BusView]
    branches: list[BranchView]
    sites: list[SiteView]


class DeviceView(View):
    id: str
    kind: str = Field(description="meter, inverter, battery, evse, trafo, substation, switch")
    element: str
    bus: str
    site: str = Field(description="microgrid id, or `grid` outside every microgrid")
    online: bool
    last_seen: datetime | None
    controllable: bool = False
    reports: list[str] = Field(default_factory=list, description="quantities the device reports (IEC 61850 names)")


class SiteSummary(View):
    """One microgrid's balance; ``import_kw`` is positive when importing, negative when exporting."""

    site: str
    import_kw: float
    soc_pct: float | None = Field(description="energy-weighted mean SOC of the site's batteries; None if none")
    renewable_share_pct: float | None = Field(description="renewable generation / consumption, capped at 100")
    islanded: bool
    frequency_hz: float | None = Field(
        None, description="measured at the site's batteries (an island's droop frequency); None when none measures"
    )


class EstimatorInfo(View):
    """Weighted-least-squares state estimation of the last cycle, with bad-data detection (chi-square test)."""

    observable: bool
    problem: str = Field("", description="why the last estimate failed (what is missing), empty when it worked")
    j: float = Field(description="weighted sum of squared residuals")
    threshold: float = Field(description="chi-square threshold J is compared with")
    suspects: list[str] = Field(default_factory=list, description="devices whose readings look bad")
    cycle_ms: float


class StateView(View):
    """The live grid state. ``None`` in ``v_pu``/``loading_pct`` means unobservable or de-energised."""

    time: datetime
    v_pu: list[float | None] = Field(description="per bus, in NetworkView.buses order")
    loading_pct: list[float | None] = Field(description="per branch, in NetworkView.branches order")
    substation_p_kw: float
    substation_q_kvar: float
    sites: list[SiteSummary]
    estimator: EstimatorInfo | None = None


class SeriesView(View):
    """A time series: raw (``min``/``max`` None) or bucketed (``value`` is the bucket mean)."""

    device: str
    quantity: str
    unit: str
    every_s: float | None = Field(description="bucket width in seconds; None for raw readings")
    t: list[datetime]
    value: list[float]
    min: list[float] | None = None
    max: list[float] | None = None


class AlarmView(View):
    id: str
    kind: str = Field(description="voltage-low, voltage-high, overload, frequency, stale-device, outage, bad-data")
    severity: Literal["warning", "major", "critical"]
    source: str = Field(description="bus, branch or device id")
    message: str
    raised: datetime
    cleared: datetime | None = None
    value: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        return self.cleared is None


class EventView(View):
    ts: datetime
    kind: str
    source: str
    message: str
    severity: str = "info"
    data: dict[str, Any] | None = None


class DeadLetterView(View):
    received: datetime
    topic: str
    reason: str
    detail: str
    size: int
    device: str = ""


class CommandView(View):
    """A command the centre signed and sent; ``seq`` identifies it in the device's acknowledgement."""

    device: str
    seq: int
    action: str
    value: float
    issued_by: str
    issued_at: datetime
    status: Literal["sent", "acknowledged", "refused", "expired"] = "sent"


class ReadingsView(View):
    """The readings accepted since the last push, columnar (the latest per series; at most a few thousand
    per push — the historian has everything). ``t`` is the device timestamp in Unix seconds."""

    device: list[str]
    quantity: list[str]
    phase: list[str]
    value: list[float]
    t: list[float]


class FaultRequest(BaseModel):
    """A fault to put into the live twin (simulation): where, what kind, permanent or temporary."""

    element: str = Field(min_length=1, description="bus or line id")
    table: Literal["buses", "lines"] = "lines"
    fault_type: Literal["three-phase", "line-to-line", "line-to-ground", "two-phase-to-ground"] = "three-phase"
    permanent: bool = Field(True, description="a temporary fault clears on the first reclose")
    position: float | None = Field(None, ge=0.0, le=1.0, description="fraction along a line (default: middle)")


class FaultView(View):
    id: str
    element: str
    table: str
    fault_type: str
    permanent: bool
    position: float | None
    injected: datetime
    injected_by: str
    repaired: datetime | None = None
    repaired_by: str | None = None


class FlisrStepView(View):
    switch: str
    action: str = Field(description="open or close")
    purpose: str = Field(description="isolate, restore or shed")
    outcome: str | None = Field(None, description="done, or why the switch did not operate; None: not yet")


class FlisrCaseView(View):
    """One fault response (or return to normal): the plan, what was executed, and the timed log."""

    id: str
    kind: str = Field(description="fault or return-to-normal")
    status: str = Field(description="awaiting-confirmation, executing, done or failed")
    opened: datetime
    trips: list[str]
    steps: list[FlisrStepView]
    plan_ms: float
    restored_customers: int | None = None
    unrestored_customers: int | None = None
    restored_kw: float | None = None
    message: str = ""
    log: list[dict[str, Any]] = Field(default_factory=list)


class RefusalView(View):
    """A setpoint the control cycle did not carry out as asked: clamped by the safety layer or refused by
    the command service (``source``)."""

    device: str
    requested_kw: float
    applied_kw: float | None
    reason: str
    source: Literal["safety", "command"]


class ControlStepView(View):
    """One live control step: the setpoints decided (after the safety layer), the curtailment, what was
    refused and how long the cycle took."""

    time: datetime
    setpoints_kw: dict[str, float] = Field(description="per battery, generator convention (discharge > 0)")
    curtailed_kw: dict[str, float] = Field(description="per generator held back in this step")
    commands: int = Field(description="commands sent in this step")
    refusals: list[RefusalView]
    cycle_ms: float
    failed: list[str] = Field(description="'controller: error' of controllers that raised in this step")
    fallbacks: int = Field(description="present values taken from profiles (reading missing or stale)")


class ControlView(View):
    """The live control cycle: its controllers in priority order and its latest steps, newest first."""

    enabled: bool
    controllers: list[str]
    step_minutes: float | None
    steps: list[ControlStepView]


class ChargerView(View):
    """An EV charger as the OCPP central system sees it."""

    id: str
    site: str = Field(description="microgrid id, or `grid` outside every microgrid")
    bus: str
    rating_kw: float = Field(description="connectors × power per connector")
    connected: bool
    version: str | None = Field(None, description="OCPP version negotiated (2.0.1 or 1.6) while connected")
    status: str = Field(description="connector statuses, e.g. `1 Occupied, 2 Available`; empty before any")
    last_seen: datetime | None = None
    power_kw: float = Field(description="latest metered power (all connectors)")
    limit_kw: float | None = Field(None, description="last limit the station accepted from smart charging")


class EvSessionView(View):
    """A charging session; times are grid time, ``departure`` is expected while the session is open."""

    charger: str
    connector: int
    transaction_id: str
    arrival: datetime
    departure: datetime
    requested_kwh: float
    delivered_kwh: float
    open: bool


class PushView(View):
    """One smart-charging push: the plan (first step's limit per charger) and every station's answer."""

    time: datetime
    reason: str = Field(description="new step, or sessions changed")
    plan_status: str
    plan_ms: float
    sessions: int
    shortfall_kwh: float = Field(description="energy the plan cannot deliver before the cars leave")
    limits_kw: dict[str, float]
    outcomes: dict[str, str] = Field(description="per charger: accepted, rejected, timeout, not_connected, error")
    accepted: int
    rejected: int
    timeout: int
    wall_s: float = Field(description="wall time from the first SetChargingProfile to the last answer")


class DrEventRequest(BaseModel):
    """A demand-response event: ``levels`` per microgrid, or ``sites`` all at ``level``. Times are wall-clock
    UTC (OpenADR runs on the wall clock)."""

    sites: list[str] = Field(default_factory=list, description="microgrids, all at `level`")
    level: float | None = Field(None, description="kW to shed (LOAD_DISPATCH), 0–3 (SIMPLE) or a price")
    levels: dict[str, float] = Field(default_factory=dict, description="per microgrid, instead of sites + level")
    signal: Literal["LOAD_DISPATCH", "SIMPLE", "ELECTRICITY_PRICE"] = "LOAD_DISPATCH"
    start: AwareDatetime = Field(description="wall-clock start, with a time zone")
    duration_minutes: float = Field(gt=0, le=24 * 60)

    @field_validator("start")
    @classmethod
    def _utc(cls, start: datetime) -> datetime:
        return start.astimezone(UTC)


class DrEventView(View):
    id: str
    signal: str
    start: datetime
    end: datetime
    levels: dict[str, float]
    opts: dict[str, str] = Field(description="per VEN: optIn, optOut or pending")
    status: Literal["scheduled", "active", "completed", "cancelled"]
    requested_kw: float | None


class VenResultView(View):
    ven: str
    opt: str
    requested_kw: float | None
    delivered_kwh: float | None
    mean_reduction_kw: float | None
    percent_of_requested: float | None
    note: str


class DrResultView(View):
    """An event measured against the baseline: delivered kWh and the share of the requested kW per VEN."""

    event_id: str
    cancelled: bool
    requested_kw: float | None
    delivered_kwh: float | None
    opted_in: list[str]
    vens: list[VenResultView]


class MicrogridView(View):
    """A microgrid and its edge agent (``docs/edge.md``): ``mode`` is empty while no agent has spoken."""

    site: str
    name: str
    agent_online: bool = Field(description="the agent's retained state says online")
    mode: Literal["connected", "islanded", "fallback", ""] = Field(
        description="connected: follows the centre's plan; fallback: local control; islanded: PCC open"
    )
    reason: str = Field("", description="why the agent is in this mode")
    since: datetime | None = Field(None, description="when the present mode began")
    plan_seq: int = Field(0, description="the centre plan in force at the agent (0: none)")
    import_kw: float | None = Field(None, description="PCC import from the live state, kW (negative: export)")
    islanded: bool | None = Field(None, description="the live state's view: the PCC is open")


class ResidualView(View):
    """One ADMM round: primal residual (kW) and dual residual (EUR/kW) against their tolerances."""

    iteration: int
    primal: float
    dual: float
    eps_primal: float
    eps_dual: float
    rho: float


class CoordinationRunView(View):
    """A day-ahead co-optimisation of the microgrids (ADMM), with the centralised optimum for the gap."""

    id: str
    state: Literal["running", "done", "failed"]
    day: date
    requested_by: str
    started: datetime
    finished: datetime | None
    agents: list[str] = Field(description="the microgrids that took part")
    iterations: int
    residuals: list[ResidualView]
    converged: bool
    objective_eur: float | None
    centralised_eur: float | None
    gap: float | None = Field(description="(distributed − centralised) / |centralised|")
    price_eur_per_kw: dict[str, list[float]] = Field(description="per microgrid, the coordination prices per hour")
    pcc_kw: dict[str, list[float]] = Field(description="per microgrid, the agreed PCC schedule per hour, kW")
    plans_sent: list[str] = Field(description="microgrids whose edge agent was sent its schedule")
    error: str = ""


class CoordinationRequest(BaseModel):
    day: date | None = Field(None, description="the day to plan; default the grid's current day")


class VppSiteView(View):
    id: str
    name: str
    members: list[str] = Field(description="the sites it aggregates")


class VppEnvelopeView(View):
    """What a VPP can offer per interval: up (more export / less import) and down capability, kW."""

    site: str
    owner: str | None
    day: date
    dt_h: float
    time: list[str]
    up_kw: list[float]
    down_kw: list[float]
    energy_up_kwh: list[float]
    energy_down_kwh: list[float]
    limited_by: list[str]
    storage: dict[str, Any] = Field(description="the virtual storage: power_kw, stored_kwh, energy bounds")
    seconds: float = Field(description="computation time the first time it was asked for")


class VppDispatchRequest(BaseModel):
    """An aggregate award for a VPP over one day: kW per interval (positive: more export or less import)."""

    day: date | None = Field(None, description="default: the grid's current day")
    award_kw: list[float] = Field(description="one value per interval of the day (96 at 15 minutes)")


class VppDispatchView(View):
    """An award disaggregated to the VPP's assets at least cost and run through the day's twin: what is
    delivered against the award per interval (clipped to the envelope, with the reason) and in total."""

    site: str
    day: date
    time: list[str]
    award_kw: list[float]
    target_kw: list[float] = Field(description="the award clipped to the envelope")
    delivered_kw: list[float] = Field(description="measured at the VPP's connection points by the full power flow")
    shortfall_kw: list[float]
    reason: list[str]
    summary: dict[str, float] = Field(description="delivered share, errors, clipped energy, cost, network check")


Pushed = StateView | AlarmView | ReadingsView
Listener = Callable[[Pushed], None]


class Centre(Protocol):
    """What the control centre offers the API. Every method is called from a worker thread, never the
    event loop, so implementations may block briefly (a historian query) and must be thread-safe."""

    def network(self) -> NetworkView: ...

    def devices(self, site: str | None, kind: str | None) -> list[DeviceView]: ...

    def state(self) -> StateView | None: ...

    def history(
        self, device: str, quantity: str, start: datetime, end: datetime, every: timedelta | None
    ) -> SeriesView:
        """Readings with ``start <= t < end``; bucketed mean/min/max when ``every`` is given."""
        ...

    def substation_history(self, start: datetime, end: datetime, every: timedelta) -> SeriesView:
        """Substation active power (kW) in buckets of ``every``."""
        ...

    def alarms(self, active_only: bool) -> list[AlarmView]: ...

    def acknowledge(self, alarm_id: str, user: str) -> AlarmView: ...

    def events(self, since: datetime | None, kind: str | None, limit: int) -> list[EventView]: ...

    def counters(self) -> dict[str, int]:
        """Ingest and service counters, e.g. ``accepted``, ``rejected.bad-signature``, ``duplicates``."""
        ...

    def dead_letters(self, limit: int, reason: str | None) -> list[DeadLetterView]: ...

    def command(self, device: str, action: str, value: float, user: str) -> CommandView:
        """Sign and send; raise :class:`CommandRefused` with the reason when the centre will not."""
        ...

    def inject_fault(self, request: FaultRequest, user: str) -> FaultView:
        """Put a fault into the live twin (simulation control; refused for unknown elements)."""
        ...

    def repair_fault(self, fault_id: str, user: str) -> FaultView:
        """Take the fault out and order the return to the normal configuration."""
        ...

    def faults(self) -> list[FaultView]: ...

    def flisr_cases(self) -> list[FlisrCaseView]: ...

    def flisr_case(self, case_id: str) -> FlisrCaseView: ...

    def confirm_flisr(self, case_id: str, user: str) -> FlisrCaseView:
        """Execute an operator-confirmed plan; refused (409) when the grid changed since it was planned."""
        ...

    def control(self, limit: int) -> ControlView:
        """The live control cycle and its ``limit`` latest steps."""
        ...

    def ev_chargers(self) -> list[ChargerView]:
        """The OCPP chargers (empty when OCPP is off)."""
        ...

    def ev_sessions(self, limit: int) -> list[EvSessionView]:
        """Charging sessions, newest first."""
        ...

    def ev_pushes(self, limit: int) -> list[PushView]:
        """Smart-charging pushes, newest first."""
        ...

    def dr_events(self) -> list[DrEventView]:
        """Demand-response events in creation order (empty when DR is off)."""
        ...

    def dr_results(self) -> list[DrResultView]: ...

    def create_dr_event(self, request: DrEventRequest, user: str) -> DrEventView:
        """Send an event to the VENs; :class:`CommandRefused` (409) with the reason when invalid (in the past,
        unknown site, bad level), :class:`NotReady` when DR is off."""
        ...

    def cancel_dr_event(self, event_id: str, user: str) -> DrEventView:
        """Cancel an event not yet ended (409 when cancelled or ended already, 404 when unknown)."""
        ...

    def microgrids(self) -> list[MicrogridView]:
        """Every microgrid with its edge agent's state."""
        ...

    def coordination_runs(self) -> list[CoordinationRunView]:
        """Day-ahead coordination runs, newest first."""
        ...

    def start_coordination(self, day: date | None, user: str) -> CoordinationRunView:
        """Start a run in the background (default day: the grid's current day); 409 while one runs."""
        ...

    def vpp_sites(self) -> list[VppSiteView]: ...

    def vpp_envelope(self, site: str, day: date | None) -> VppEnvelopeView:
        """:class:`NotFound` for an unknown VPP; may take a second the first time for a site and day."""
        ...

    def vpp_dispatch(self, site: str, request: VppDispatchRequest, user: str) -> VppDispatchView:
        """Disaggregate an award and report its delivery; 404 for an unknown VPP, 400 for a malformed award."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` (from any thread, quickly) with every new state and every alarm change;
        returns a function that unsubscribes."""
        ...
