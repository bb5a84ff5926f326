"""Validation that returns every problem at once; :func:`assert_valid` is the raising twin.

Per-field range checks come from the element schema (:mod:`gridmesh.model.elements`); this module checks
what spans elements: references, topology, the site hierarchy and profile coverage.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import Site
from gridmesh.model.graph import buses_behind
from gridmesh.model.kinds import SiteLevel, SwitchedElement
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario


def _ref(owner: str, field: str, target: str, table: str, known: object) -> Iterator[Issue]:
    if target not in known:  # type: ignore[operator]
        yield Issue(owner, field, f"refers to unknown {table} {target!r}", f"use the id of an existing {table}")


def _references(net: Network) -> Iterator[Issue]:
    for line in net.lines.values():
        yield from _ref(f"lines[{line.id}]", "from_bus", line.from_bus, "bus", net.buses)
        yield from _ref(f"lines[{line.id}]", "to_bus", line.to_bus, "bus", net.buses)
        if line.from_bus == line.to_bus:
            yield Issue(f"lines[{line.id}]", "to_bus", "line starts and ends at the same bus", "connect two buses")
    for trafo in net.transformers.values():
        yield from _ref(f"transformers[{trafo.id}]", "hv_bus", trafo.hv_bus, "bus", net.buses)
        yield from _ref(f"transformers[{trafo.id}]", "lv_bus", trafo.lv_bus, "bus", net.buses)
    for table in ("external_grids", "loads", "generators", "batteries", "ev_chargers"):
        for element in net.table(table).values():
            yield from _ref(f"{table}[{element.id}]", "bus", element.bus, "bus", net.buses)  # type: ignore[attr-defined]
    for sw in net.switches.values():
        owner = f"switches[{sw.id}]"
        yield from _ref(owner, "bus", sw.bus, "bus", net.buses)
        target_table = {
            SwitchedElement.BUS: net.buses,
            SwitchedElement.LINE: net.lines,
            SwitchedElement.TRANSFORMER: net.transformers,
        }[sw.element_type]
        yield from _ref(owner, "element", sw.element, sw.element_type.value, target_table)
        ends: tuple[str, ...] = ()
        if sw.element_type is SwitchedElement.LINE and sw.element in net.lines:
            ends = (net.lines[sw.element].from_bus, net.lines[sw.element].to_bus)
        elif sw.element_type is SwitchedElement.TRANSFORMER and sw.element in net.transformers:
            ends = (net.transformers[sw.element].hv_bus, net.transformers[sw.element].lv_bus)
        if ends and sw.bus not in ends:
            yield Issue(owner, "bus", f"bus {sw.bus!r} is not an end of {sw.element!r}", f"use one of {ends}")


def _voltages(net: Network) -> Iterator[Issue]:
    for trafo in net.transformers.values():
        for side, bus_id, vn in (("hv_bus", trafo.hv_bus, trafo.vn_hv_kv), ("lv_bus", trafo.lv_bus, trafo.vn_lv_kv)):
            bus = net.buses.get(bus_id)
            if bus is not None and not 0.8 <= vn / bus.vn_kv <= 1.2:
                yield Issue(
                    f"transformers[{trafo.id}]",
                    side,
                    f"rated {vn} kV but bus {bus_id!r} is {bus.vn_kv} kV",
                    "connect the winding to a bus of its voltage",
                )
    for line in net.lines.values():
        a, b = net.buses.get(line.from_bus), net.buses.get(line.to_bus)
        if a is not None and b is not None and a.vn_kv != b.vn_kv:
            yield Issue(
                f"lines[{line.id}]", "to_bus", f"joins {a.vn_kv} kV and {b.vn_kv} kV buses", "use a transformer"
            )


def _dangling(net: Network) -> Iterator[Issue]:
    touched: set[str] = set()
    for line in net.lines.values():
        touched.update((line.from_bus, line.to_bus))
    for trafo in net.transformers.values():
        touched.update((trafo.hv_bus, trafo.lv_bus))
    for sw in net.switches.values():
        touched.add(sw.bus)
        if sw.element_type is SwitchedElement.BUS:
            touched.add(sw.element)
    if len(net.buses) > 1:
        for bus in net.buses:
            if bus not in touched:
                yield Issue(
                    f"buses[{bus}]",
                    "id",
                    "dangling bus: no line, transformer or switch connects it",
                    "connect it to the network or remove it",
                )
    if not net.external_grids:
        yield Issue("external_grids", "-", "the network has no external grid (slack)", "add an external grid")


def _sites(net: Network, *, topology: bool) -> Iterator[Issue]:
    for site in net.sites.values():
        owner = f"sites[{site.id}]"
        if site.level is SiteLevel.MICROGRID:
            yield from _microgrid(net, site, owner, topology=topology)
        else:
            if not site.members and not site.assets:
                yield Issue(owner, "members", "a group or VPP needs members or assets", "list site ids in members")
            for member in site.members:
                other = net.sites.get(member)
                if other is None:
                    yield Issue(owner, "members", f"unknown site {member!r}", "use the id of an existing site")
                elif other.level >= site.level:
                    yield Issue(
                        owner,
                        "members",
                        f"member {member!r} is level {int(other.level)}, not below {int(site.level)}",
                        "aggregate only sites of a lower level",
                    )
            for asset in site.assets:
                if not any(asset in net.table(t) for t in ("generators", "batteries", "loads", "ev_chargers")):
                    yield Issue(owner, "assets", f"unknown asset {asset!r}", "use a generator, battery, load or EV id")


def _microgrid(net: Network, site: Site, owner: str, *, topology: bool) -> Iterator[Issue]:
    if site.pcc is None:
        yield Issue(owner, "pcc", "a microgrid needs a point of common coupling", "set pcc to a switch id")
        return
    if site.pcc not in net.switches:
        what = (
            "a bus/line/transformer, not a switch"
            if any(site.pcc in net.table(t) for t in ("buses", "lines", "transformers"))
            else "unknown"
        )
        yield Issue(owner, "pcc", f"{site.pcc!r} is {what}", "the PCC must be the id of a switch")
        return
    for bus in site.buses:
        yield from _ref(owner, "buses", bus, "bus", net.buses)
    if topology and not site.buses and buses_behind(net, site.pcc) is None:
        yield Issue(
            owner,
            "pcc",
            f"opening switch {site.pcc!r} separates no buses from the external grid",
            "choose the switch that connects the microgrid to the rest of the grid, or list its buses",
        )


def validate_network(net: Network) -> list[Issue]:
    """Every cross-element problem of a network (empty list when valid)."""
    issues = [
        Issue(f"{table}[{id_}]", "id", "duplicate id in its table", "give each element a unique id")
        for table, id_ in net.duplicates
    ]
    references = [*_references(net)]
    issues += [*references, *_dangling(net)]
    # Topology checks need consistent references and a slack; a dangling bus stops neither.
    topology = not net.duplicates and not references and bool(net.external_grids)
    issues += _sites(net, topology=topology)
    if not net.duplicates and not references:
        issues += _voltages(net)
    return issues


def validate_scenario(scenario: Scenario) -> list[Issue]:
    """Network problems plus profile problems: unknown profile names, too short a time range."""
    issues = validate_network(scenario.network)
    net, profiles = scenario.network, scenario.profiles
    known = set(profiles.names)
    for load in net.loads.values():
        for field, name in (("p_profile", load.p_profile), ("q_profile", load.q_profile)):
            if name and name not in known:
                issues.append(Issue(f"loads[{load.id}]", field, f"unknown profile {name!r}", "add it under profiles"))
    for gen in net.generators.values():
        if gen.profile and gen.profile not in known:
            issues.append(Issue(f"generators[{gen.id}]", "profile", f"unknown profile {gen.profile!r}", "add it"))
    if profiles.names:
        if not np.all(np.isfinite(profiles.values)):
            columns = np.flatnonzero(~np.isfinite(profiles.values).all(axis=0))
            bad = [profiles.names[int(i)] for i in columns]
            issues.append(Issue(f"profiles[{bad[0]}]", "values", "contains NaN or infinite values", "fill the gaps"))
        if scenario.time.start < profiles.start or scenario.time.end > profiles.end:
            issues.append(
                Issue(
                    "time",
                    "days",
                    f"study {scenario.time.start:%Y-%m-%d %H:%M} – {scenario.time.end:%Y-%m-%d %H:%M} "
                    f"is not covered by the profiles ({profiles.start:%Y-%m-%d %H:%M} – {profiles.end:%Y-%m-%d %H:%M})",
                    "shorten the study or extend the profiles",
                )
            )
    return issues


def assert_valid(scenario: Scenario) -> None:
    """Raise :class:`ScenarioError` listing every problem, or return quietly."""
    issues = validate_scenario(scenario)
    if issues:
        raise ScenarioError(issues)
