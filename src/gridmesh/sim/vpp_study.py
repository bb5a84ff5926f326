"""A VPP study: the envelope of a level-3 site for a day, an award, its disaggregation, and the twin's
full power flow to say what was really delivered.

The VPP's flexibility is measured against the baseline of the study twin (its own batteries idle, nothing
curtailed, the rest of the grid as the profiles say, other batteries idle). Delivered power is the change of
the VPP's net export from that baseline, read from the power flow: through each member microgrid's PCC
(so microgrid losses count) plus the injection of the VPP's own assets outside its member microgrids
(members that are groups are followed down to their microgrids).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridmesh.model.kinds import SiteLevel
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import member_positions
from gridmesh.optim.vpp import FloatArray, IntArray, VppFleet, network_rows
from gridmesh.optim.vpp_disaggregate import Allocation, disaggregate
from gridmesh.optim.vpp_envelope import Envelope, vpp_envelope
from gridmesh.physics.powerflow import Injections, PowerFlowResult
from gridmesh.physics.sensitivity import Sensitivity, voltage_sensitivity
from gridmesh.sim.report import CSS
from gridmesh.sim.report_data import kw, kwh, pct
from gridmesh.sim.report_plots import DPI, RC, WIDE, png
from gridmesh.sim.site_flows import pcc_reading
from gridmesh.sim.twin import StudyTwin


@dataclass(frozen=True)
class VppCase:
    """One VPP over one day: its fleet for the optimiser and what the twin needs to check delivery."""

    site: str
    twin: StudyTwin
    fleet: VppFleet
    asset_site: dict[str, str]  # asset id → the site that owns it (a member microgrid or the VPP itself)
    battery_pos: IntArray  # positions in the twin's fleet
    gen_pos: IntArray  # positions in the network's generator table
    baseline: PowerFlowResult
    monitored_buses: IntArray  # positions in the power-flow model
    monitored_lines: IntArray

    @property
    def times(self) -> pd.DatetimeIndex:
        return self.twin.times

    def owner(self, asset: str) -> str:
        return self.twin.scenario.network.sites[self.asset_site[asset]].owner


@dataclass(frozen=True)
class Delivery:
    """Award against delivery per interval (kW) and the totals; network checked by the full power flow."""

    allocation: Allocation
    delivered_kw: FloatArray
    battery_kw: FloatArray  # (T, B) as the battery model applied it
    soc: FloatArray  # (T, B)
    summary: dict[str, float]


def vpp_sites(network: Network) -> list[str]:
    """Ids of the level-3 sites (VPPs), in scenario order."""
    return [s.id for s in network.sites.values() if s.level is SiteLevel.VPP]


def microgrids_of(network: Network, site: str) -> list[str]:
    """The microgrids (level 1) a site aggregates, through groups and nested VPPs, each once."""
    found: list[str] = []
    for member in network.sites[site].members:
        if member not in network.sites:
            continue
        more = [member] if network.sites[member].level is SiteLevel.MICROGRID else microgrids_of(network, member)
        found += [m for m in more if m not in found]
    return found


def vpp_case(
    scenario: Scenario,
    *,
    site: str | None = None,
    day: datetime | None = None,
    degradation_eur_per_kwh: float = 0.02,
    curtailment_eur_per_kwh: float = 0.08,
    max_loading: float = 0.9,
) -> VppCase:
    """The VPP ``site`` (default: the first level-3 site) for the day starting at ``day`` (default: the
    scenario's start). Lines are held to ``max_loading`` of their rating (active power only: a margin for
    reactive flow). Raises ``ValueError`` naming the site when it is not a VPP or has no flexible asset."""
    net = scenario.network
    sites = vpp_sites(net)
    site = site or (sites[0] if sites else "")
    if site not in sites:
        raise ValueError(f"sites[{site or '?'}]: not a level-3 site (VPP); VPPs here: {', '.join(sites) or 'none'}")
    twin = StudyTwin(scenario.with_time(start=day, days=1))
    members = twin.sites[site]
    index = twin.engine.index
    battery_pos = member_positions(twin.fleet.ids, members.elements["batteries"])
    gen_pos = member_positions(index.generators, members.elements["generators"])
    gen_pos = gen_pos[[net.generators[index.generators[g]].curtailable for g in gen_pos]]
    if not battery_pos.size and not gen_pos.size:
        raise ValueError(f"sites[{site}]: the VPP has no battery and no curtailable generator to offer")
    window, base = twin.window(0, twin.steps)
    injections = Injections(
        window.load_p_kw,
        base.load_q_kvar,
        window.gen_p_kw,
        base.gen_q_kvar,
        window.ev_p_kw,
        np.zeros((twin.steps, len(twin.fleet))),
    )
    baseline = twin.engine.run(injections).raise_on_failure()
    owned = {**{b: site for b in members.elements["batteries"]}, **{g: site for g in members.elements["generators"]}}
    for member in microgrids_of(net, site):
        for table in ("batteries", "generators"):
            owned.update({x: member for x in twin.sites[member].elements[table]})
    bus_set = set(members.buses) | {net.generators[index.generators[g]].bus for g in gen_pos}
    bus_set |= {net.batteries[twin.fleet.ids[b]].bus for b in battery_pos}
    buses = np.array(sorted(i for i, b in enumerate(index.buses) if b in bus_set), dtype=np.int64)
    lines = np.array(
        [i for i, x in enumerate(index.lines) if {net.lines[x].from_bus, net.lines[x].to_bus} <= bus_set],
        dtype=np.int64,
    )
    sens = voltage_sensitivity(
        twin.engine,
        net,
        injections,
        buses=buses.tolist(),
        lines=lines.tolist(),
        batteries=battery_pos.tolist(),
        generators=gen_pos.tolist(),
        max_loading=max_loading,
    )
    fleet = twin.fleet
    vpp_fleet = VppFleet(
        dt_h=twin.dt_h,
        battery_ids=tuple(fleet.ids[b] for b in battery_pos),
        e_kwh=fleet.e_kwh[battery_pos],
        p_max_kw=fleet.p_kw[battery_pos],
        eta_charge=fleet.eta_charge[battery_pos],
        eta_discharge=fleet.eta_discharge[battery_pos],
        soc_min=fleet.soc_min[battery_pos],
        soc_max=fleet.soc_max[battery_pos],
        soc0=fleet.soc[battery_pos],
        degradation_eur_per_kwh=np.full(battery_pos.size, degradation_eur_per_kwh),
        generator_ids=tuple(index.generators[g] for g in gen_pos),
        gen_available_kw=window.gen_p_kw[:, gen_pos],
        curtailment_eur_per_kwh=curtailment_eur_per_kwh,
        sensitivity=_with_pccs(sens, twin, site, baseline, battery_pos, gen_pos),
    )
    return VppCase(site, twin, vpp_fleet, owned, battery_pos, gen_pos, baseline, buses, lines)


def _with_pccs(
    sens: Sensitivity, twin: StudyTwin, site: str, baseline: PowerFlowResult, battery_pos: IntArray, gen_pos: IntArray
) -> Sensitivity:
    """Add each member microgrid's PCC import (within ± its rating) to the limits: one kW injected inside
    lowers the import by one kW (losses inside neglected)."""
    net, index = twin.scenario.network, twin.engine.index
    rows, bases, ratings, names = [], [], [], []
    for member in microgrids_of(net, site):
        if member not in twin.pcc_limits_kw:
            continue
        m = twin.sites[member]
        pcc = pcc_reading(net, index, net.sites[member].pcc or "", m.buses)
        bases.append(pcc.sign * getattr(baseline, pcc.array)[:, pcc.column])
        inside = [twin.fleet.ids[b] in m.elements["batteries"] for b in battery_pos]
        inside += [index.generators[g] in m.elements["generators"] for g in gen_pos]
        rows.append(-np.array(inside, dtype=np.float64))
        ratings.append(twin.pcc_limits_kw[member])
        names.append(f"pcc {member}")
    if not rows:
        return sens
    return Sensitivity(
        base=np.hstack([sens.base, np.column_stack(bases)]),
        d_dp=np.vstack([sens.d_dp, np.array(rows)]),
        lower=np.concatenate([sens.lower, -np.array(ratings)]),
        upper=np.concatenate([sens.upper, np.array(ratings)]),
        names=sens.names + tuple(names),
    )


def deliver(case: VppCase, allocation: Allocation) -> Delivery:
    """Run the twin with the allocation (battery model, then one batch power flow) and measure delivery."""
    twin, dt = case.twin, case.twin.dt_h
    window, base = twin.window(0, twin.steps)
    requests = np.zeros((twin.steps, len(twin.fleet)))
    requests[:, case.battery_pos] = np.nan_to_num(allocation.battery_kw)
    applied, soc = copy.deepcopy(twin.fleet).run(requests, dt)  # the device clamps what it cannot do
    gen = window.gen_p_kw.copy()
    gen[:, case.gen_pos] -= np.nan_to_num(allocation.curtail_kw)
    result = twin.engine.run(
        Injections(window.load_p_kw, base.load_q_kvar, gen, base.gen_q_kvar, window.ev_p_kw, applied)
    )
    delivered = _export(case, result, gen, applied) - _export(case, case.baseline, window.gen_p_kw, 0 * applied)
    award, target = allocation.fit.award_kw, allocation.fit.target_kw
    awarded_kwh = float(np.abs(award).sum() * dt)
    in_direction = float(np.clip(np.sign(award) * delivered, 0.0, np.abs(award)).sum() * dt)
    summary = {
        "awarded_kwh": awarded_kwh,
        "award_net_kwh": float(award.sum() * dt),
        "target_net_kwh": float(target.sum() * dt),
        "delivered_net_kwh": float(delivered.sum() * dt),
        "clipped_kwh": float(np.abs(allocation.fit.shortfall_kw).sum() * dt),
        "clipped_intervals": int(sum(bool(r) for r in allocation.fit.reasons)),
        "mae_vs_award_kw": float(np.abs(delivered - award).mean()),
        "mae_vs_target_kw": float(np.abs(delivered - target).mean()),
        "delivered_share": in_direction / awarded_kwh if awarded_kwh > 0 else 1.0,
        "cost_eur": allocation.cost_eur,
        **_network_check(case, result),
    }
    pos = case.battery_pos
    return Delivery(allocation, delivered, applied[:, pos], soc[:, pos], summary)


def _export(case: VppCase, result: PowerFlowResult, gen: FloatArray, battery: FloatArray) -> FloatArray:
    """The VPP's net export, kW: out through each member microgrid's PCC, plus its own assets outside them."""
    net, index, twin = case.twin.scenario.network, case.twin.engine.index, case.twin
    total = np.zeros(result.steps)
    for member in microgrids_of(net, case.site):
        pcc = pcc_reading(net, index, net.sites[member].pcc or "", twin.sites[member].buses)
        total -= pcc.sign * getattr(result, pcc.array)[:, pcc.column]
    own = [a for a, s in case.asset_site.items() if s == case.site]
    total += gen[:, member_positions(index.generators, frozenset(own))].sum(axis=1)
    total += battery[:, member_positions(twin.fleet.ids, frozenset(own))].sum(axis=1)
    return total


def _network_check(case: VppCase, result: PowerFlowResult) -> dict[str, float]:
    """Limits broken by the dispatch in the full power flow (beyond what the baseline already broke)."""
    net, index, base = case.twin.scenario.network, case.twin.engine.index, case.baseline
    buses = case.monitored_buses
    v, v0 = result.v_pu[:, buses], base.v_pu[:, buses]
    v_min = np.array([net.buses[index.buses[b]].v_min_pu for b in buses])
    v_max = np.array([net.buses[index.buses[b]].v_max_pu for b in buses])
    low, high = np.minimum(v_min, v0) - 1e-4, np.maximum(v_max, v0) + 1e-4
    loading, loading0 = result.line_loading[:, case.monitored_lines], base.line_loading[:, case.monitored_lines]
    return {
        "v_min_pu": float(np.nanmin(v)),
        "v_max_pu": float(np.nanmax(v)),
        "new_voltage_violations": int(((v < low) | (v > high)).sum()),
        "max_line_loading": float(np.nanmax(loading, initial=0.0)),
        "new_overloads": int((loading > np.maximum(1.0, loading0) + 1e-4).sum()),
    }


def run_vpp_study(case: VppCase, award_kw: FloatArray, *, out: Path) -> tuple[Envelope, Delivery]:
    """Envelope, disaggregation and delivery of ``award_kw``; writes ``envelope.json``, ``delivery.csv``,
    ``allocation.csv``, ``summary.json`` and ``report.html`` into ``out``."""
    envelope = vpp_envelope(case.fleet)
    delivery = deliver(case, disaggregate(case.fleet, award_kw, envelope=envelope))
    out.mkdir(parents=True, exist_ok=True)
    (out / "envelope.json").write_text(json.dumps(envelope_document(case, envelope), indent=1))
    (out / "summary.json").write_text(json.dumps({"site": case.site, **delivery.summary}, indent=1))
    frame = delivery_frame(case, envelope, delivery)
    frame.to_csv(out / "delivery.csv", index=False)
    allocation = allocation_frame(case, delivery)
    allocation.to_csv(out / "allocation.csv", index=False)
    (out / "report.html").write_text(_report(case, envelope, delivery, frame, allocation), encoding="utf-8")
    return envelope, delivery


def envelope_document(case: VppCase, envelope: Envelope) -> dict[str, Any]:
    """The envelope as JSON: per-interval bounds, the virtual storage, the cost curve, assets and limits."""
    times = [t.isoformat() for t in case.times]
    rows = network_rows(case.fleet)
    return {
        "site": case.site,
        "owner": case.twin.scenario.network.sites[case.site].owner,
        "dt_h": envelope.dt_h,
        "intervals": {
            "time": times,
            "up_kw": _list(envelope.up_kw),
            "down_kw": _list(envelope.down_kw),
            "discharge_kw": _list(envelope.discharge_kw),
            "charge_kw": _list(envelope.charge_kw),
            "curtail_kw": _list(envelope.curtail_kw),
            "energy_up_kwh": _list(envelope.energy_up_kwh()),
            "energy_down_kwh": _list(envelope.energy_down_kwh()),
            "limited_by": list(envelope.limited_by),
        },
        "storage": {
            "power_kw": envelope.storage_kw,
            "stored_kwh": envelope.stored_kwh,
            "energy_below_kwh": envelope.energy_below_kwh,
            "energy_above_kwh": envelope.energy_above_kwh,
            "eta_charge": list(envelope.eta_charge),
            "eta_discharge": list(envelope.eta_discharge),
        },
        "cost_curve": [
            {"direction": s.direction.value, "resource": s.resource, "eur_per_kwh": s.eur_per_kwh, "kw": _list(s.kw)}
            for s in envelope.costs
        ],
        "assets": [
            {"id": a, "kind": kind, "site": case.asset_site[a], "owner": case.owner(a)}
            for kind, ids in (("battery", case.fleet.battery_ids), ("generator", case.fleet.generator_ids))
            for a in ids
        ],
        "network": {"limits_that_can_bind": list(rows.names)},
    }


def _list(values: FloatArray) -> list[float]:
    return [round(float(v), 4) for v in values]


def delivery_frame(case: VppCase, envelope: Envelope, delivery: Delivery) -> pd.DataFrame:
    fit = delivery.allocation.fit
    return pd.DataFrame(
        {
            "time": case.times,
            "up_kw": envelope.up_kw,
            "down_kw": envelope.down_kw,
            "award_kw": fit.award_kw,
            "target_kw": fit.target_kw,
            "shortfall_kw": fit.shortfall_kw,
            "reason": list(fit.reasons),
            "delivered_kw": delivery.delivered_kw,
            "error_kw": delivery.delivered_kw - fit.award_kw,
        }
    )


def allocation_frame(case: VppCase, delivery: Delivery) -> pd.DataFrame:
    """Long table per interval and site: battery power and curtailment allocated to each owner's site."""
    alloc = delivery.allocation
    parts = [
        pd.DataFrame({"time": case.times, "asset": a, "kind": "battery", "kw": alloc.battery_kw[:, k]})
        for k, a in enumerate(case.fleet.battery_ids)
    ] + [
        pd.DataFrame({"time": case.times, "asset": a, "kind": "curtailment", "kw": -alloc.curtail_kw[:, k]})
        for k, a in enumerate(case.fleet.generator_ids)
    ]
    long = pd.concat(parts, ignore_index=True)
    long["site"] = long["asset"].map(case.asset_site)
    long["owner"] = long["asset"].map(case.owner)
    return long.groupby(["time", "site", "owner", "kind"], as_index=False).agg(kw=("kw", "sum"))


# ----------------------------------------------------------------------------------------------- report


def _report(
    case: VppCase, envelope: Envelope, delivery: Delivery, frame: pd.DataFrame, allocation: pd.DataFrame
) -> str:
    s = delivery.summary
    with style.context(RC):
        figures = [_award_figure(frame), _site_figure(allocation), _soc_figure(case, delivery)]
    cards = [
        ("Awarded energy", kwh(s["awarded_kwh"])),
        ("Delivered (in the awarded direction)", pct(s["delivered_share"])),
        ("Mean abs. error vs award", kw(s["mae_vs_award_kw"])),
        ("Mean abs. error vs deliverable target", kw(s["mae_vs_target_kw"])),
        ("Clipped to the envelope", f"{kwh(s['clipped_kwh'])} in {s['clipped_intervals']:.0f} intervals"),
        ("Cost of the dispatch", f"{s['cost_eur']:,.2f} €"),
        ("Voltage range (VPP area)", f"{s['v_min_pu']:.3f} … {s['v_max_pu']:.3f} pu"),
        ("New violations (voltage / overload)", f"{s['new_voltage_violations']:.0f} / {s['new_overloads']:.0f}"),
        ("Up capability (max)", kw(envelope.up_kw.max())),
        ("Down capability (max)", kw(envelope.down_kw.max())),
        ("Storage energy window", f"−{kwh(envelope.energy_below_kwh)} / +{kwh(envelope.energy_above_kwh)}"),
    ]
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in cards)
    images = "".join(
        f"<figure class='fig wide'><figcaption>{escape(t)}</figcaption><img alt='{escape(t)}' src='{png(f)}'></figure>"
        for t, f in figures
    )
    title = escape(f"gridmesh VPP · {case.site} · {case.times[0]:%Y-%m-%d}")
    table = f"<figure class='fig wide'><figcaption>Delivery</figcaption><table><tbody>{rows}</tbody></table></figure>"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style>"
        f"</head><body><main><h1>{title}</h1><section><div class='grid'>{table}{images}</div></section>"
        "</main></body></html>"
    )


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=WIDE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.margins(x=0)
    return fig, ax


def _award_figure(frame: pd.DataFrame) -> tuple[str, Figure]:
    fig, ax = _figure()
    t = frame["time"]
    ax.fill_between(t, -frame["down_kw"], frame["up_kw"], step="post", color="#c7d2fe", alpha=0.6, label="envelope")
    ax.step(t, frame["award_kw"], where="post", color="#64748b", lw=1.2, label="award")
    ax.step(t, frame["target_kw"], where="post", color="#1e40af", lw=1.2, ls="--", label="deliverable target")
    ax.step(t, frame["delivered_kw"], where="post", color="#dc2626", lw=1.0, label="delivered (power flow)")
    ax.set_ylabel("kW (up > 0)")
    ax.legend(ncols=4, loc="upper left")
    return "Envelope, award and delivery", fig


def _site_figure(allocation: pd.DataFrame) -> tuple[str, Figure]:
    fig, ax = _figure()
    wide = allocation.assign(label=allocation["site"] + " · " + allocation["kind"]).pivot_table(
        index="time", columns="label", values="kw", aggfunc="sum"
    )
    for column in wide.columns:
        ax.step(wide.index, wide[column], where="post", lw=1.2, label=column)
    ax.set_ylabel("kW (up > 0)")
    ax.legend(ncols=3, loc="upper left")
    return "Disaggregation per site (owner's assets)", fig


def _soc_figure(case: VppCase, delivery: Delivery) -> tuple[str, Figure]:
    fig, ax = _figure()
    for k, battery in enumerate(case.fleet.battery_ids):
        ax.plot(case.times, delivery.soc[:, k] * 100, lw=1.2, label=battery)
    ax.set_ylabel("SOC, %")
    ax.legend(ncols=4, loc="upper left")
    return "State of charge (battery model in the twin)", fig
