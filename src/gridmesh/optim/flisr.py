"""FLISR: fault location, isolation and service restoration planning (pure computation).

``locate`` turns trips and fault passage indicators into faulted sections; ``plan`` isolates them with
the nearest operable switches, recloses the tripped device and transfers dead sections through
normally-open ties, checking every candidate in one power-flow batch and keeping the one that restores
the most (critical customers first, then kW). ``next_plan`` answers a switch that failed to operate;
``validate`` refuses a plan whose assumed switch states no longer hold. Nothing here touches a device.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from gridmesh.model.network import Network
from gridmesh.model.sections import Sections
from gridmesh.optim.flisr_check import CheckResult, Limits, SwitchingCheck
from gridmesh.optim.flisr_locate import fault_at, locate
from gridmesh.optim.flisr_restore import AreaOption, Grid, area_options, grid_state
from gridmesh.optim.flisr_types import Action, Location, PlanRefused, Purpose, Step

__all__ = [
    "Action",
    "Limits",
    "Location",
    "Outcome",
    "Plan",
    "PlanRefused",
    "Purpose",
    "Restoration",
    "Step",
    "SwitchingCheck",
    "assert_valid",
    "fault_at",
    "locate",
    "next_plan",
    "plan",
    "validate",
]

FIRST_BATCH = 8  # candidates in the first power flow; most faults are settled there
BATCH = 32
MAX_CHECKED = 512  # beyond this many infeasible candidates, restore nothing rather than keep searching
CRITICAL_WEIGHT = 1e9  # a critical section outranks any amount of ordinary load when shedding


@dataclass(frozen=True)
class Outcome:
    """One affected section after the plan: restored or not, and what it supplies."""

    section: int
    restored: bool
    faulted: bool
    customers: int
    p_kw: float
    critical: bool


@dataclass(frozen=True)
class Restoration:
    """One checked switching plan: ordered steps, what it restores, and the power-flow figures."""

    steps: tuple[Step, ...]
    outcomes: tuple[Outcome, ...]
    check: CheckResult

    @property
    def restored_kw(self) -> float:
        return sum(o.p_kw for o in self.outcomes if o.restored)

    @property
    def unrestored_kw(self) -> float:
        return sum(o.p_kw for o in self.outcomes if not o.restored)

    @property
    def restored_customers(self) -> int:
        return sum(o.customers for o in self.outcomes if o.restored)

    @property
    def unrestored_customers(self) -> int:
        return sum(o.customers for o in self.outcomes if not o.restored)

    @property
    def critical_restored(self) -> int:
        """Customers of critical sections brought back."""
        return sum(o.customers for o in self.outcomes if o.restored and o.critical)

    def uses(self, switch: str) -> bool:
        return any(step.switch == switch for step in self.steps)


@dataclass(frozen=True)
class Plan:
    """The chosen restoration, its ranked feasible alternatives, and what it assumed about the grid."""

    location: Location
    chosen: Restoration
    alternatives: tuple[Restoration, ...]
    assumed: Mapping[str, bool]  # boundary switch → closed, when the plan was made
    candidates_checked: int
    stuck: frozenset[str] = frozenset()
    inputs: _Inputs | None = field(default=None, repr=False, compare=False)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.chosen.steps


@dataclass(frozen=True)
class _Inputs:
    """What ``next_plan`` needs to plan again."""

    network: Network
    sections: Sections
    loads_kw: Mapping[str, float]
    gens_kw: Mapping[str, float] | None
    limits: Limits
    check: SwitchingCheck


def plan(
    network: Network,
    sections: Sections,
    location: Location,
    loads_kw: Mapping[str, float],
    *,
    limits: Limits | None = None,
    failed_switches: Iterable[str] = (),
    gens_kw: Mapping[str, float] | None = None,
    check: SwitchingCheck | None = None,
) -> Plan:
    """The best feasible isolation and restoration for ``location`` in the network's present state.

    ``failed_switches`` are stuck where they are. Pass a prebuilt ``check`` (one per network) to keep the
    plan under a second on a large grid; it must have been built for the same elements.
    """
    stuck = frozenset(failed_switches)
    _refuse_bad_input(network, sections, location, stuck)
    limits = limits or Limits()
    check = check or SwitchingCheck(network)
    grid = grid_state(network, sections, location.faulted, location.trips, stuck)
    kw = {s: sections.load_kw(s, loads_kw) for s in _affected(grid)}

    def priority(group: frozenset[int]) -> float:
        return sum(kw[s] + CRITICAL_WEIGHT * sections.critical(s) for s in group)

    per_area = [area_options(grid, area, priority) for area in grid.areas]
    candidates = sorted(_combine(per_area), key=lambda c: _rank(grid, kw, c))
    zone = _zone_buses(grid)
    feasible: list[Restoration] = []
    checked = 0
    while checked < min(len(candidates), MAX_CHECKED) and not feasible:
        size = FIRST_BATCH if checked == 0 else BATCH
        batch = candidates[checked : checked + size]
        states = [_states(grid, c) for c in batch]
        verdicts = check.run(
            [s for s, _ in states], loads_kw, limits=limits, gens_kw=gens_kw, dead_buses=zone, network=network
        )
        checked += len(batch)
        for option, (_, steps), verdict in zip(batch, states, verdicts, strict=True):
            if verdict.feasible:
                feasible.append(Restoration(steps=steps, outcomes=_outcomes(grid, kw, option), check=verdict))
    if not feasible:
        nothing = _combine([[AreaOption(frozenset(), frozenset(), frozenset())] for _ in grid.areas])[0]
        final, steps = _states(grid, nothing)
        verdict = check.run([final], loads_kw, limits=limits, gens_kw=gens_kw, dead_buses=zone, network=network)[0]
        feasible.append(Restoration(steps=steps, outcomes=_outcomes(grid, kw, nothing), check=verdict))
    chosen = feasible[0]
    after = _applied(network, chosen.steps)
    if chosen.steps and grid_state(after, sections, location.faulted, location.trips, stuck).feeds:
        # a dead area whose only live neighbour was itself restored just now (several faults): go on from there
        follow = plan(
            after, sections, location, loads_kw, limits=limits, failed_switches=stuck, gens_kw=gens_kw, check=check
        )
        chosen = _extend(chosen, follow.chosen)
        checked += follow.candidates_checked
    return Plan(
        location=location,
        chosen=chosen,
        alternatives=tuple(feasible[1:]),
        assumed={sw: sw in grid.closed for sw in sections.switch_sides},
        candidates_checked=checked,
        stuck=stuck,
        inputs=_Inputs(network, sections, loads_kw, gens_kw, limits, check),
    )


def _applied(network: Network, steps: Iterable[Step]) -> Network:
    """The network once ``steps`` are executed."""
    changed = [network.switches[s.switch].model_copy(update={"closed": s.action is Action.CLOSE}) for s in steps]
    return network.with_elements(changed) if changed else network


def _extend(first: Restoration, then: Restoration) -> Restoration:
    """``first`` followed by ``then``: outcomes merged per section, the final grid's check."""
    restored = {o.section for o in (*first.outcomes, *then.outcomes) if o.restored}
    outcomes = tuple(replace(o, restored=o.section in restored) for o in first.outcomes)
    return Restoration(steps=first.steps + then.steps, outcomes=outcomes, check=then.check)


_plan_again = plan  # next_plan's argument is called ``plan``


def _refuse_bad_input(network: Network, sections: Sections, location: Location, stuck: frozenset[str]) -> None:
    for s in location.faulted:
        if not 0 <= s < len(sections):
            raise PlanRefused(f"no section {s}", fix="locate the fault with these sections")
    for sw in (*location.trips, *stuck):
        if sw not in network.switches:
            raise PlanRefused(f"unknown switch {sw!r}", fix="check the switch id against the network")


def _affected(grid: Grid) -> set[int]:
    return set(grid.zone).union(*grid.areas)


def _combine(per_area: list[list[AreaOption]]) -> list[AreaOption]:
    """One option per area, merged: the cross product (areas are few: one per fault and side)."""
    merged = []
    for combo in itertools.product(*per_area):
        merged.append(
            AreaOption(
                closes=frozenset().union(*(o.closes for o in combo)),
                opens=frozenset().union(*(o.opens for o in combo)),
                energised=frozenset().union(*(o.energised for o in combo)),
            )
        )
    return merged


def _rank(grid: Grid, kw: Mapping[int, float], option: AreaOption) -> tuple[object, ...]:
    """Sort key, best first: critical customers, kW, customers restored; then fewer operations and ties."""
    secs = grid.sections
    critical = sum(secs.customers(s) for s in option.energised if secs.critical(s))
    customers = sum(secs.customers(s) for s in option.energised)
    restored = sum(kw[s] for s in option.energised)
    ties = sum(1 for sw in option.closes if grid.network.switches[sw].normally_closed is False)
    ops = len(option.closes) + len(option.opens)
    return (-critical, -round(restored, 6), -customers, ops, ties, sorted(option.closes), sorted(option.opens))


def _states(grid: Grid, option: AreaOption) -> tuple[dict[str, bool], tuple[Step, ...]]:
    """Switch states the option asks for, and the ordered steps: opens first (isolate, shed), then closes
    (tripped devices before ties), so that no intermediate state closes a loop."""
    live = grid.live | option.energised
    isolate = sorted(
        sw
        for sw, (a, b) in grid.sections.switch_sides.items()
        if sw in grid.closed
        and sw in grid.operable
        and (a in grid.zone) != (b in grid.zone)
        and (a in live or b in live)
    )
    steps = [Step(sw, Action.OPEN, Purpose.ISOLATE) for sw in isolate]
    for sw in sorted(option.opens):
        a, b = grid.sections.switch_sides[sw]
        purpose = Purpose.RESTORE if a in live and b in live else Purpose.SHED
        steps.append(Step(sw, Action.OPEN, purpose))
    normal_first = sorted(option.closes, key=lambda sw: (not grid.network.switches[sw].normally_closed, sw))
    steps += [Step(sw, Action.CLOSE, Purpose.RESTORE) for sw in normal_first]
    states = {step.switch: step.action is Action.CLOSE for step in steps}
    return states, tuple(steps)


def _outcomes(grid: Grid, kw: Mapping[int, float], option: AreaOption) -> tuple[Outcome, ...]:
    secs = grid.sections
    return tuple(
        Outcome(
            section=s,
            restored=s in option.energised,
            faulted=s in grid.zone,
            customers=secs.customers(s),
            p_kw=kw[s],
            critical=secs.critical(s),
        )
        for s in sorted(_affected(grid))
    )


def _zone_buses(grid: Grid) -> list[str]:
    return sorted(b for s in grid.zone for b in grid.sections.sections[s].buses)


def validate(plan: Plan, network: Network) -> list[str]:
    """Reasons the plan may no longer be executed on ``network`` (empty: still valid)."""
    problems = []
    for sw, was_closed in sorted(plan.assumed.items()):
        now = network.switches.get(sw)
        if now is None:
            problems.append(f"switch {sw} no longer exists")
        elif now.is_closed != was_closed:
            problems.append(f"switch {sw} is now {'closed' if now.is_closed else 'open'}; the plan assumed otherwise")
    for step in plan.steps:
        now = network.switches.get(step.switch)
        if now is not None and not (now.remote and now.in_service):
            problems.append(f"switch {step.switch} is not remote-controllable or out of service")
    return problems


def assert_valid(plan: Plan, network: Network) -> None:
    """Raise :class:`PlanRefused` (stale) if the grid changed since the plan was made."""
    problems = validate(plan, network)
    if problems:
        raise PlanRefused("stale plan: " + "; ".join(problems[:5]), fix="plan again from the present grid state")


def next_plan(plan: Plan, failed_switch: str) -> Plan:
    """The best plan once ``failed_switch`` did not operate: steps before it are taken as done, and the
    switch as stuck where it was; the plan is made again from that state (isolation may grow)."""
    if plan.inputs is None:
        raise PlanRefused("this plan carries no inputs to plan again from", fix="call plan() again")
    position = next((k for k, step in enumerate(plan.steps) if step.switch == failed_switch), None)
    if position is None:
        raise PlanRefused(f"{failed_switch!r} is not operated by this plan", fix="name a switch of the plan's steps")
    inputs = plan.inputs
    network = _applied(inputs.network, plan.steps[:position])
    return _plan_again(
        network,
        inputs.sections,
        plan.location,
        inputs.loads_kw,
        limits=inputs.limits,
        failed_switches=plan.stuck | {failed_switch},
        gens_kw=inputs.gens_kw,
        check=inputs.check,
    )
