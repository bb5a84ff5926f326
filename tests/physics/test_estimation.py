"""State estimation against power flow (exact data), noise, pandapower's estimator, bad data, observability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandapower as pp
import pytest
from pandapower.estimation import estimate as pp_estimate

from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.pandapower import element_ids, from_pandapower
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.network import Network
from gridmesh.physics.estimation import StateEstimator
from gridmesh.physics.measurement_set import (
    MeasurementSet,
    PowerMeasurements,
    appliance_order,
    catalogue_measurements,
    pseudo_measurements,
)
from gridmesh.physics.powerflow import Injections, PowerFlow, PowerFlowResult
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of

LV = "1-LV-rural1--0-sw"


@dataclass(frozen=True)
class Case:
    net: pp.pandapowerNet
    network: Network
    injections: Injections
    truth: PowerFlowResult


@pytest.fixture(scope="module")
def lv(simbench_net: Callable[[str], pp.pandapowerNet]) -> Case:
    net = simbench_net(LV)
    network = from_pandapower(net)
    flow = PowerFlow(network)
    injections = flow.base_injections()
    return Case(net, network, injections, flow.run(injections).raise_on_failure())


def _exact(case: Case) -> MeasurementSet:
    return catalogue_measurements(case.network, case.truth, case.injections)


def _rows(powers: PowerMeasurements, keep: np.ndarray) -> PowerMeasurements:
    return PowerMeasurements(*(getattr(powers, f)[keep] for f in powers.__dataclass_fields__))


def test_exact_measurements_reproduce_the_power_flow(lv: Case) -> None:
    est = StateEstimator(lv.network, tolerance=1e-10).estimate(_exact(lv))
    assert est.observable and est.converged
    np.testing.assert_allclose(est.v_pu, lv.truth.v_pu[0], atol=1e-4)
    np.testing.assert_allclose(est.angle_deg, lv.truth.angle_deg[0], atol=1e-3)
    np.testing.assert_allclose(est.trafo_p_from_kw, lv.truth.trafo_p_from_kw[0], atol=0.05)
    np.testing.assert_allclose(est.grid_p_kw, lv.truth.grid_p_kw[0], atol=0.05)
    assert est.objective < 1e-6
    assert not est.bad_data_suspected and est.suspects == ()
    assert est.dof > 0 and est.chi2_threshold > est.dof


def test_noisy_estimate_is_closer_to_truth_than_the_measurements(lv: Case) -> None:
    estimator = StateEstimator(lv.network)
    rng = np.random.default_rng(7)
    bus_pos = {b: i for i, b in enumerate(lv.truth.index.buses)}
    measured_err, estimated_err, objectives = [], [], []
    for _ in range(20):
        ms = catalogue_measurements(lv.network, lv.truth, lv.injections, rng=rng)
        est = estimator.estimate(ms)
        rows = np.array([bus_pos[b] for b in ms.voltages.bus])
        truth = lv.truth.v_pu[0, rows]
        measured_err.append(np.mean(np.abs(ms.voltages.v_pu - truth)))
        estimated_err.append(np.mean(np.abs(est.v_pu[rows] - truth)))
        objectives.append(est.objective)
    assert np.mean(estimated_err) < 0.5 * np.mean(measured_err)
    # J is chi-square distributed with dof degrees of freedom: its mean over 20 draws is near dof.
    assert abs(np.mean(objectives) - est.dof) < 4 * np.sqrt(2 * est.dof / 20)


def _pandapower_measurements(case: Case, ms: MeasurementSet) -> pp.pandapowerNet:
    """The same measurements in pandapower's form: appliances summed per bus (load convention, MW)."""
    net = case.net
    net.measurement.drop(net.measurement.index, inplace=True)
    bus_index = {gid: i for i, gid in element_ids(net.bus, "bus").items()}
    trafo_index = {gid: i for i, gid in element_ids(net.trafo, "trafo").items()}
    for bus, v, sigma in zip(ms.voltages.bus, ms.voltages.v_pu, ms.voltages.sigma_pu, strict=True):
        pp.create_measurement(net, "v", "bus", v, sigma, element=bus_index[str(bus)])
    p = ms.powers
    bus_of = {
        **{i: lo.bus for i, lo in case.network.loads.items()},
        **{i: g.bus for i, g in case.network.generators.items()},
        **{i: g.bus for i, g in case.network.external_grids.items()},
    }
    totals: dict[str, list[float]] = {}
    for terminal, element, pk, qk, sp_, sq in zip(
        p.terminal, p.element, p.p_kw, p.q_kvar, p.sigma_p_kw, p.sigma_q_kvar, strict=True
    ):
        if terminal == "trafo_hv":
            t = trafo_index[str(element)]
            pp.create_measurement(net, "p", "trafo", pk / 1e3, sp_ / 1e3, element=t, side="hv")
            pp.create_measurement(net, "q", "trafo", qk / 1e3, sq / 1e3, element=t, side="hv")
            continue
        sign = 1.0 if terminal == "load" else -1.0  # pandapower bus measurements: consumption positive
        acc = totals.setdefault(bus_of[str(element)], [0.0, 0.0, 0.0, 0.0])
        acc[0] += sign * pk
        acc[1] += sign * qk
        acc[2] += sp_**2
        acc[3] += sq**2
    for bus, (pk, qk, vp, vq) in totals.items():
        pp.create_measurement(net, "p", "bus", pk / 1e3, np.sqrt(vp) / 1e3, element=bus_index[bus])
        pp.create_measurement(net, "q", "bus", qk / 1e3, np.sqrt(vq) / 1e3, element=bus_index[bus])
    return net


def test_agrees_with_pandapowers_estimator(lv: Case) -> None:
    ms = catalogue_measurements(lv.network, lv.truth, lv.injections, rng=np.random.default_rng(3))
    ours = StateEstimator(lv.network).estimate(ms)
    net = _pandapower_measurements(lv, ms)
    assert pp_estimate(net, init="flat", zero_injection="no_inj_bus")
    buses = [element_ids(net.bus, "bus")[i] for i in net.res_bus_est.index]
    position = {b: i for i, b in enumerate(ours.index.buses)}
    theirs = net.res_bus_est.vm_pu.to_numpy()
    np.testing.assert_allclose(ours.v_pu[[position[b] for b in buses]], theirs, atol=1e-3)


def _single_appliance_load(case: Case) -> str:
    buses = [lo.bus for lo in case.network.loads.values()] + [g.bus for g in case.network.generators.values()]
    return next(i for i, lo in case.network.loads.items() if buses.count(lo.bus) == 1)


def test_gross_error_is_detected_and_named(lv: Case) -> None:
    ms = catalogue_measurements(lv.network, lv.truth, lv.injections, rng=np.random.default_rng(11))
    load = _single_appliance_load(lv)
    row = int(np.flatnonzero(ms.powers.element == load)[0])
    p_kw = ms.powers.p_kw.copy()
    p_kw[row] += 30.0  # a meter reading 30 kW too high; voltages alone must expose it
    corrupted = replace(ms, powers=replace(ms.powers, p_kw=p_kw))
    est = StateEstimator(lv.network, reestimate=True).estimate(corrupted)
    assert est.bad_data_suspected and est.objective > est.chi2_threshold
    first = est.suspects[0]
    assert (first.element, first.terminal, first.quantity) == (load, "load", "p_kw")
    assert first.normalised_residual > 3.0
    assert est.p_normalised[row] == pytest.approx(first.normalised_residual)
    assert est.objective_without_suspect is not None and est.objective_without_suspect < est.chi2_threshold


def test_gross_voltage_error_is_named(lv: Case) -> None:
    ms = catalogue_measurements(lv.network, lv.truth, lv.injections, rng=np.random.default_rng(5))
    v = ms.voltages.v_pu.copy()
    v[4] += 0.05
    est = StateEstimator(lv.network).estimate(replace(ms, voltages=replace(ms.voltages, v_pu=v)))
    assert est.bad_data_suspected
    assert (est.suspects[0].element, est.suspects[0].quantity) == (str(ms.voltages.bus[4]), "v_pu")


def test_unobservable_set_is_reported_not_raised(lv: Case) -> None:
    ms = _exact(lv)
    p = ms.powers
    drop_loads = _rows(p, p.terminal != "load")
    est = StateEstimator(lv.network).estimate(replace(ms, powers=drop_loads))
    assert not est.observable and not est.converged
    assert "pseudo_measurements" in est.observability
    assert next(iter(lv.network.loads)) in est.observability
    assert np.isnan(est.v_pu).all()


def test_no_voltage_is_unobservable(lv: Case) -> None:
    ms = _exact(lv)
    no_v = replace(
        ms,
        voltages=replace(
            ms.voltages, **{f: getattr(ms.voltages, f)[:0] for f in ("bus", "v_pu", "sigma_pu", "pseudo")}
        ),
    )
    est = StateEstimator(lv.network).estimate(no_v)
    assert not est.observable and "voltage" in est.observability


def test_pseudo_measurements_restore_observability(lv: Case) -> None:
    ms = _exact(lv)
    p = ms.powers
    measured = _rows(p, p.terminal != "load")
    profile_p = np.concatenate([lv.injections.load_p_kw[0], lv.injections.gen_p_kw[0]])
    profile_q = np.concatenate([lv.injections.load_q_kvar[0], lv.injections.gen_q_kvar[0]])
    pseudo = pseudo_measurements(lv.network, profile_p * 1.2, profile_q * 1.2, exclude=set(measured.element))
    assert set(pseudo.element) == set(lv.network.loads) and pseudo.pseudo.all()
    est = StateEstimator(lv.network).estimate(replace(ms, powers=measured + pseudo))
    assert est.observable and est.converged
    assert np.nanmax(np.abs(est.v_pu - lv.truth.v_pu[0])) < 2e-3
    assert not any(s.element in set(pseudo.element) for s in est.suspects)


def test_unknown_element_says_which(lv: Case) -> None:
    ms = _exact(lv)
    bus = ms.voltages.bus.copy().astype(object)
    bus[0] = "ghost"
    with pytest.raises(ValueError, match="ghost"):
        StateEstimator(lv.network).estimate(replace(ms, voltages=replace(ms.voltages, bus=bus.astype(str))))


def test_demo_network_with_catalogue_devices_and_pseudo_measurements() -> None:
    network = read_scenario(scenario_path("demo")).network
    flow = PowerFlow(network)
    injections = flow.base_injections()
    truth = flow.run(injections).raise_on_failure()
    ms = catalogue_measurements(network, truth, injections, rng=np.random.default_rng(1))
    catalogue = catalogue_of(network)
    meters = catalogue.by_element(DeviceKind.METER)
    assert set(ms.powers.element[ms.powers.terminal == "load"]) == set(meters)
    # A tenth of the meters are offline this cycle: their loads come from profiles instead.
    offline = np.isin(ms.powers.element, list(meters)[::10])
    terminal, _ = appliance_order(network)
    profile_p = np.concatenate(
        [injections.load_p_kw[0], injections.ev_p_kw[0], injections.gen_p_kw[0], injections.battery_p_kw[0]]
    )
    profile_q = np.concatenate(
        [
            injections.load_q_kvar[0],
            np.zeros(
                len(terminal)
                - injections.load_q_kvar.shape[1]
                - injections.gen_q_kvar.shape[1]
                - injections.battery_p_kw.shape[1]
            ),
            injections.gen_q_kvar[0],
            np.zeros(injections.battery_p_kw.shape[1]),
        ]
    )
    online = _rows(ms.powers, ~offline)
    pseudo = pseudo_measurements(network, profile_p, profile_q, exclude=set(online.element))
    est = StateEstimator(network).estimate(replace(ms, powers=online + pseudo))
    assert est.observable and est.converged, est.message
    assert np.nanmax(np.abs(est.v_pu - truth.v_pu[0])) < 5e-3
    assert est.dof > 1000
