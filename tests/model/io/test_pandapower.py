"""pandapower import and export: the id rule, lossless round trips, and equal power flows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from gridmesh.errors import ScenarioError
from gridmesh.model.elements import (
    Battery,
    Bus,
    EvCharger,
    ExternalGrid,
    Generator,
    Line,
    Load,
    Switch,
    Transformer,
)
from gridmesh.model.io.pandapower import element_ids, from_pandapower, to_pandapower
from gridmesh.model.kinds import GeneratorKind, LoadClass, SwitchedElement, SwitchKind, TapSide
from gridmesh.model.network import Network
from gridmesh.physics.powerflow import snapshot

V_TOL_PU = 1e-6
ANGLE_TOL_DEG = 1e-4


def _line(id_: str, a: str, b: str, **extra: object) -> Line:
    return Line.model_validate(
        {
            "id": id_,
            "from_bus": a,
            "to_bus": b,
            "length_km": 0.3,
            "r_ohm_per_km": 0.206,
            "x_ohm_per_km": 0.08,
            "c_nf_per_km": 210,
            "max_i_a": 270,
        }
        | extra
    )


@pytest.fixture(scope="module")
def hand_built() -> Network:
    """Every supported kind: an off-neutral Dyn5 tap, parallel lines, a bus-bus switch, an open tie, …"""
    return Network.from_elements(
        [
            Bus(id="mv", vn_kv=20, x=9.1, y=48.7, zone="MV", v_min_pu=0.95),
            Bus(id="lv", vn_kv=0.4, zone="LV"),
            *(Bus(id=f"b{k}", vn_kv=0.4) for k in range(1, 5)),
            Transformer(
                id="t",
                hv_bus="mv",
                lv_bus="lv",
                sn_kva=400,
                vn_hv_kv=20,
                vn_lv_kv=0.4,
                vk_percent=6,
                vkr_percent=1.2,
                pfe_kw=0.8,
                i0_percent=0.3,
                shift_degree=150,
                tap_min=-2,
                tap_max=2,
                tap_pos=1,
                tap_step_percent=2.5,
            ),
            _line("l1", "lv", "b1"),
            _line("l2", "b1", "b2", parallel=2),
            _line("l3", "b3", "b4", r0_ohm_per_km=0.8),
            _line("l4", "b2", "b4"),
            Switch(
                id="cb", bus="lv", element="l1", element_type=SwitchedElement.LINE, kind=SwitchKind.BREAKER, remote=True
            ),
            Switch(id="bb", bus="b2", element="b3", kind=SwitchKind.LOAD_BREAK),
            Switch(
                id="tie",
                bus="b4",
                element="l4",
                element_type=SwitchedElement.LINE,
                kind=SwitchKind.TIE,
                normally_closed=False,
            ),
            Switch(id="fuse", bus="b1", element="l2", element_type=SwitchedElement.LINE, kind=SwitchKind.FUSE),
            Switch(
                id="ts",
                bus="lv",
                element="t",
                element_type=SwitchedElement.TRANSFORMER,
                kind=SwitchKind.RECLOSER,
                remote=True,
            ),
            ExternalGrid(id="grid", bus="mv", vm_pu=1.02, va_degree=0, sk_mva=300, rx_ratio=0.2),
            Load(id="h1", bus="b1", p_kw=12, q_kvar=3, customers=3, p_profile="H0-A_pload"),
            Load(id="shop", bus="b4", p_kw=30, q_kvar=8, load_class=LoadClass.COMMERCIAL, critical=True),
            Generator(id="pv", bus="b2", kind=GeneratorKind.PV, p_kw=25, sn_kva=30, profile="PV3"),
            Generator(id="chp", bus="b3", kind=GeneratorKind.CHP, p_kw=10, q_kvar=2, curtailable=False),
            Battery(id="bess", bus="b2", e_kwh=50, p_kw=20),
        ],
        name="hand-built",
    )


def _named(frame: pd.DataFrame, net: pp.pandapowerNet, table: str) -> pd.DataFrame:
    """A result table re-indexed by the element names of its input table."""
    names = net[table]["name"]
    assert names.is_unique
    return frame.set_axis(names.loc[frame.index].to_list())


# --- ids -------------------------------------------------------------------------------------------------------


def test_id_rule_keeps_unique_names_and_falls_back_to_table_index() -> None:
    frame = pd.DataFrame({"name": ["feeder", None, "", "  ", "dup", "dup", "tail"]}, index=[0, 3, 5, 7, 17, 18, 20])
    assert element_ids(frame, "bus") == {
        0: "feeder",
        3: "bus-3",
        5: "bus-5",
        7: "bus-7",
        17: "bus-17",
        18: "bus-18",
        20: "tail",
    }


def test_id_rule_without_a_name_column() -> None:
    assert element_ids(pd.DataFrame({"vn_kv": [0.4, 0.4]}, index=[4, 9]), "bus") == {4: "bus-4", 9: "bus-9"}


def test_a_name_that_looks_like_a_fallback_id_sends_the_table_to_fallback_ids() -> None:
    frame = pd.DataFrame({"name": ["line-2", None, "x"]}, index=[0, 2, 3])
    assert element_ids(frame, "line") == {0: "line-0", 2: "line-2", 3: "line-3"}


def test_imported_ids_and_references_follow_the_rule() -> None:
    net = pp.create_empty_network()
    a = pp.create_bus(net, 20.0, name="station")
    b = pp.create_bus(net, 20.0, name="dup")
    c = pp.create_bus(net, 20.0, name="dup")
    pp.create_ext_grid(net, a)
    pp.create_line_from_parameters(net, a, b, 1.0, 0.1, 0.1, 0.0, 0.2, name="cable")
    pp.create_line_from_parameters(net, b, c, 1.0, 0.1, 0.1, 0.0, 0.2)
    pp.create_load(net, c, 0.1, name="farm")
    network = from_pandapower(net, name="ids")
    assert list(network.buses) == ["station", "bus-1", "bus-2"]
    assert list(network.lines) == ["cable", "line-1"]
    assert (network.lines["line-1"].from_bus, network.lines["line-1"].to_bus) == ("bus-1", "bus-2")
    assert network.loads["farm"].bus == "bus-2"
    assert list(network.external_grids) == ["ext_grid-0"]


# --- import details --------------------------------------------------------------------------------------------


def test_unsupported_in_service_elements_are_refused() -> None:
    net = pp.create_empty_network()
    a = pp.create_bus(net, 20.0)
    pp.create_ext_grid(net, a)
    pp.create_gen(net, a, 1.0, in_service=False)
    assert "bus-0" in from_pandapower(net).buses  # out of service: ignored
    pp.create_gen(net, a, 1.0)
    pp.create_shunt(net, a, q_mvar=0.1)
    with pytest.raises(ScenarioError) as exc:
        from_pandapower(net)
    assert [(i.element, i.field) for i in exc.value.issues] == [("gen", "-"), ("shunt", "-")]


def test_phase_shifting_taps_are_refused() -> None:
    net = pp.create_empty_network()
    a, b = pp.create_bus(net, 20.0), pp.create_bus(net, 0.4)
    pp.create_transformer_from_parameters(net, a, b, 0.4, 20, 0.4, 1, 6, 0, 0, tap_step_degree=5, name="ps")
    with pytest.raises(ScenarioError) as exc:
        from_pandapower(net)
    assert [(i.element, i.field) for i in exc.value.issues] == [("trafo[ps]", "tap_step_degree")]


@pytest.mark.parametrize(("changer", "tap_pos"), [("Ratio", 2), (None, 0)])
def test_tap_position_counts_only_with_a_tap_changer(changer: str | None, tap_pos: int) -> None:
    """pandapower ignores ``tap_pos`` when ``tap_changer_type`` is unset; so must the import."""
    net = pp.create_empty_network()
    a, b = pp.create_bus(net, 20.0), pp.create_bus(net, 0.4)
    pp.create_transformer_from_parameters(
        net,
        a,
        b,
        0.4,
        20,
        0.4,
        1,
        6,
        0,
        0,
        tap_side="hv",
        tap_neutral=0,
        tap_min=-2,
        tap_max=2,
        tap_pos=2,
        tap_step_percent=2.5,
        tap_changer_type=changer,
        name="t",
    )
    assert from_pandapower(net).transformers["t"].tap_pos == tap_pos


def test_scaling_and_simbench_style_columns_are_understood() -> None:
    net = pp.create_empty_network()
    a = pp.create_bus(net, 0.4, name="a")
    net.bus["subnet"] = "LV1.101"
    pp.create_load(net, a, 0.01, 0.002, scaling=0.5, name="shop", profile="G1-A")
    pp.create_load(net, a, 0.004, name="farm", profile="L2-M")
    pp.create_sgen(net, a, 0.03, name="wind", type="Wind", scaling=2.0)
    pp.create_sgen(net, a, 0.01, name="bm", profile="BM3")
    network = from_pandapower(net)
    assert network.buses["a"].zone == "LV1.101"
    shop = network.loads["shop"]
    assert (shop.p_kw, shop.q_kvar) == pytest.approx((5.0, 1.0))
    assert (shop.load_class, shop.p_profile, shop.q_profile) == (LoadClass.COMMERCIAL, "G1-A_pload", "G1-A_qload")
    assert network.loads["farm"].load_class is LoadClass.AGRICULTURAL
    assert network.generators["wind"].kind is GeneratorKind.WIND
    assert network.generators["wind"].p_kw == pytest.approx(60.0)
    assert network.generators["bm"].kind is GeneratorKind.BIOMASS


# --- round trips -----------------------------------------------------------------------------------------------


def test_hand_built_network_round_trips(hand_built: Network) -> None:
    back = from_pandapower(to_pandapower(hand_built))
    for table in ("buses", "lines", "transformers", "switches", "external_grids", "loads", "generators", "batteries"):
        assert dict(back.table(table)) == dict(hand_built.table(table)), table
    assert back == hand_built
    assert back.transformers["t"].tap_side is TapSide.HV


def test_ev_chargers_are_exported_as_loads(hand_built: Network) -> None:
    with_ev = hand_built.with_elements([EvCharger(id="ev", bus="b3", p_kw=11, connectors=2)])
    net = to_pandapower(with_ev)
    row = net.load.set_index("name").loc["ev"]
    assert (row.p_mw, row.type, row.max_p_mw) == (0.0, "ev_charger", pytest.approx(0.022))


@pytest.mark.parametrize("code", ["1-LV-rural1--0-sw", "1-MV-semiurb--0-sw"])
def test_simbench_network_round_trips(simbench_net: Callable[[str], pp.pandapowerNet], code: str) -> None:
    network = from_pandapower(simbench_net(code), name=code)
    assert network.duplicates == ()
    assert from_pandapower(to_pandapower(network), name=code) == network


def _assert_same_flow(network: Network, net: pp.pandapowerNet) -> None:
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi")
    result = snapshot(network)
    assert not result.failed
    buses = _named(net.res_bus, net, "bus").loc[list(result.index.buses)]
    np.testing.assert_allclose(result.v_pu[0], buses.vm_pu, atol=V_TOL_PU, rtol=0)
    np.testing.assert_allclose(result.angle_deg[0], buses.va_degree, atol=ANGLE_TOL_DEG, rtol=0)
    lines = _named(net.res_line, net, "line").loc[list(result.index.lines)]
    np.testing.assert_allclose(result.line_loading[0] * 100, lines.loading_percent, atol=1e-4, rtol=0)
    pp_losses = (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1000
    assert result.losses_kw[0] == pytest.approx(pp_losses, rel=1e-5)


def test_exported_hand_built_network_has_the_same_power_flow(hand_built: Network) -> None:
    _assert_same_flow(hand_built, to_pandapower(hand_built))


def test_exported_simbench_network_has_the_same_power_flow(simbench_net: Callable[[str], pp.pandapowerNet]) -> None:
    network = from_pandapower(simbench_net("1-MV-semiurb--0-sw"), name="mv")
    _assert_same_flow(network, to_pandapower(network))
