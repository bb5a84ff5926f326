"""Islanding study: microgrids ride through a loss of upstream supply on their grid-forming batteries.

The twin runs over the outage and a margin either side. At the outage's first step the chosen microgrids'
PCCs open (``upstream``: the external grids are lost and protection opens the PCCs; ``planned``: the PCCs
open on command and the rest of the grid stays supplied). Each island is balanced by
:func:`~gridmesh.control.island_balance.balance_island` and solved by
:class:`~gridmesh.physics.island.IslandFlow` twice: once without losses, once with the losses the first
power flow found, so that the battery also covers them. When the outage ends each island synchronises
(:func:`~gridmesh.control.resync.synchronise`) before its PCC closes.

Outputs: ``islanding.json`` (per-site figures), ``islanding.parquet`` (per-step traces) and
``islanding.html`` (one self-contained page in the study report's look).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.control.island_balance import IslandBalance, balance_island, rehearse, shed_priority
from gridmesh.control.resync import Resync, SideState, SyncLimits, ieee1547_limits, synchronise, wrap_deg
from gridmesh.devices.battery import BatteryFleet
from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import Battery
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import member_positions, resolve_sites
from gridmesh.physics.island import Droop, Island, IslandFlow, IslandFlowResult, find_islands, outage_network
from gridmesh.physics.powerflow import FloatArray, Injections, PowerFlow, PowerFlowResult
from gridmesh.sim.report import CSS
from gridmesh.sim.report_data import DASH, kwh, pct
from gridmesh.sim.report_plots import DPI, RC, WIDE, png
from gridmesh.sim.twin import StudyTwin

__all__ = ["Cause", "IslandingResult", "Outage", "SiteIslanding", "run_islanding", "write_islanding"]

SECONDS_PER_HOUR = 3600.0
EV_CLASS = "ev"


class Cause(StrEnum):
    """Why the microgrids island."""

    UPSTREAM = "upstream"  # loss of upstream supply; protection opens the PCCs
    PLANNED = "planned"  # the PCCs open on command; the grid stays up


@dataclass(frozen=True)
class Outage:
    """An outage from ``start`` for ``hours``; ``sites`` empty means every microgrid with a grid-forming battery."""

    start: datetime
    hours: float
    cause: Cause = Cause.UPSTREAM
    sites: tuple[str, ...] = ()
    margin_hours: float = 2.0  # simulated before and after the outage
    soc_start: float | None = None  # every grid-forming battery's SOC when the outage starts (default: soc_init)


@dataclass(frozen=True)
class SiteIslanding:
    """One microgrid's ride-through: energies over the outage (kWh), traces' extremes and the resync."""

    site: str
    former: str
    hours_islanded: float
    demand_kwh: float
    served_kwh: float
    critical_demand_kwh: float
    critical_served_kwh: float
    shed_kwh: dict[str, float]
    curtailed_kwh: float
    forced_curtailed_kwh: float
    losses_kwh: float
    soc_start: float
    soc_end: float
    f_min_hz: float
    f_max_hz: float
    v_min_pu: float
    v_max_pu: float
    balance_error_kw: float  # largest |generation + battery − served − losses| by the power flow
    resync_seconds: float
    resync: dict[str, Any] = field(default_factory=dict)

    @property
    def served_share(self) -> float:
        return self.served_kwh / self.demand_kwh if self.demand_kwh > 0 else 1.0

    @property
    def critical_share(self) -> float:
        return self.critical_served_kwh / self.critical_demand_kwh if self.critical_demand_kwh > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"served_share": self.served_share, "critical_share": self.critical_share}


@dataclass(frozen=True)
class IslandingResult:
    scenario: str
    outage: Outage
    dt_h: float
    sites: tuple[SiteIslanding, ...]
    traces: pd.DataFrame  # time, site, islanded, soc, battery_kw, frequency_hz, demand/served/critical kW

    def to_dict(self) -> dict[str, Any]:
        outage = asdict(self.outage) | {"start": self.outage.start.isoformat(), "cause": str(self.outage.cause)}
        return {
            "scenario": self.scenario,
            "outage": outage,
            "dt_h": self.dt_h,
            "sites": [s.to_dict() for s in self.sites],
        }


@dataclass(frozen=True)
class _Members:
    """One island's elements: positions in the network's tables, and what the balance needs of them."""

    loads: np.ndarray
    gens: np.ndarray
    evs: np.ndarray
    critical: np.ndarray  # over loads then EV chargers
    classes: np.ndarray  # class name over loads then EV chargers
    priority: np.ndarray
    curtailable: np.ndarray
    der_kva: float  # aggregate DER rating (generators and batteries), for the synchronisation limits

    @classmethod
    def of(cls, scenario: Scenario, island: Island) -> _Members:
        net, buses = scenario.network, frozenset(island.buses)

        def inside(table: str) -> np.ndarray:
            elements = net.table(table)
            return member_positions(tuple(elements), frozenset(k for k, x in elements.items() if x.bus in buses))  # type: ignore[attr-defined]

        loads, gens, evs = inside("loads"), inside("generators"), inside("ev_chargers")
        load_list, gen_list = list(net.loads.values()), list(net.generators.values())
        chosen = [load_list[i] for i in loads]
        generators = [gen_list[i] for i in gens]
        batteries = [b for b in net.batteries.values() if b.bus in buses and b.in_service]
        return cls(
            loads=loads,
            gens=gens,
            evs=evs,
            critical=np.array([x.critical for x in chosen] + [False] * len(evs), dtype=bool),
            classes=np.array([str(x.load_class) for x in chosen] + [EV_CLASS] * len(evs), dtype=object),
            priority=shed_priority(chosen, ev_chargers=len(evs)),
            curtailable=np.array([g.curtailable for g in generators], dtype=bool),
            der_kva=sum(g.sn_kva or g.p_kw for g in generators) + sum(b.p_kw for b in batteries),
        )


def _choose(scenario: Scenario, outage: Outage) -> dict[str, str]:
    """site → grid-forming battery of every microgrid that islands (the largest one where it has several)."""
    net = scenario.network
    micro = {s.id for s in net.sites.values() if s.level is SiteLevel.MICROGRID and s.pcc}
    unknown = [s for s in outage.sites if s not in micro]
    if unknown:
        raise ScenarioError(
            [
                Issue(f"sites[{s}]", "id", "not a microgrid with a PCC", f"choose one of {sorted(micro)}")
                for s in unknown
            ]
        )
    members = resolve_sites(net)
    chosen: dict[str, str] = {}
    for site in outage.sites or tuple(sorted(micro)):
        formers = sorted(
            (net.batteries[b] for b in members[site].elements["batteries"] if net.batteries[b].grid_forming),
            key=lambda b: (-b.p_kw, b.id),
        )
        if formers:
            chosen[site] = formers[0].id
        elif outage.sites:
            raise ScenarioError([Issue(f"sites[{site}]", "batteries", "no grid-forming battery", "add one to island")])
    if not chosen:
        raise ScenarioError([Issue("sites", "batteries", "no microgrid has a grid-forming battery", "add one")])
    return chosen


def run_islanding(
    scenario: Scenario,
    outage: Outage,
    *,
    droop: Droop | None = None,
    limits: SyncLimits | None = None,
    method: str = "newton_raphson",
) -> IslandingResult:
    """Simulate the outage, each island's ride-through and its resynchronisation.

    ``limits`` overrides the synchronisation limits (default: IEEE 1547-2018 Table 5 for each island's
    aggregate DER rating).
    """
    if outage.hours <= 0 or outage.margin_hours < 0:
        raise ValueError("the outage must last a positive number of hours and the margin must not be negative")
    droop = droop or Droop()
    chosen = _choose(scenario, outage)
    net = scenario.network
    first = outage.start - timedelta(hours=outage.margin_hours)
    period = scenario.with_time(start=first, days=(outage.hours + 2 * outage.margin_hours) / 24.0)
    twin = StudyTwin(period, method=method)
    window, base = twin.window(0, twin.steps)
    dt_h, times = twin.dt_h, window.times
    stamps = times.to_numpy()
    begin, end = np.datetime64(outage.start), np.datetime64(outage.start + timedelta(hours=outage.hours))
    off = (stamps >= begin) & (stamps < end)
    rows = np.flatnonzero(off)
    if not len(rows):
        raise ValueError(f"the outage at {outage.start} covers no step of {dt_h * 60:g} min")
    pccs = [net.sites[s].pcc or "" for s in chosen]
    islanded = outage_network(net, open_switches=pccs, upstream_lost=outage.cause is Cause.UPSTREAM)
    by_former = {i.former: i for i in find_islands(islanded, formers=chosen.values())}
    islands = [by_former[b] for b in chosen.values()]
    flow = IslandFlow(islanded, islands, droop=droop, method=method)
    members = [_Members.of(scenario, i) for i in islands]
    fleets = [BatteryFleet.of([_at_soc(net.batteries[b], outage.soc_start)]) for b in chosen.values()]
    load, gen, ev = window.load_p_kw[rows], window.gen_p_kw[rows], window.ev_p_kw[rows]
    demand = [np.hstack([load[:, m.loads], ev[:, m.evs]]) for m in members]
    # The restoration time is taken as known (announced for a planned opening, estimated by the fault desk
    # otherwise): each battery keeps back the energy the critical loads need until then.
    reserve = [
        np.cumsum((d[:, m.critical].sum(axis=1) * dt_h)[::-1])[::-1] / f.eta_discharge[0]
        for d, m, f in zip(demand, members, fleets, strict=True)
    ]

    def balance(losses: FloatArray) -> list[IslandBalance]:
        return [
            balance_island(
                d,
                gen[:, m.gens],
                rehearse(f),
                priority=m.priority,
                curtailable=m.curtailable,
                dt_h=dt_h,
                losses_kw=losses[:, k],
                reserve_kwh=r,
            )
            for k, (d, f, m, r) in enumerate(zip(demand, fleets, members, reserve, strict=True))
        ]

    def solve(balances: list[IslandBalance]) -> IslandFlowResult:
        served_load, served_ev, injected = load.copy(), ev.copy(), gen.copy()
        for m, b in zip(members, balances, strict=True):
            served_load[:, m.loads] = b.served_kw[:, : len(m.loads)]
            served_ev[:, m.evs] = b.served_kw[:, len(m.loads) :]
            injected[:, m.gens] = b.gen_kw
        load_q = np.where(served_load != 0, base.load_q_kvar[rows], 0.0)  # a shed load draws no reactive power
        idle = np.zeros((len(rows), len(net.batteries)))
        return flow.run(Injections(served_load, load_q, injected, base.gen_q_kvar[rows], served_ev, idle))

    # Twice: the battery must also cover the island's losses, which the first power flow finds.
    balances = balance(solve(balance(np.zeros((len(rows), len(islands))))).losses_kw)
    solved = solve(balances)
    idle_all = np.zeros((twin.steps, len(net.batteries)))
    normal = PowerFlow(net, method=method).run(
        Injections(window.load_p_kw, base.load_q_kvar, window.gen_p_kw, base.gen_q_kvar, window.ev_p_kw, idle_all)
    )
    bus_pos = {b: i for i, b in enumerate(flow.engine.index.buses)}
    sites, traces = [], []
    for k, (site, former) in enumerate(chosen.items()):
        b, m = balances[k], members[k]
        pcc_bus = bus_pos[net.switches[net.sites[site].pcc or ""].bus]
        sync = limits or ieee1547_limits(m.der_kva)
        resync = _resync(solved, normal, k, pcc_bus, twin.steps, int(rows[-1]), dt_h, droop, sync)
        buses = np.array([bus_pos[x] for x in islands[k].buses], dtype=np.int64)
        soc0 = float(fleets[k].soc[0])
        sites.append(_site_figures(site, former, b, m, solved, k, buses, dt_h, soc0, resync))
        full = np.hstack([window.load_p_kw[:, m.loads], window.ev_p_kw[:, m.evs]])
        traces.append(_trace(site, times, off, full, b, m, solved, k, soc0, droop.f0_hz))
    return IslandingResult(scenario.name, outage, dt_h, tuple(sites), pd.concat(traces, ignore_index=True))


def _at_soc(battery: Battery, soc: float | None) -> Battery:
    """The battery starting the outage at ``soc`` (within its SOC window), or as the scenario has it."""
    if soc is None:
        return battery
    if not battery.soc_min <= soc <= battery.soc_max:
        raise ScenarioError(
            [
                Issue(
                    f"batteries[{battery.id}]",
                    "soc_init",
                    f"{soc:g} outside [{battery.soc_min:g}, {battery.soc_max:g}]",
                    "choose a SOC inside the battery's window",
                )
            ]
        )
    return battery.model_copy(update={"soc_init": soc})


def _resync(
    solved: IslandFlowResult,
    normal: PowerFlowResult,
    k: int,
    pcc_bus: int,
    steps: int,
    last_row: int,
    dt_h: float,
    droop: Droop,
    limits: SyncLimits,
) -> Resync | None:
    """Synchronise island k after its last islanded step; None when that step's power flow failed."""
    v_island, angle_island = solved.result.v_pu[-1, pcc_bus], solved.result.angle_deg[-1, pcc_bus]
    back = min(last_row + 1, steps - 1)
    v_grid, angle_grid = normal.v_pu[back, pcc_bus], normal.angle_deg[back, pcc_bus]
    if not np.isfinite([v_island, angle_island, v_grid, angle_grid]).all():
        return None
    # The island's phase drifted against the grid's by 360° per cycle of frequency difference.
    drift_deg = 360.0 * float(np.sum(solved.frequency_hz[:, k] - droop.f0_hz)) * dt_h * SECONDS_PER_HOUR
    island = SideState(float(v_island), float(solved.frequency_hz[-1, k]), wrap_deg(float(angle_island) + drift_deg))
    return synchronise(island, SideState(float(v_grid), droop.f0_hz, float(angle_grid)), limits)


def _site_figures(
    site: str,
    former: str,
    b: IslandBalance,
    m: _Members,
    solved: IslandFlowResult,
    k: int,
    island_buses: np.ndarray,
    dt_h: float,
    soc_start: float,
    resync: Resync | None,
) -> SiteIslanding:
    losses = solved.losses_kw[:, k]
    demand = b.served_kw + b.shed_kw
    v = solved.result.v_pu[:, island_buses]
    shed = {str(c): float(b.shed_kw[:, m.classes == c].sum() * dt_h) for c in sorted(set(m.classes.tolist()))}
    seconds = math.nan if resync is None else resync.seconds
    return SiteIslanding(
        site=site,
        former=former,
        hours_islanded=len(losses) * dt_h + (0.0 if resync is None else seconds / SECONDS_PER_HOUR),
        demand_kwh=float(demand.sum() * dt_h),
        served_kwh=float(b.served_kw.sum() * dt_h),
        critical_demand_kwh=float(demand[:, m.critical].sum() * dt_h),
        critical_served_kwh=float(b.served_kw[:, m.critical].sum() * dt_h),
        shed_kwh=shed,
        curtailed_kwh=float(b.curtailed_kw.sum() * dt_h),
        forced_curtailed_kwh=float(b.forced_kw.sum() * dt_h),
        losses_kwh=float(np.nansum(losses) * dt_h),
        soc_start=soc_start,
        soc_end=float(b.soc[-1]),
        f_min_hz=float(np.nanmin(solved.frequency_hz[:, k])),
        f_max_hz=float(np.nanmax(solved.frequency_hz[:, k])),
        v_min_pu=float(np.nanmin(v)),
        v_max_pu=float(np.nanmax(v)),
        balance_error_kw=float(np.nanmax(np.abs(b.residual_kw(losses)))),
        resync_seconds=seconds,
        resync={} if resync is None else asdict(resync) | {"allowed": resync.at_close.allowed},
    )


def _trace(
    site: str,
    times: pd.DatetimeIndex,
    off: np.ndarray,
    demand: FloatArray,
    b: IslandBalance,
    m: _Members,
    solved: IslandFlowResult,
    k: int,
    soc_start: float,
    f0_hz: float,
) -> pd.DataFrame:
    """Per-step trace over the whole period (outside the outage: supplied by the grid, battery idle)."""
    served = demand.copy()
    served[off] = b.served_kw
    soc = np.where(times < times[off][0], soc_start, b.soc[-1])
    soc[off] = b.soc
    battery, frequency, curtailed = np.zeros(len(times)), np.full(len(times), f0_hz), np.zeros(len(times))
    battery[off], frequency[off], curtailed[off] = b.battery_kw, solved.frequency_hz[:, k], b.curtailed_kw.sum(axis=1)
    return pd.DataFrame(
        {
            "time": times,
            "site": site,
            "islanded": off,
            "soc": soc,
            "battery_kw": battery,
            "frequency_hz": frequency,
            "demand_kw": demand.sum(axis=1),
            "served_kw": served.sum(axis=1),
            "critical_kw": demand[:, m.critical].sum(axis=1),
            "critical_served_kw": served[:, m.critical].sum(axis=1),
            "curtailed_kw": curtailed,
        }
    )


# --------------------------------------------------------------------------------------------- report


def write_islanding(result: IslandingResult, out: Path) -> tuple[Path, Path, Path]:
    """Write ``islanding.json``, ``islanding.parquet`` and ``islanding.html`` into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, parquet_path, html_path = out / "islanding.json", out / "islanding.parquet", out / "islanding.html"
    json_path.write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")
    result.traces.to_parquet(parquet_path, compression="zstd")
    with style.context(RC):
        plots = "".join(
            _figure(title, _plot(result.traces, column, ylabel))
            for title, column, ylabel in (
                ("State of charge of the grid-forming batteries", "soc", "SOC"),
                ("Island frequency (P-droop of the grid-forming unit)", "frequency_hz", "Hz"),
                ("Load served", "served_kw", "kW"),
                ("Critical load served", "critical_served_kw", "kW"),
            )
        )
    o = result.outage
    facts = [
        ("Outage", f"{o.start:%Y-%m-%d %H:%M} for {o.hours:g} h"),
        ("Cause", "loss of upstream supply" if o.cause is Cause.UPSTREAM else "planned PCC opening"),
        ("Microgrids", str(len(result.sites))),
    ]
    items = "".join(f"<div><dt>{escape(a)}</dt><dd>{escape(v)}</dd></div>" for a, v in facts)
    cards = "".join(
        f"<div class='card {'ok' if s.critical_share >= 1.0 - 1e-9 else 'bad'}'><div class='label'>{escape(s.site)}"
        f"</div><div class='value'>{pct(s.served_share)} served</div><div class='sub'>critical {_critical(s)}"
        f" · {s.hours_islanded:.2f} h islanded · SOC {s.soc_start:.2f} → {s.soc_end:.2f}</div></div>"
        for s in result.sites
    )
    body = (
        f"<header><p class='kicker'>gridmesh islanding study</p><h1>{escape(result.scenario)}</h1>"
        f"<dl class='facts'>{items}</dl></header><section class='cards'>{cards}</section>"
        f"<section><h2>Microgrids</h2><div class='grid'>{_table(result)}</div></section>"
        f"<section><h2>Plots</h2><div class='grid'>{plots}</div></section>"
    )
    html_path.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>gridmesh islanding · "
        f"{escape(result.scenario)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>",
        encoding="utf-8",
    )
    return json_path, parquet_path, html_path


def _critical(site: SiteIslanding) -> str:
    return pct(site.critical_share) if site.critical_demand_kwh > 0 else "none in this microgrid"


def _table(result: IslandingResult) -> str:
    headers = [
        "Site",
        "Hours islanded",
        "Demand",
        "Served",
        "Critical served",
        "Shed",
        "Curtailed",
        "f min–max",
        "Resync",
    ]
    rows = [
        [
            s.site,
            f"{s.hours_islanded:.2f}",
            kwh(s.demand_kwh),
            f"{kwh(s.served_kwh)} ({pct(s.served_share)})",
            f"{kwh(s.critical_served_kwh)} ({_critical(s)})",
            ", ".join(f"{c} {kwh(v)}" for c, v in s.shed_kwh.items() if v > 0) or "none",
            kwh(s.curtailed_kwh),
            f"{s.f_min_hz:.2f}–{s.f_max_hz:.2f} Hz",
            DASH if math.isnan(s.resync_seconds) else f"{s.resync_seconds:.1f} s",
        ]
        for s in result.sites
    ]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        "<figure class='fig wide'><figcaption>Over the outage</figcaption><div class='scroll'><table>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></figure>"
    )


def _plot(traces: pd.DataFrame, column: str, ylabel: str) -> Figure:
    fig = Figure(figsize=WIDE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for site, rows in traces.groupby("site", sort=False):
        ax.plot(rows["time"], rows[column], label=str(site), drawstyle="steps-post")
    islanded = traces.loc[traces["islanded"], "time"]
    if len(islanded):
        ax.axvspan(islanded.min(), islanded.max(), color="#fde68a", alpha=0.35, label="islanded")
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    return fig


def _figure(title: str, fig: Figure) -> str:
    image = f"<img alt='{escape(title)}' src='{png(fig)}'>"
    return f"<figure class='fig wide'><figcaption>{escape(title)}</figcaption>{image}</figure>"
