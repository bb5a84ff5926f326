"""Short-circuit currents against pandapower's IEC 60909 implementation and hand-computed cases.

Voltage factors (IEC 60909-0:2016 Table 1, in both tools): above 1 kV c_max = 1.10, c_min = 1.00; up to
1 kV 1.10 / 0.90 for a +10 % tolerance (gridmesh ``lv_tolerance_percent=10``, pandapower
``lv_tol_percent=10``) and 1.05 / 0.95 for +6 %. Both apply K_T to transformers in the maximum case.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandapower as pp
import pandapower.shortcircuit as sc
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Transformer
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.network import Network
from gridmesh.physics.short_circuit import Fault, FaultError, FaultType, ShortCircuit

SK_MVA = {"1-LV-rural1--0-sw": 100.0, "1-MV-rural--0-sw": 3000.0}


def _prepared(net: pp.pandapowerNet, sk_mva: float) -> pp.pandapowerNet:
    """Give a SimBench grid the short-circuit data it lacks, the same for both tools."""
    net.sgen["in_service"] = False  # gridmesh counts no converter infeed; pandapower would
    for case in ("max", "min"):
        net.ext_grid[f"s_sc_{case}_mva"] = sk_mva
        net.ext_grid[f"rx_{case}"] = 0.1
        net.ext_grid[f"x0x_{case}"] = 1.0
        net.ext_grid[f"r0x0_{case}"] = 0.1  # Z0 = Z1, as power-grid-model's z01_ratio = 1
    net.line["endtemp_degree"] = 20.0  # no resistance increase in the minimum case
    net.line["r0_ohm_per_km"] = 4 * net.line.r_ohm_per_km
    net.line["x0_ohm_per_km"] = 3 * net.line.x_ohm_per_km
    net.line["c0_nf_per_km"] = 0.0
    net.trafo["vector_group"] = "Dyn"
    net.trafo["vk0_percent"] = net.trafo.vk_percent
    net.trafo["vkr0_percent"] = net.trafo.vkr_percent
    net.trafo["mag0_percent"] = 100.0
    net.trafo["mag0_rx"] = 0.0
    net.trafo["si0_hv_partial"] = 0.9
    return net


@pytest.fixture(scope="module", params=list(SK_MVA))
def grid(request: pytest.FixtureRequest, simbench_net: Callable[[str], pp.pandapowerNet]) -> pp.pandapowerNet:
    return _prepared(simbench_net(request.param), SK_MVA[request.param])


@pytest.mark.parametrize(
    ("fault_type", "pp_fault", "case", "lv_tol"),
    [
        (FaultType.THREE_PHASE, "3ph", "max", 10),
        (FaultType.LINE_TO_GROUND, "1ph", "max", 10),
        (FaultType.LINE_TO_LINE, "2ph", "max", 10),
        (FaultType.THREE_PHASE, "3ph", "min", 10),
        (FaultType.LINE_TO_GROUND, "1ph", "min", 10),
        (FaultType.THREE_PHASE, "3ph", "max", 6),
        (FaultType.THREE_PHASE, "3ph", "min", 6),
    ],
)
def test_matches_pandapower(
    grid: pp.pandapowerNet, fault_type: FaultType, pp_fault: str, case: str, lv_tol: Literal[6, 10]
) -> None:
    net = grid
    model = ShortCircuit(from_pandapower(net), lv_tolerance_percent=lv_tol)
    names = net.bus.name.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.calc_sc(net, fault=pp_fault, case=case, lv_tol_percent=lv_tol)
    reference = net.res_bus_sc.ikss_ka.to_numpy()
    scaling = "maximum" if case == "max" else "minimum"
    result = model.currents([Fault(b, "buses", fault_type) for b in names], voltage_scaling=scaling)
    assert len(names) > 10
    np.testing.assert_allclose(result.i_fault_ka.max(axis=1), reference, rtol=1e-3)


def _feeder(vn_kv: float = 20.0) -> Network:
    """An ideal source behind one line of 2 km, 0.2 + j0.3 Ω/km (zero sequence 0.8 + j0.9 Ω/km)."""
    return Network.from_elements(
        [
            Bus(id="s", vn_kv=vn_kv),
            Bus(id="f", vn_kv=vn_kv),
            ExternalGrid(id="g", bus="s", sk_mva=1e9),
            Line(
                id="l",
                from_bus="s",
                to_bus="f",
                length_km=2.0,
                r_ohm_per_km=0.2,
                x_ohm_per_km=0.3,
                c_nf_per_km=250.0,
                max_i_a=300.0,
            ),
        ]
    )


Z1 = complex(0.4, 0.6)
Z0 = complex(4 * 0.4, 3 * 0.6)  # the default zero-sequence rule of thumb: r0 = 4 r1, x0 = 3 x1


@pytest.mark.parametrize(
    ("vn_kv", "scaling", "c"),
    [(20.0, "maximum", 1.1), (20.0, "minimum", 1.0), (0.4, "maximum", 1.1), (0.4, "minimum", 0.9)],
)
def test_infinite_source_behind_a_line(vn_kv: float, scaling: str, c: float) -> None:
    model = ShortCircuit(_feeder(vn_kv))
    u = vn_kv * 1e3
    result = model.currents(
        [
            Fault("f", "buses", FaultType.THREE_PHASE),
            Fault("f", "buses", FaultType.LINE_TO_GROUND),
            Fault("f", "buses", FaultType.LINE_TO_LINE),
            Fault("l", "lines", FaultType.THREE_PHASE, position=0.25),
            Fault("f", "buses", FaultType.THREE_PHASE, r_ohm=1.0),
        ],
        voltage_scaling=scaling,
    )
    expected_a = [
        c * u / (math.sqrt(3) * abs(Z1)),
        math.sqrt(3) * c * u / abs(2 * Z1 + Z0),
        c * u / abs(2 * Z1),
        c * u / (math.sqrt(3) * abs(0.25 * Z1)),
        c * u / (math.sqrt(3) * abs(Z1 + 1.0)),
    ]
    np.testing.assert_allclose(result.i_fault_ka.max(axis=1) * 1e3, expected_a, rtol=1e-5)
    # The line carries the fault current at its from-end; beyond a fault along it, nothing.
    np.testing.assert_allclose(result.line_i_from_a[:, 0].max(axis=1), expected_a, rtol=1e-5)
    assert result.line_i_to_a[3, 0].max() == pytest.approx(0.0, abs=1e-6)
    assert result.energized.all()


def test_transformer_correction_in_maximum_case_only() -> None:
    """Fault behind a 400 kVA, 6 % transformer: I = c·U / (√3·K_T·Z_T), K_T = 0.95·c_max / (1 + 0.6·x_T)."""
    net = Network.from_elements(
        [
            Bus(id="mv", vn_kv=20.0),
            Bus(id="lv", vn_kv=0.4),
            ExternalGrid(id="g", bus="mv", sk_mva=1e9),
            Transformer(
                id="t", hv_bus="mv", lv_bus="lv", sn_kva=400, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=6.0, vkr_percent=1.2
            ),
        ]
    )
    z_t = 0.06 * 400.0**2 / 400e3
    x_t = math.sqrt(0.06**2 - 0.012**2)
    k_t = 0.95 * 1.1 / (1 + 0.6 * x_t)
    model = ShortCircuit(net)
    fault = Fault("lv", "buses", FaultType.THREE_PHASE)
    i_max = model.currents([fault]).fault_ka(fault) * 1e3
    i_min = model.currents([fault], voltage_scaling="minimum").fault_ka(fault) * 1e3
    assert i_max == pytest.approx(1.1 * 400 / (math.sqrt(3) * k_t * z_t), rel=1e-6)
    assert i_min == pytest.approx(0.9 * 400 / (math.sqrt(3) * z_t), rel=1e-6)


def test_batch_equals_faults_one_by_one() -> None:
    model = ShortCircuit(_feeder())
    faults = [
        Fault("f", "buses", FaultType.LINE_TO_GROUND, r_ohm=2.0),
        Fault("l", "lines", FaultType.TWO_PHASE_TO_GROUND, position=0.7),
        Fault("l", "lines", FaultType.THREE_PHASE, position=0.0),
        Fault("s", "buses", FaultType.LINE_TO_LINE, x_ohm=0.5),
        Fault("l", "lines", FaultType.LINE_TO_GROUND, position=0.7),
    ]
    batch = model.currents(faults)
    for k, fault in enumerate(faults):
        alone = model.currents([fault])
        np.testing.assert_allclose(batch.i_fault_ka[k], alone.i_fault_ka[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(batch.line_i_from_a[k], alone.line_i_from_a[0], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(batch.line_i_to_a[k], alone.line_i_to_a[0], rtol=1e-9, atol=1e-6)


def test_line_fault_at_its_end_is_the_bus_fault() -> None:
    model = ShortCircuit(_feeder())
    at_end = Fault("l", "lines", FaultType.THREE_PHASE, position=1.0)
    at_bus = Fault("f", "buses", FaultType.THREE_PHASE)
    result = model.currents([at_end, at_bus])
    assert result.fault_ka(at_end) == pytest.approx(result.fault_ka(at_bus), rel=2e-4)


def test_single_phase_fault_current_flows_in_the_faulted_phase_only() -> None:
    result = ShortCircuit(_feeder()).currents([Fault("f", "buses", FaultType.LINE_TO_GROUND)])
    phases = result.line_i_from_a[0, 0]
    assert phases[0] > 1000.0
    assert phases[1:] == pytest.approx([0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Fault("f", "buses", "phase-to-moon"), "fault_type"),  # type: ignore[arg-type]
        (lambda: Fault("l", "lines", FaultType.THREE_PHASE, position=1.5), "position"),
        (lambda: Fault("l", "lines", FaultType.THREE_PHASE, position=-0.1), "position"),
        (lambda: Fault("f", "buses", FaultType.THREE_PHASE, position=0.3), "position"),
        (lambda: Fault("f", "switches", FaultType.THREE_PHASE), "table"),  # type: ignore[arg-type]
        (lambda: Fault("f", "buses", FaultType.THREE_PHASE, r_ohm=-1.0), "r_ohm"),
    ],
)
def test_bad_fault_names_the_field(make: Callable[[], Fault], field: str) -> None:
    with pytest.raises(FaultError) as info:
        make()
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("fault", "element"),
    [
        (Fault("nowhere", "buses", FaultType.THREE_PHASE), "nowhere"),
        (Fault("f", "lines", FaultType.THREE_PHASE), "f"),
    ],
)
def test_unknown_element_is_named(fault: Fault, element: str) -> None:
    with pytest.raises(FaultError, match=f"'{element}': element"):
        ShortCircuit(_feeder()).currents([fault])


def test_unknown_voltage_scaling_and_empty_batch_refused() -> None:
    model = ShortCircuit(_feeder())
    with pytest.raises(FaultError, match="voltage_scaling"):
        model.currents([Fault("f", "buses", FaultType.THREE_PHASE)], voltage_scaling="typical")
    with pytest.raises(FaultError, match="no fault given"):
        model.currents([])
