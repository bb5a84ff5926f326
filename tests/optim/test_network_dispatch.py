"""Network-aware dispatch on a SimBench LV grid, checked after the fact by the full power flow."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gridmesh.model.elements import Battery
from gridmesh.model.io.simbench import from_simbench
from gridmesh.optim import DispatchProblem, solve_dispatch
from gridmesh.physics.powerflow import Injections, PowerFlow
from gridmesh.physics.sensitivity import voltage_sensitivity

V_LIMIT_PU = 1.03  # tighter than the grid's 1.1 so that a 100 kW battery cannot export at full power
STEPS = 4


def test_voltage_limited_export_holds_in_the_full_power_flow() -> None:
    network = from_simbench("1-LV-rural1--0-sw").network.with_elements(
        [Battery(id="bess", bus="LV1.101 Bus 7", e_kwh=400, p_kw=100, soc_init=0.9)]
    )
    engine = PowerFlow(network)
    one = engine.base_injections()
    inj = Injections(*(np.repeat(getattr(one, f), STEPS, axis=0) for f in one.__dataclass_fields__))
    lv_buses = [k for k, b in enumerate(engine.index.buses) if b.startswith("LV")]
    sens = voltage_sensitivity(engine, network, inj, buses=lv_buses)
    sens = replace(sens, upper=np.full(sens.size, V_LIMIT_PU))
    before = engine.run(inj)
    assert np.nanmax(before.v_pu[:, lv_buses]) < V_LIMIT_PU  # the limit holds without dispatch …

    gens = inj.gen_p_kw
    problem = DispatchProblem(
        dt_h=0.25,
        e_kwh=np.array([400.0]),
        p_max_kw=np.array([100.0]),
        eta_charge=np.array([0.95]),
        eta_discharge=np.array([0.95]),
        soc_min=np.array([0.1]),
        soc_max=np.array([0.9]),
        soc0=np.array([0.9]),
        net_load_kw=before.grid_p_kw[:, 0],
        import_price=np.full(STEPS, 0.30),
        export_price=np.full(STEPS, 0.25),  # exporting everything would pay
        gen_available_kw=gens,
        site_of_gen=np.full(gens.shape[1], -1),
        curtailment_penalty_eur_per_kwh=0.05,
        sensitivity=sens,
    )
    plan = solve_dispatch(problem)
    assert plan.status == "optimal"
    assert (plan.soc >= 0.1 - 1e-9).all() and (plan.soc <= 0.9 + 1e-9).all()
    assert (plan.battery_kw < 100.0 - 1.0).all()  # … and forbids full export
    assert (plan.battery_kw > 10.0).all()
    np.testing.assert_allclose(plan.curtail_kw, 0.0, atol=1e-6)

    after = engine.run(replace(inj, battery_p_kw=plan.battery_kw, gen_p_kw=gens - plan.curtail_kw))
    v_max = np.nanmax(after.v_pu[:, lv_buses], axis=1)
    assert (v_max <= V_LIMIT_PU + 2e-4).all()  # the full power flow confirms the limit, up to linearisation
    np.testing.assert_allclose(v_max, V_LIMIT_PU, atol=2e-4)  # and it binds at every step
    assert plan.monitored is not None
    np.testing.assert_allclose(plan.monitored.max(axis=1), v_max, atol=2e-4)
    assert after.grid_p_kw[:, 0] == pytest.approx(plan.grid_import_kw, abs=1.0)  # losses change slightly
