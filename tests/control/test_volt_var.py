"""Volt-var/volt-watt: IEEE 1547-2018 default curves, and a fixed point that is consistent with the power flow."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.control.volt_var import InverterCurves, VoltVarWatt
from gridmesh.model.io.simbench import from_simbench
from gridmesh.physics.powerflow import STUDY_OUTPUTS, PowerFlow


def test_category_b_default_curves() -> None:
    curves = InverterCurves()
    v = np.array([0.90, 0.92, 0.95, 1.00, 1.05, 1.08, 1.12])
    q = curves.reactive_kvar(v, np.full(v.size, 100.0))
    assert q == pytest.approx([44.0, 44.0, 22.0, 0.0, -22.0, -44.0, -44.0])
    p = curves.active_limit_kw(np.array([1.0, 1.06, 1.08, 1.10, 1.2]), np.full(5, 50.0))
    assert p == pytest.approx([50.0, 50.0, 30.0, 10.0, 10.0])
    assert curves.reactive_kvar(np.array([np.nan]), np.array([10.0]))[0] == 0.0


def test_fixed_point_is_consistent_with_the_power_flow() -> None:
    scenario = from_simbench("1-LV-rural1--0-sw")
    # a sunny noon with three times the PV pushes the feeder above 1.06 pu
    net = scenario.network.with_elements(
        [g.model_copy(update={"p_kw": 3 * g.p_kw}) for g in scenario.network.generators.values()]
    )
    engine = PowerFlow(net, method="iterative_current", outputs=STUDY_OUTPUTS)
    base = engine.base_injections()
    injections = type(base)(
        base.load_p_kw * 0.2, base.load_q_kvar * 0.2, base.gen_p_kw, base.gen_q_kvar, base.ev_p_kw, base.battery_p_kw
    )
    plain = engine.run(injections)
    solver = VoltVarWatt(net, engine, InverterCurves(tolerance_kw=1e-4, max_iterations=60))
    solved = solver.solve(injections)
    assert solved.converged
    v = solved.result.v_pu[:, solver.buses]
    q = solved.injections.gen_q_kvar[:, solver.columns]
    p = solved.injections.gen_p_kw[:, solver.columns]
    assert q == pytest.approx(solver.curves.reactive_kvar(v, solver.rating_kva), abs=1e-3)
    expected_p = np.minimum(injections.gen_p_kw[:, solver.columns], solver.curves.active_limit_kw(v, solver.rated_kw))
    assert p == pytest.approx(expected_p, abs=1e-3)
    assert np.nanmax(solved.result.v_pu) < np.nanmax(plain.v_pu) - 0.005
