"""Convert between pandapower networks and gridmesh networks (both directions).

Ids: an element keeps its pandapower ``name`` where the name is present and unique within its table,
else it becomes ``<table>-<index>`` (``bus-17``). gridmesh-only fields (load class, generator kind, …)
travel in extra pandapower columns so that export → import is lossless.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.elements import (
    Battery,
    Bus,
    Element,
    ExternalGrid,
    Generator,
    Line,
    Load,
    Switch,
    Transformer,
)
from gridmesh.model.kinds import GeneratorKind, LoadClass, SwitchedElement, SwitchKind, TapSide
from gridmesh.model.network import Network
from gridmesh.units import KW_PER_MW

UNSUPPORTED = ("gen", "trafo3w", "shunt", "impedance", "ward", "xward", "dcline", "asymmetric_load", "asymmetric_sgen")
_SWITCH_KIND = {
    "CB": SwitchKind.BREAKER,
    "LBS": SwitchKind.LOAD_BREAK,
    "LS": SwitchKind.DISCONNECTOR,
    "DS": SwitchKind.DISCONNECTOR,
}
_SWITCH_TYPE = {
    SwitchKind.BREAKER: "CB",
    SwitchKind.RECLOSER: "CB",
    SwitchKind.LOAD_BREAK: "LBS",
    SwitchKind.SECTIONALISER: "LBS",
    SwitchKind.TIE: "LBS",
    SwitchKind.DISCONNECTOR: "DS",
    SwitchKind.FUSE: "LS",
}
_ET = {"b": SwitchedElement.BUS, "l": SwitchedElement.LINE, "t": SwitchedElement.TRANSFORMER}
_ET_TABLE = {SwitchedElement.BUS: "bus", SwitchedElement.LINE: "line", SwitchedElement.TRANSFORMER: "trafo"}


def element_ids(frame: pd.DataFrame, table: str) -> dict[int, str]:
    """pandapower index → gridmesh id, by the naming rule in the module docstring."""
    names = frame["name"] if "name" in frame else pd.Series(None, index=frame.index, dtype=object)
    valid = names.notna() & (names.astype(str).str.strip() != "")
    counts = names[valid].astype(str).value_counts()
    ids: dict[int, str] = {}
    for index, name, ok in zip(frame.index, names, valid, strict=True):
        ids[int(index)] = str(name) if ok and counts[str(name)] == 1 else f"{table}-{index}"
    if len(set(ids.values())) != len(ids):  # a name that looks like another row's fallback id
        ids = {int(index): f"{table}-{index}" for index in frame.index}
    return ids


def _value(row: dict[str, Any], key: str, default: Any = None) -> Any:
    value = row.get(key, default)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return default
    return value


def _coords(row: dict[str, Any]) -> tuple[float | None, float | None]:
    geo = _value(row, "geo")
    if isinstance(geo, str):
        point = json.loads(geo).get("coordinates", [None, None])
        return float(point[0]), float(point[1])
    return None, None


def _load_class(row: dict[str, Any]) -> LoadClass:
    explicit = _value(row, "load_class")
    if explicit:
        return LoadClass(explicit)
    profile = str(_value(row, "profile", "")).upper()
    # SimBench/BDEW standard load profiles: H0 households, G0–G6 trade, L0–L2 farms.
    return {"H": LoadClass.RESIDENTIAL, "G": LoadClass.COMMERCIAL, "L": LoadClass.AGRICULTURAL}.get(
        profile[:1], LoadClass.RESIDENTIAL
    )


def _generator_kind(row: dict[str, Any]) -> GeneratorKind:
    explicit = _value(row, "kind")
    if explicit:
        return GeneratorKind(explicit)
    text = f"{_value(row, 'type', '')} {_value(row, 'profile', '')}".lower()
    for needles, kind in (
        (("pv", "solar", "lv_res"), GeneratorKind.PV),
        (("wind", "wp"), GeneratorKind.WIND),
        (("bio", "bm"), GeneratorKind.BIOMASS),
        (("hydro",), GeneratorKind.MICRO_HYDRO),
    ):
        if any(n in text for n in needles):
            return kind
    return GeneratorKind.CHP


def _records(net: pp.pandapowerNet, table: str) -> Iterator[tuple[int, dict[str, Any]]]:
    frame = net[table]
    for index, row in zip(frame.index, frame.to_dict("records"), strict=True):
        yield int(index), row


def from_pandapower(net: pp.pandapowerNet, *, name: str | None = None) -> Network:
    """Import a pandapower network; unsupported element tables in service raise :class:`ScenarioError`."""
    issues = [
        Issue(
            table,
            "-",
            f"{int(net[table].in_service.sum())} in-service element(s) of an unsupported kind",
            "remove them or replace them by loads/static generators before importing",
        )
        for table in UNSUPPORTED
        if table in net and len(net[table]) and bool(net[table].get("in_service", pd.Series([True])).any())
    ]
    if issues:
        raise ScenarioError(issues)
    ids = {t: element_ids(net[t], t) for t in ("bus", "line", "trafo", "switch", "ext_grid", "load", "sgen", "storage")}
    bus_id = ids["bus"]
    elements: list[Element] = []
    for i, r in _records(net, "bus"):
        x, y = _coords(r)
        elements.append(
            Bus(
                id=bus_id[i],
                vn_kv=r["vn_kv"],
                x=x,
                y=y,
                zone=_value(r, "subnet") or _value(r, "zone"),
                in_service=bool(r["in_service"]),
                v_min_pu=_value(r, "min_vm_pu", 0.9),
                v_max_pu=_value(r, "max_vm_pu", 1.1),
            )
        )
    for i, r in _records(net, "line"):
        elements.append(
            Line(
                id=ids["line"][i],
                from_bus=bus_id[int(r["from_bus"])],
                to_bus=bus_id[int(r["to_bus"])],
                length_km=r["length_km"],
                r_ohm_per_km=r["r_ohm_per_km"],
                x_ohm_per_km=r["x_ohm_per_km"],
                c_nf_per_km=_value(r, "c_nf_per_km", 0.0),
                g_us_per_km=_value(r, "g_us_per_km", 0.0),
                max_i_a=r["max_i_ka"] * 1000.0 * _value(r, "df", 1.0),
                r0_ohm_per_km=_value(r, "r0_ohm_per_km"),
                x0_ohm_per_km=_value(r, "x0_ohm_per_km"),
                c0_nf_per_km=_value(r, "c0_nf_per_km"),
                parallel=int(_value(r, "parallel", 1)),
                in_service=bool(r["in_service"]),
            )
        )
    for i, r in _records(net, "trafo"):
        if _value(r, "tap_step_degree", 0.0):
            raise ScenarioError(
                [
                    Issue(
                        f"trafo[{ids['trafo'][i]}]",
                        "tap_step_degree",
                        "phase-shifting taps are not supported",
                        "set tap_step_degree to 0",
                    )
                ]
            )
        elements.append(
            Transformer(
                id=ids["trafo"][i],
                hv_bus=bus_id[int(r["hv_bus"])],
                lv_bus=bus_id[int(r["lv_bus"])],
                sn_kva=r["sn_mva"] * KW_PER_MW,
                vn_hv_kv=r["vn_hv_kv"],
                vn_lv_kv=r["vn_lv_kv"],
                vk_percent=r["vk_percent"],
                vkr_percent=r["vkr_percent"],
                pfe_kw=_value(r, "pfe_kw", 0.0),
                i0_percent=_value(r, "i0_percent", 0.0),
                shift_degree=_value(r, "shift_degree", 0.0),
                tap_side=TapSide(_value(r, "tap_side", "hv")),
                # Without a tap changer type pandapower ignores tap_pos: the winding sits at neutral.
                tap_pos=int(_value(r, "tap_pos" if _value(r, "tap_changer_type") else "tap_neutral", 0)),
                tap_neutral=int(_value(r, "tap_neutral", 0)),
                tap_min=int(_value(r, "tap_min", 0)),
                tap_max=int(_value(r, "tap_max", 0)),
                tap_step_percent=_value(r, "tap_step_percent", 0.0),
                parallel=int(_value(r, "parallel", 1)),
                in_service=bool(r["in_service"]),
            )
        )
    for i, r in _records(net, "switch"):
        et = _ET[str(r["et"])]
        kind_name = _value(r, "kind")
        kind = (
            SwitchKind(kind_name)
            if kind_name
            else _SWITCH_KIND.get(str(_value(r, "type", "")), SwitchKind.DISCONNECTOR)
        )
        normally_closed = bool(_value(r, "normally_closed", r["closed"]))
        if kind is SwitchKind.LOAD_BREAK and not normally_closed:
            kind = SwitchKind.TIE  # a normally-open load-break switch between feeders is a tie
        elements.append(
            Switch(
                id=ids["switch"][i],
                bus=bus_id[int(r["bus"])],
                element=ids[_ET_TABLE[et]][int(r["element"])],
                element_type=et,
                kind=kind,
                normally_closed=normally_closed,
                closed=None if bool(r["closed"]) == normally_closed else bool(r["closed"]),
                remote=bool(_value(r, "remote", kind in (SwitchKind.BREAKER, SwitchKind.RECLOSER))),
                in_service=bool(_value(r, "in_service", True)),
            )
        )
    for i, r in _records(net, "ext_grid"):
        elements.append(
            ExternalGrid(
                id=ids["ext_grid"][i],
                bus=bus_id[int(r["bus"])],
                vm_pu=r["vm_pu"],
                va_degree=_value(r, "va_degree", 0.0),
                sk_mva=_value(r, "s_sc_max_mva", 1e9),
                rx_ratio=_value(r, "rx_max", 0.1),
                in_service=bool(r["in_service"]),
            )
        )
    for i, r in _records(net, "load"):
        scaling = _value(r, "scaling", 1.0)
        profile = _value(r, "profile")
        elements.append(
            Load(
                id=ids["load"][i],
                bus=bus_id[int(r["bus"])],
                p_kw=r["p_mw"] * KW_PER_MW * scaling,
                q_kvar=r["q_mvar"] * KW_PER_MW * scaling,
                load_class=_load_class(r),
                customers=int(_value(r, "customers", 1)),
                critical=bool(_value(r, "critical", False)),
                flexible_share=float(_value(r, "flexible_share", 0.0)),
                max_delay_h=float(_value(r, "max_delay_h", 4.0)),
                p_profile=_value(r, "p_profile", f"{profile}_pload" if profile else None),
                q_profile=_value(r, "q_profile", f"{profile}_qload" if profile else None),
                in_service=bool(r["in_service"]),
            )
        )
    for i, r in _records(net, "sgen"):
        scaling = _value(r, "scaling", 1.0)
        elements.append(
            Generator(
                id=ids["sgen"][i],
                bus=bus_id[int(r["bus"])],
                kind=_generator_kind(r),
                p_kw=max(r["p_mw"], 0.0) * KW_PER_MW * scaling,
                q_kvar=_value(r, "q_mvar", 0.0) * KW_PER_MW * scaling,
                sn_kva=(_value(r, "sn_mva") or 0) * KW_PER_MW or None,
                profile=_value(r, "profile"),
                curtailable=bool(_value(r, "curtailable", True)),
                in_service=bool(r["in_service"]),
            )
        )
    for i, r in _records(net, "storage"):
        e_kwh = r["max_e_mwh"] * KW_PER_MW
        p_kw = (
            max(abs(_value(r, "max_p_mw", 0.0)), abs(_value(r, "min_p_mw", 0.0)), _value(r, "sn_mva", 0.0)) * KW_PER_MW
        )
        soc = _value(r, "soc_percent", 50.0) / 100.0
        elements.append(
            Battery(
                id=ids["storage"][i],
                bus=bus_id[int(r["bus"])],
                e_kwh=e_kwh,
                p_kw=p_kw or e_kwh / 2,
                soc_min=min(0.1, soc),
                soc_max=max(0.9, soc),
                soc_init=soc,
                in_service=bool(r["in_service"]),
            )
        )
    return Network.from_elements(elements, name=name or str(net.name or "network"))


def _column(elements: list[Any], attr: str) -> list[Any]:
    return [getattr(e, attr) for e in elements]


def to_pandapower(network: Network) -> pp.pandapowerNet:
    """Export to pandapower; EV chargers become loads and batteries become storage (load convention).

    Uses pandapower's bulk ``create_*s`` functions: one call per table, not one per element (a 22,000-element
    grid exports in about a second instead of most of a minute).
    """
    net = pp.create_empty_network(name=network.name)
    buses = list(network.buses.values())
    bus_index = dict(zip(_column(buses, "id"), range(len(buses)), strict=True))
    if buses:
        pp.create_buses(
            net,
            len(buses),
            _column(buses, "vn_kv"),
            index=list(range(len(buses))),
            name=_column(buses, "id"),
            in_service=_column(buses, "in_service"),
            zone=_column(buses, "zone"),
            min_vm_pu=_column(buses, "v_min_pu"),
            max_vm_pu=_column(buses, "v_max_pu"),
        )
        # Coordinates as pandapower 3 stores them (GeoJSON points); buses without coordinates stay empty.
        net.bus["geo"] = [
            json.dumps({"type": "Point", "coordinates": [b.x, b.y]}) if b.x is not None and b.y is not None else None
            for b in buses
        ]
    lines = list(network.lines.values())
    line_index = {line.id: k for k, line in enumerate(lines)}
    if lines:
        pp.create_lines_from_parameters(
            net,
            [bus_index[x.from_bus] for x in lines],
            [bus_index[x.to_bus] for x in lines],
            _column(lines, "length_km"),
            _column(lines, "r_ohm_per_km"),
            _column(lines, "x_ohm_per_km"),
            _column(lines, "c_nf_per_km"),
            [x.max_i_a / 1000.0 for x in lines],
            name=_column(lines, "id"),
            index=list(range(len(lines))),
            g_us_per_km=_column(lines, "g_us_per_km"),
            parallel=_column(lines, "parallel"),
            in_service=_column(lines, "in_service"),
            **{
                column: [np.nan if v is None else v for v in _column(lines, column)]
                for column in ("r0_ohm_per_km", "x0_ohm_per_km", "c0_nf_per_km")
            },
        )
    trafos = list(network.transformers.values())
    trafo_index = {t.id: k for k, t in enumerate(trafos)}
    if trafos:
        pp.create_transformers_from_parameters(
            net,
            [bus_index[t.hv_bus] for t in trafos],
            [bus_index[t.lv_bus] for t in trafos],
            [t.sn_kva / KW_PER_MW for t in trafos],
            _column(trafos, "vn_hv_kv"),
            _column(trafos, "vn_lv_kv"),
            _column(trafos, "vkr_percent"),
            _column(trafos, "vk_percent"),
            _column(trafos, "pfe_kw"),
            _column(trafos, "i0_percent"),
            shift_degree=_column(trafos, "shift_degree"),
            tap_side=[t.tap_side.value for t in trafos],
            tap_neutral=_column(trafos, "tap_neutral"),
            tap_max=_column(trafos, "tap_max"),
            tap_min=_column(trafos, "tap_min"),
            tap_step_percent=_column(trafos, "tap_step_percent"),
            tap_pos=_column(trafos, "tap_pos"),
            tap_changer_type="Ratio",  # without it pandapower ignores tap_pos
            parallel=_column(trafos, "parallel"),
            name=_column(trafos, "id"),
            in_service=_column(trafos, "in_service"),
            index=list(range(len(trafos))),
        )
    targets = {
        SwitchedElement.BUS: bus_index,
        SwitchedElement.LINE: line_index,
        SwitchedElement.TRANSFORMER: trafo_index,
    }
    switches = list(network.switches.values())
    et_code = {v: k for k, v in _ET.items()}
    if switches:
        pp.create_switches(
            net,
            [bus_index[s.bus] for s in switches],
            [targets[s.element_type][s.element] for s in switches],
            et=[et_code[s.element_type] for s in switches],
            closed=[s.is_closed and s.in_service for s in switches],  # an out-of-service switch is open
            type=[_SWITCH_TYPE[s.kind] for s in switches],
            name=_column(switches, "id"),
            kind=[s.kind.value for s in switches],
            normally_closed=_column(switches, "normally_closed"),
            remote=_column(switches, "remote"),
        )
    for g in network.external_grids.values():
        pp.create_ext_grid(
            net,
            bus_index[g.bus],
            vm_pu=g.vm_pu,
            va_degree=g.va_degree,
            name=g.id,
            s_sc_max_mva=g.sk_mva,
            rx_max=g.rx_ratio,
            in_service=g.in_service,
        )
    loads = list(network.loads.values())
    if loads:
        pp.create_loads(
            net,
            [bus_index[x.bus] for x in loads],
            [x.p_kw / KW_PER_MW for x in loads],
            [x.q_kvar / KW_PER_MW for x in loads],
            name=_column(loads, "id"),
            in_service=_column(loads, "in_service"),
            load_class=[x.load_class.value for x in loads],
            customers=_column(loads, "customers"),
            critical=_column(loads, "critical"),
            flexible_share=_column(loads, "flexible_share"),
            max_delay_h=_column(loads, "max_delay_h"),
            p_profile=_column(loads, "p_profile"),
            q_profile=_column(loads, "q_profile"),
        )
    gens = list(network.generators.values())
    if gens:
        pp.create_sgens(
            net,
            [bus_index[x.bus] for x in gens],
            [x.p_kw / KW_PER_MW for x in gens],
            [x.q_kvar / KW_PER_MW for x in gens],
            name=_column(gens, "id"),
            sn_mva=[(x.sn_kva or np.nan) / KW_PER_MW for x in gens],
            in_service=_column(gens, "in_service"),
            kind=[x.kind.value for x in gens],
            profile=_column(gens, "profile"),
            curtailable=_column(gens, "curtailable"),
            **{"type": [x.kind.value for x in gens]},
        )
    evs = list(network.ev_chargers.values())
    if evs:
        pp.create_loads(
            net,
            [bus_index[x.bus] for x in evs],
            0.0,
            0.0,
            name=_column(evs, "id"),
            max_p_mw=[x.p_kw * x.connectors / KW_PER_MW for x in evs],
            in_service=_column(evs, "in_service"),
            critical=False,
            **{"type": "ev_charger"},
        )
    bats = list(network.batteries.values())
    if bats:
        pp.create_storages(
            net,
            [bus_index[x.bus] for x in bats],
            0.0,
            [x.e_kwh / KW_PER_MW for x in bats],
            name=_column(bats, "id"),
            soc_percent=[x.soc_init * 100 for x in bats],
            max_p_mw=[x.p_kw / KW_PER_MW for x in bats],
            min_p_mw=[-x.p_kw / KW_PER_MW for x in bats],
            in_service=_column(bats, "in_service"),
        )
    return net
