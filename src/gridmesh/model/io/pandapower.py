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


def to_pandapower(network: Network) -> pp.pandapowerNet:
    """Export to pandapower; EV chargers become loads and batteries become storage (load convention)."""
    net = pp.create_empty_network(name=network.name)
    bus_index: dict[str, int] = {}
    for bus in network.buses.values():
        geodata = (bus.x, bus.y) if bus.x is not None and bus.y is not None else None
        bus_index[bus.id] = pp.create_bus(
            net,
            vn_kv=bus.vn_kv,
            name=bus.id,
            in_service=bus.in_service,
            zone=bus.zone,
            geodata=geodata,
            min_vm_pu=bus.v_min_pu,
            max_vm_pu=bus.v_max_pu,
        )
    line_index = {
        line.id: pp.create_line_from_parameters(
            net,
            bus_index[line.from_bus],
            bus_index[line.to_bus],
            line.length_km,
            line.r_ohm_per_km,
            line.x_ohm_per_km,
            line.c_nf_per_km,
            line.max_i_a / 1000.0,
            name=line.id,
            g_us_per_km=line.g_us_per_km,
            parallel=line.parallel,
            in_service=line.in_service,
        )
        for line in network.lines.values()
    }
    zero_sequence = ["r0_ohm_per_km", "x0_ohm_per_km", "c0_nf_per_km"]
    for line in network.lines.values():  # set directly: pandapower drops them unless all three are given
        values = [getattr(line, column) for column in zero_sequence]
        if any(v is not None for v in values):
            net.line.loc[line_index[line.id], zero_sequence] = [np.nan if v is None else v for v in values]
    trafo_index = {
        t.id: pp.create_transformer_from_parameters(
            net,
            bus_index[t.hv_bus],
            bus_index[t.lv_bus],
            t.sn_kva / KW_PER_MW,
            t.vn_hv_kv,
            t.vn_lv_kv,
            t.vkr_percent,
            t.vk_percent,
            t.pfe_kw,
            t.i0_percent,
            shift_degree=t.shift_degree,
            tap_side=t.tap_side.value,
            tap_neutral=t.tap_neutral,
            tap_max=t.tap_max,
            tap_min=t.tap_min,
            tap_step_percent=t.tap_step_percent,
            tap_pos=t.tap_pos,
            tap_changer_type="Ratio",  # without it pandapower ignores tap_pos
            parallel=t.parallel,
            name=t.id,
            in_service=t.in_service,
        )
        for t in network.transformers.values()
    }
    targets = {
        SwitchedElement.BUS: bus_index,
        SwitchedElement.LINE: line_index,
        SwitchedElement.TRANSFORMER: trafo_index,
    }
    for sw in network.switches.values():
        i = pp.create_switch(
            net,
            bus_index[sw.bus],
            targets[sw.element_type][sw.element],
            et={v: k for k, v in _ET.items()}[sw.element_type],
            closed=sw.is_closed and sw.in_service,  # gridmesh treats an out-of-service switch as open
            type=_SWITCH_TYPE[sw.kind],
            name=sw.id,
        )
        net.switch.loc[i, ["kind", "normally_closed", "remote"]] = [sw.kind.value, sw.normally_closed, sw.remote]
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
    for load in network.loads.values():
        i = pp.create_load(
            net,
            bus_index[load.bus],
            load.p_kw / KW_PER_MW,
            load.q_kvar / KW_PER_MW,
            name=load.id,
            in_service=load.in_service,
        )
        net.load.loc[i, ["load_class", "customers", "critical", "p_profile", "q_profile"]] = [
            load.load_class.value,
            load.customers,
            load.critical,
            load.p_profile,
            load.q_profile,
        ]
    for gen in network.generators.values():
        i = pp.create_sgen(
            net,
            bus_index[gen.bus],
            gen.p_kw / KW_PER_MW,
            gen.q_kvar / KW_PER_MW,
            name=gen.id,
            type=gen.kind.value,
            in_service=gen.in_service,
            sn_mva=(gen.sn_kva or np.nan) / KW_PER_MW,
        )
        net.sgen.loc[i, ["kind", "profile", "curtailable"]] = [gen.kind.value, gen.profile, gen.curtailable]
    for ev in network.ev_chargers.values():
        pp.create_load(
            net,
            bus_index[ev.bus],
            0.0,
            0.0,
            name=ev.id,
            type="ev_charger",
            max_p_mw=ev.p_kw * ev.connectors / KW_PER_MW,
        )
    for bat in network.batteries.values():
        pp.create_storage(
            net,
            bus_index[bat.bus],
            0.0,
            bat.e_kwh / KW_PER_MW,
            name=bat.id,
            soc_percent=bat.soc_init * 100,
            max_p_mw=bat.p_kw / KW_PER_MW,
            min_p_mw=-bat.p_kw / KW_PER_MW,
            in_service=bat.in_service,
        )
    return net
