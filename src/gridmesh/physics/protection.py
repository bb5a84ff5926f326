"""Which protective devices see a fault, which one trips, what reclosing does and what the FPIs report.

The model is the one a distribution feeder is coordinated for: overcurrent devices in series on a radial
path, each picking up above a current threshold, the one nearest the fault clearing it first (the others
see the same current but their slower curves let it go). "Nearest" is decided topologically: of the
devices that pick up and whose opening isolates the fault from every source, the one that de-energises
the fewest buses. No time-current curves are evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from gridmesh.model.graph import branch_end_open, connectivity
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network
from gridmesh.physics.short_circuit import Fault, FaultCurrents
from gridmesh.units import V_PER_KV, W_PER_KW

PROTECTIVE = frozenset({SwitchKind.BREAKER, SwitchKind.RECLOSER, SwitchKind.FUSE})
"""Switches that interrupt fault current on their own."""
FAULT_INDICATING = frozenset({SwitchKind.RECLOSER, SwitchKind.SECTIONALISER, SwitchKind.BREAKER})
"""Switches with a fault passage indicator (the telemetry catalogue gives these ``FltInd``)."""


class Action(StrEnum):
    """What a protection event does; ``success`` ends a sequence whose reclose held (the fault was gone)."""

    TRIP = "trip"
    RECLOSE = "reclose"
    SUCCESS = "success"
    LOCKOUT = "lockout"
    FPI = "fpi"


@dataclass(frozen=True)
class ProtectionEvent:
    """One step of the response, ``t_s`` seconds after fault inception."""

    t_s: float
    switch: str
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class RecloserSettings:
    """A recloser's sequence: ``shots`` reclose attempts, the dead time before each, and how long the
    fast curve takes to clear a fault (first trip and every trip after a reclose onto it)."""

    shots: int = 3
    dead_times_s: tuple[float, ...] = (0.5, 15.0, 30.0)
    trip_time_s: float = 0.1

    def __post_init__(self) -> None:
        if self.shots < 0:
            raise ValueError(f"shots is {self.shots}; give 0 (no reclosing) or more")
        if len(self.dead_times_s) < self.shots:
            raise ValueError(f"{self.shots} shots need {self.shots} dead times, got {len(self.dead_times_s)}")
        if any(not t > 0 for t in (*self.dead_times_s, self.trip_time_s)):
            raise ValueError("dead times and trip time must be positive seconds")


@dataclass(frozen=True)
class ProtectionSettings:
    """How devices pick up.

    A device picks up above ``pickup_factor`` × its rating: the switch's ``rated_i_a``, else the rating of
    the branch it sits on (a line's ``max_i_a`` × parallel, a transformer's rated current on that side),
    else, for a bus-bus switch, the smaller of the summed branch ratings on either bus. ``pickup_a``
    overrides single switches. FPIs use the same threshold. ``reclosing`` are the kinds that run a
    reclose sequence; the other protective kinds trip once and stay open (a fuse blows).
    """

    pickup_factor: float = 2.0
    pickup_a: Mapping[str, float] = field(default_factory=dict)
    recloser: RecloserSettings = field(default_factory=RecloserSettings)
    reclosing: frozenset[SwitchKind] = frozenset({SwitchKind.RECLOSER})
    fpi_remote_only: bool = True  # only remote switches report FltInd in the telemetry catalogue


@dataclass(frozen=True)
class ProtectionResponse:
    """The outcome of one fault: the device that tripped (None if nothing did), whether it ended open,
    the event sequence in time order, and per FPI-equipped switch whether it saw fault current."""

    tripped: str | None
    locked_out: bool
    events: list[ProtectionEvent]
    indications: dict[str, bool]
    note: str = ""


def _bus_rating_a(network: Network, bus: str) -> float:
    """Summed current ratings of the lines and transformers at ``bus`` (the capacity a busbar feeds)."""
    total = sum(x.max_i_a * x.parallel for x in network.lines.values() if bus in (x.from_bus, x.to_bus))
    for t in network.transformers.values():
        if bus in (t.hv_bus, t.lv_bus):
            kv = network.buses[bus].vn_kv
            total += t.sn_kva * W_PER_KW * t.parallel / (math.sqrt(3) * kv * V_PER_KV)
    return total


def pickup_a(network: Network, switch: str, settings: ProtectionSettings | None = None) -> float:
    """The current above which ``switch`` picks up (A), by the rule in :class:`ProtectionSettings`."""
    settings = settings or ProtectionSettings()
    if switch in settings.pickup_a:
        return float(settings.pickup_a[switch])
    sw = network.switches[switch]
    if sw.rated_i_a is not None:
        rating = sw.rated_i_a
    elif sw.element_type is SwitchedElement.LINE:
        line = network.lines[sw.element]
        rating = line.max_i_a * line.parallel
    elif sw.element_type is SwitchedElement.TRANSFORMER:
        t = network.transformers[sw.element]
        rating = t.sn_kva * W_PER_KW * t.parallel / (math.sqrt(3) * network.buses[sw.bus].vn_kv * V_PER_KV)
    else:
        rating = min(_bus_rating_a(network, sw.bus), _bus_rating_a(network, sw.element))
    return settings.pickup_factor * rating


def reclose_sequence(
    fault: Fault, settings: RecloserSettings, *, switch: str, start_s: float = 0.0
) -> list[ProtectionEvent]:
    """A recloser clearing ``fault``: trip, then per shot a reclose after its dead time.

    A temporary fault has gone by the first reclose (trip → reclose → success); a permanent one trips
    again after every reclose and the recloser locks out after the last shot.
    """
    t = start_s + settings.trip_time_s
    events = [ProtectionEvent(t, switch, Action.TRIP, "fast curve")]
    for shot, dead in enumerate(settings.dead_times_s[: settings.shots], start=1):
        t += dead
        events.append(ProtectionEvent(t, switch, Action.RECLOSE, f"shot {shot} of {settings.shots}"))
        if not fault.permanent:
            events.append(ProtectionEvent(t, switch, Action.SUCCESS, "fault gone: the reclose held"))
            return events
        t += settings.trip_time_s
        events.append(ProtectionEvent(t, switch, Action.TRIP, f"fault still there after shot {shot}"))
    events.append(ProtectionEvent(t, switch, Action.LOCKOUT, f"locked out after {settings.shots} shot(s)"))
    return events


def _isolates(network: Network, fault: Fault, switch: str) -> tuple[bool, int]:
    """Whether opening ``switch`` alone cuts the fault from every source, and how many buses stay live."""
    cut = connectivity(network, switch_states={switch: False})
    live = dict(zip(cut.bus_ids, cut.energized.tolist(), strict=True))
    if fault.table == "buses":
        return not live[fault.element], int(cut.energized.sum())
    line = network.lines[fault.element]
    opened = branch_end_open(network, {switch: False})
    dead = all((line.id, end) in opened or not live[end] for end in (line.from_bus, line.to_bus))
    return dead, int(cut.energized.sum())


def protection_response(
    network: Network, fault: Fault, currents: FaultCurrents, *, settings: ProtectionSettings | None = None
) -> ProtectionResponse:
    """What the protection does about ``fault`` (one of the faults in ``currents``).

    The nearest protective device upstream that picks up trips (and, if it recloses, runs its sequence);
    every FPI-equipped switch that carried more than its pickup reports an indication at inception.
    """
    settings = settings or ProtectionSettings()
    row = currents.row(fault)
    seen: dict[str, tuple[float, float]] = {}  # switch → (peak phase current, pickup)
    for sw in network.switches.values():
        if sw.kind in PROTECTIVE or sw.kind in FAULT_INDICATING:
            peak = float(np.max(currents.through_switch_a(network, sw.id)[row]))
            seen[sw.id] = (peak, pickup_a(network, sw.id, settings))
    fpi = {
        s: seen[s][0] > seen[s][1]
        for s, sw in network.switches.items()
        if sw.kind in FAULT_INDICATING and (sw.remote or not settings.fpi_remote_only)
    }
    events = [
        ProtectionEvent(0.0, s, Action.FPI, f"fault current {seen[s][0]:.0f} A > pickup {seen[s][1]:.0f} A")
        for s in sorted(s for s, saw in fpi.items() if saw)
    ]
    i_fault_a = currents.fault_ka(fault) * 1_000.0
    if not currents.energized[row]:
        return ProtectionResponse(None, False, events, fpi, "the fault location is not energised: no fault current")
    candidates = [s for s, (peak, pick) in seen.items() if network.switches[s].kind in PROTECTIVE and peak > pick]
    isolating = [(live, s) for s in candidates for dead, live in [_isolates(network, fault, s)] if dead]
    if not isolating:
        reason = (
            f"fault current {i_fault_a:.0f} A stays below every protective pickup on its path (high-impedance fault)"
            if not candidates
            else "no single protective device that picks up isolates the fault (meshed supply)"
        )
        return ProtectionResponse(None, False, events, fpi, f"nothing trips: {reason}")
    tripped = max(isolating)[1]  # the most buses left live: nearest to the fault
    kind = network.switches[tripped].kind
    if kind in settings.reclosing:
        sequence = reclose_sequence(fault, settings.recloser, switch=tripped)
    else:
        t = settings.recloser.trip_time_s
        what = "fuse blown" if kind is SwitchKind.FUSE else f"{kind.value} does not reclose"
        sequence = [ProtectionEvent(t, tripped, Action.TRIP, what), ProtectionEvent(t, tripped, Action.LOCKOUT, what)]
    locked = sequence[-1].action is Action.LOCKOUT
    note = f"{tripped} clears {i_fault_a:.0f} A" + (" and locks out" if locked else "; the reclose held")
    return ProtectionResponse(tripped, locked, events + sequence, fpi, note)
