"""The study twin applies the control cycle's decisions: curtailment and load shifts reach the power flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.sim.twin import StudyTwin

PUMP = """
  loads:
    - {id: pump, bus: LV1.101 Bus 11, p_kw: 40, q_kvar: 10, flexible_share: 0.8, max_delay_h: 4, p_profile: L2-A_pload}
"""


def test_shifts_and_curtailment_reach_the_power_flow(small_scenario_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "pump.yaml"
    path.write_text(small_scenario_file.read_text().replace("elements:\n", "elements:\n" + PUMP))
    twin = StudyTwin(read_scenario(path))
    window, base = twin.window(0, 4)
    (column,) = twin.flexible.columns
    pv = list(twin.scenario.network.generators).index("extra-pv")
    flex = np.array([[10.0], [-30.0], [0.0], [0.0]])  # defer 10 kW, then catch up 30 kW
    curtail = np.zeros_like(window.gen_p_kw)
    curtail[:, pv] = 0.5 * window.gen_p_kw[:, pv]
    solved = twin.solve(window, base, np.zeros((4, len(twin.fleet))), curtail_kw=curtail, flex_kw=flex)
    np.testing.assert_allclose(solved.injections.load_p_kw[:, column], window.load_p_kw[:, column] - flex[:, 0])
    # reactive power moves at the pump's nominal power factor (10 kvar per 40 kW), however small its load now
    np.testing.assert_allclose(solved.injections.load_q_kvar[:, column], base.load_q_kvar[:, column] - flex[:, 0] / 4)
    np.testing.assert_allclose(solved.injections.gen_p_kw[:, pv], 0.5 * window.gen_p_kw[:, pv])
    idle = twin.solve(window, base, np.zeros((4, len(twin.fleet))))
    # the substation sees it: 30 kW more import at step 1 (plus a little more losses)
    assert solved.result.grid_p_kw[1].sum() - idle.result.grid_p_kw[1].sum() == pytest.approx(
        30.0 + curtail[1, pv], rel=0.05
    )
