"""Translation to power-grid-model input: ids, units, switch states and transformer windings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from power_grid_model import ComponentType, WindingType

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
from gridmesh.model.kinds import GeneratorKind, SwitchedElement, TapSide
from gridmesh.model.network import Network
from gridmesh.physics.pgm_input import IDEAL_SOURCE_SK_VA, build_input


@pytest.fixture
def network() -> Network:
    return Network.from_elements(
        [
            Bus(id="mv", vn_kv=20),
            Bus(id="a", vn_kv=0.4),
            Bus(id="b", vn_kv=0.4),
            Bus(id="c", vn_kv=0.4),
            Transformer(
                id="t",
                hv_bus="mv",
                lv_bus="a",
                sn_kva=400,
                vn_hv_kv=20,
                vn_lv_kv=0.4,
                vk_percent=6,
                vkr_percent=1,
                pfe_kw=0.8,
                shift_degree=150,
                tap_side=TapSide.HV,
                tap_min=-2,
                tap_max=2,
                tap_pos=-1,
                tap_step_percent=2.5,
                parallel=2,
            ),
            Line(
                id="l1",
                from_bus="a",
                to_bus="b",
                length_km=0.5,
                r_ohm_per_km=0.2,
                x_ohm_per_km=0.08,
                c_nf_per_km=200,
                g_us_per_km=1.0,
                max_i_a=250,
                parallel=2,
            ),
            Line(id="l2", from_bus="b", to_bus="c", length_km=0.1, r_ohm_per_km=0.4, x_ohm_per_km=0.1, max_i_a=100),
            Switch(id="open", bus="c", element="l2", element_type=SwitchedElement.LINE, normally_closed=False),
            Switch(id="bb", bus="a", element="b"),
            ExternalGrid(id="grid", bus="mv", vm_pu=1.03, va_degree=-30, sk_mva=500),
            Load(id="p", bus="b", p_kw=3, q_kvar=1),
            EvCharger(id="ev", bus="c", p_kw=11),
            Generator(id="pv", bus="c", kind=GeneratorKind.PV, p_kw=5),
            Battery(id="bat", bus="b", e_kwh=10, p_kw=5),
        ]
    )


def test_ids_are_unique_across_components(network: Network) -> None:
    data, index = build_input(network)
    ids = np.concatenate([data[c]["id"] for c in data])
    assert len(np.unique(ids)) == len(ids) == 4 + 2 + 1 + 1 + 1 + 2 + 2
    assert index.buses == ("mv", "a", "b", "c")
    assert index.links == ("bb",)
    assert (index.loads, index.ev_chargers, index.generators, index.batteries) == (("p",), ("ev",), ("pv",), ("bat",))
    np.testing.assert_array_equal(index.load_ids, data[ComponentType.sym_load]["id"])


def test_units_and_parallel_circuits(network: Network) -> None:
    data, _ = build_input(network)
    node, line = data[ComponentType.node], data[ComponentType.line]
    np.testing.assert_array_equal(node["u_rated"], [20e3, 400, 400, 400])
    assert line["r1"][0] == pytest.approx(0.2 * 0.5 / 2)  # two circuits in parallel halve the impedance
    assert line["c1"][0] == pytest.approx(200e-9 * 0.5 * 2)
    assert line["tan1"][0] == pytest.approx(1e-6 * 0.5 * 2 / (2 * math.pi * 50 * 200e-9 * 0.5 * 2))
    assert line["i_n"][0] == 500
    assert line["r0"][1] == pytest.approx(4 * 0.4 * 0.1)  # zero-sequence rule of thumb when not given
    load = data[ComponentType.sym_load]
    np.testing.assert_array_equal(load["p_specified"], [3e3, 0.0])
    np.testing.assert_array_equal(load["q_specified"], [1e3, 0.0])


def test_switch_states(network: Network) -> None:
    data, _ = build_input(network)
    line, link = data[ComponentType.line], data[ComponentType.link]
    assert (line["from_status"][1], line["to_status"][1]) == (1, 0)  # l2 opened at its c end
    assert (line["from_status"][0], line["to_status"][0]) == (1, 1)
    assert (link["from_status"][0], link["to_status"][0]) == (1, 1)


def test_transformer_dyn5_with_tap(network: Network) -> None:
    data, _ = build_input(network)
    trafo = data[ComponentType.transformer][0]
    assert trafo["clock"] == 5
    assert trafo["winding_from"] == WindingType.delta
    assert trafo["winding_to"] == WindingType.wye_n
    assert trafo["sn"] == 800e3
    assert trafo["uk"] == pytest.approx(0.06)
    assert trafo["pk"] == pytest.approx(0.01 * 800e3)
    assert trafo["tap_pos"] == -1
    assert trafo["tap_size"] == pytest.approx(0.025 * 20e3)


def test_sources_are_ideal_for_power_flow_only(network: Network) -> None:
    ideal = build_input(network)[0][ComponentType.source][0]
    assert ideal["sk"] == IDEAL_SOURCE_SK_VA
    assert ideal["u_ref"] == pytest.approx(1.03)
    assert ideal["u_ref_angle"] == pytest.approx(-math.pi / 6)
    assert build_input(network, ideal_sources=False)[0][ComponentType.source][0]["sk"] == pytest.approx(500e6)
