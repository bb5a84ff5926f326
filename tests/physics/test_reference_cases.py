"""Golden cases: gridmesh's power flow against pandapower's on SimBench grids (LV, MV and MV+LV).

pandapower (``trafo_model="pi"``, voltage angles on) is the reference; buses, lines and transformers are
matched by id, which is the pandapower name. Each case carries its own tolerances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.physics.powerflow import PowerFlowResult, snapshot


@dataclass(frozen=True)
class ReferenceCase:
    code: str
    buses: int  # guards against comparing an empty or truncated grid
    v_pu: float = 1e-5  # voltage magnitude, pu
    angle_deg: float = 0.01
    loading_percent: float = 0.01  # line and transformer loading, percentage points
    losses_rel: float = 1e-5  # total series losses, relative


CASES = [
    ReferenceCase("1-LV-rural1--0-sw", buses=15),
    ReferenceCase("1-LV-semiurb4--0-sw", buses=44),
    ReferenceCase("1-MV-rural--0-sw", buses=97),
    ReferenceCase("1-MV-semiurb--0-sw", buses=117),
    ReferenceCase("1-MVLV-rural-1.108-0-sw", buses=111),
    pytest.param(ReferenceCase("1-MVLV-rural-all-0-sw", buses=5479), marks=pytest.mark.slow),
]


def _by_name(result: pd.DataFrame, net: pp.pandapowerNet, table: str, ids: tuple[str, ...]) -> pd.DataFrame:
    names = net[table]["name"]
    assert names.is_unique, f"{table} names must be unique to serve as ids"
    return result.set_axis(names.loc[result.index].to_list()).loc[list(ids)]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.code)
def solved(
    request: pytest.FixtureRequest, simbench_net: Callable[[str], pp.pandapowerNet]
) -> tuple[ReferenceCase, pp.pandapowerNet, PowerFlowResult]:
    case: ReferenceCase = request.param
    net = simbench_net(case.code)
    result = snapshot(from_pandapower(net, name=case.code))
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi")
    assert net.converged
    assert result.failed == {}
    return case, net, result


def test_bus_voltages(solved: tuple[ReferenceCase, pp.pandapowerNet, PowerFlowResult]) -> None:
    case, net, result = solved
    assert len(result.index.buses) == case.buses
    ref = _by_name(net.res_bus, net, "bus", result.index.buses)
    np.testing.assert_array_equal(np.isnan(result.v_pu[0]), ref.vm_pu.isna())
    np.testing.assert_allclose(result.v_pu[0], ref.vm_pu, atol=case.v_pu, rtol=0)
    np.testing.assert_allclose(result.angle_deg[0], ref.va_degree, atol=case.angle_deg, rtol=0)
    assert np.nanmin(result.v_pu) < 0.999 * np.nanmax(result.v_pu)  # not a flat, unloaded grid


def test_branch_loading(solved: tuple[ReferenceCase, pp.pandapowerNet, PowerFlowResult]) -> None:
    case, net, result = solved
    lines = _by_name(net.res_line, net, "line", result.index.lines)
    np.testing.assert_allclose(result.line_loading[0] * 100, lines.loading_percent, atol=case.loading_percent, rtol=0)
    # Transformer loading is apparent power over rating (power-grid-model's definition); pandapower's
    # default loading_percent is current × rated voltage instead, so rebuild the power-based value from its
    # branch flows.
    flows = _by_name(net.res_trafo, net, "trafo", result.index.transformers)
    rating = _by_name(net.trafo, net, "trafo", result.index.transformers)
    s_mva = np.maximum(np.hypot(flows.p_hv_mw, flows.q_hv_mvar), np.hypot(flows.p_lv_mw, flows.q_lv_mvar))
    expected = 100 * s_mva / (rating.sn_mva * rating.parallel)
    np.testing.assert_allclose(result.trafo_loading[0] * 100, expected, atol=case.loading_percent, rtol=0)
    assert np.nanmax(result.line_loading) > 0.01


def test_losses_and_grid_exchange(solved: tuple[ReferenceCase, pp.pandapowerNet, PowerFlowResult]) -> None:
    case, net, result = solved
    losses_kw = (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1000
    assert losses_kw > 0
    assert result.losses_kw[0] == pytest.approx(losses_kw, rel=case.losses_rel)
    grid = _by_name(net.res_ext_grid, net, "ext_grid", result.index.sources)
    np.testing.assert_allclose(result.grid_p_kw[0], grid.p_mw * 1000, rtol=case.losses_rel, atol=1e-3)
    np.testing.assert_allclose(result.grid_q_kvar[0], grid.q_mvar * 1000, rtol=case.losses_rel, atol=1e-3)
