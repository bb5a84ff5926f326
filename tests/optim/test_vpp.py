"""VPP envelope and disaggregation: hand-computed envelopes, clipping with reasons, and the feasibility
guarantee checked by sampling (every dispatch inside the envelope disaggregates within every limit, the SOC
checked by the battery model and the network by the linear model)."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.devices.battery import BatteryFleet
from gridmesh.optim.lp import LpStatus
from gridmesh.optim.vpp import FloatArray, VppFleet, network_rows
from gridmesh.optim.vpp_disaggregate import Allocation, disaggregate
from gridmesh.optim.vpp_envelope import ClipReason, Direction, fit_award, sample_inside, vpp_envelope
from gridmesh.physics.sensitivity import Sensitivity

DT = 0.25


def two_batteries(
    steps: int = 16, *, soc0: tuple[float, float] = (0.5, 0.5), eta: float = 1.0, **extra: object
) -> VppFleet:
    """100 kWh / 50 kW and 200 kWh / 100 kW, SOC window 0.1–0.9."""
    options: dict[str, object] = {"gen_available_kw": np.zeros((steps, 0)), **extra}
    return VppFleet(
        dt_h=DT,
        battery_ids=("small", "large"),
        e_kwh=np.array([100.0, 200.0]),
        p_max_kw=np.array([50.0, 100.0]),
        eta_charge=np.full(2, eta),
        eta_discharge=np.full(2, eta),
        soc_min=np.full(2, 0.1),
        soc_max=np.full(2, 0.9),
        soc0=np.array(soc0),
        degradation_eur_per_kwh=np.array([0.02, 0.03]),
        **options,  # type: ignore[arg-type]
    )


def test_two_batteries_envelope_is_the_sum_of_the_batteries() -> None:
    env = vpp_envelope(two_batteries())
    np.testing.assert_allclose(env.up_kw, 150.0)  # 50 + 100
    np.testing.assert_allclose(env.down_kw, 150.0)
    assert env.storage_kw == pytest.approx(150.0)
    assert env.energy_below_kwh == pytest.approx(40.0 + 80.0)  # (0.5 − 0.1) × (100 + 200)
    assert env.energy_above_kwh == pytest.approx(40.0 + 80.0)
    assert env.stored_kwh == pytest.approx(150.0)
    # 150 kW for 0.25 h is 37.5 kWh a step; the 120 kWh run out in the fourth step.
    np.testing.assert_allclose(env.energy_up_kwh()[:5], [37.5, 75.0, 112.5, 120.0, 120.0])
    np.testing.assert_allclose(env.share, [1 / 3, 2 / 3])


def test_losses_shrink_the_deliverable_energy_and_costs_are_a_merit_order() -> None:
    env = vpp_envelope(two_batteries(eta=0.95))
    assert env.energy_up_kwh()[-1] == pytest.approx(120.0 * 0.95)  # stored kWh × η_discharge at the grid
    assert env.energy_down_kwh()[-1] == pytest.approx(120.0 / 0.95)
    up = [s for s in env.costs if s.direction is Direction.UP]
    assert [s.resource for s in up] == ["battery small", "battery large"]  # 0.02 before 0.03 €/kWh
    np.testing.assert_allclose(sum(s.kw for s in up), env.up_kw)
    np.testing.assert_allclose(up[0].kw, 50.0)  # its share of the power


def test_unequal_soc_gives_an_inner_envelope() -> None:
    env = vpp_envelope(two_batteries(soc0=(0.2, 0.8)))
    # Shares 1/3 and 2/3: the small battery (10 kWh above its floor) limits discharge to 10 × 3 = 30 kWh,
    # the large one (20 kWh below its ceiling) limits charge to 20 × 1.5 = 30 kWh; the sum is a bound.
    assert env.energy_below_kwh == pytest.approx(30.0)
    assert env.energy_above_kwh == pytest.approx(30.0)
    assert env.energy_below_kwh <= 10.0 + 140.0


def test_award_outside_the_envelope_is_clipped_with_the_shortfall_and_its_reason() -> None:
    env = vpp_envelope(two_batteries(steps=12))
    award = np.r_[np.full(8, 100.0), np.full(4, -200.0)]
    fit = fit_award(env, award)
    # 120 kWh at 100 kW: four full steps (100 kWh), 80 kW in the fifth (20 kWh), nothing after.
    np.testing.assert_allclose(fit.target_kw[:8], [100, 100, 100, 100, 80, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(fit.shortfall_kw[:8], [0, 0, 0, 0, 20, 100, 100, 100], atol=1e-6)
    assert fit.reasons[:4] == ("",) * 4
    assert set(fit.reasons[4:8]) == {ClipReason.STORAGE_EMPTY.value}
    np.testing.assert_allclose(fit.target_kw[8:], -150.0)  # the down capability
    assert set(fit.reasons[8:]) == {ClipReason.DOWN_CAPABILITY.value}
    assert not fit.inside
    alloc = disaggregate(two_batteries(steps=12), award, envelope=env)
    assert alloc.status is LpStatus.OPTIMAL
    np.testing.assert_allclose(alloc.battery_kw.sum(axis=1), fit.target_kw, atol=1e-6)


def test_award_inside_is_delivered_at_least_cost() -> None:
    fleet = two_batteries(steps=4)
    alloc = disaggregate(fleet, np.full(4, 40.0))
    assert alloc.fit.inside
    # The cheaper battery (0.02 €/kWh) serves all 40 kW: 4 steps × 40 kW × 0.25 h × 0.02 €/kWh.
    np.testing.assert_allclose(alloc.battery_kw, [[40.0, 0.0]] * 4, atol=1e-6)
    assert alloc.cost_eur == pytest.approx(0.8)


def test_a_voltage_limit_shrinks_the_envelope_by_hand() -> None:
    steps = 4
    sens = Sensitivity(
        base=np.full((steps, 1), 1.08),
        d_dp=np.array([[4e-4, 2e-4]]),  # pu per kW injected by each battery
        lower=np.array([0.9]),
        upper=np.array([1.1]),
        names=("v bus",),
    )
    env = vpp_envelope(two_batteries(steps=steps, sensitivity=sens))
    # Shares 1/3, 2/3: 4e-4/3 + 2e-4·2/3 = 2.667e-4 pu per kW; 0.02 pu of headroom gives 75 kW up.
    np.testing.assert_allclose(env.up_kw, 75.0)
    np.testing.assert_allclose(env.down_kw, 150.0)  # 0.18 pu below: no limit down
    assert env.limited_by == ("v bus",) * steps


def random_fleet(steps: int, seed: int) -> VppFleet:
    """Three unlike batteries, four generators and 12 network limits, some tight, one already violated."""
    rng = np.random.default_rng(seed)
    b, g, m = 3, 4, 12
    available = rng.uniform(0, 40, size=(steps, g)) * (rng.random((steps, 1)) < 0.7)
    base = rng.uniform(0.965, 1.035, size=(steps, m))
    base[:3, 0] = 1.06  # the VPP must not be asked to fix what it did not cause
    return VppFleet(
        dt_h=DT,
        battery_ids=("a", "b", "c"),
        e_kwh=np.array([60.0, 120.0, 250.0]),
        p_max_kw=np.array([30.0, 50.0, 125.0]),
        eta_charge=np.array([0.95, 0.9, 0.97]),
        eta_discharge=np.array([0.93, 0.9, 0.96]),
        soc_min=np.array([0.1, 0.2, 0.05]),
        soc_max=np.array([0.9, 0.95, 1.0]),
        soc0=np.array([0.3, 0.6, 0.5]),
        degradation_eur_per_kwh=np.array([0.01, 0.03, 0.02]),
        generator_ids=tuple(f"g{k}" for k in range(g)),
        gen_available_kw=available,
        curtailment_eur_per_kwh=0.05,
        sensitivity=Sensitivity(
            base=base,
            d_dp=rng.normal(0, 1.5e-4, size=(m, b + g)),
            lower=np.full(m, 0.95),
            upper=np.full(m, 1.05),
            names=tuple(f"v{k}" for k in range(m)),
        ),
    )


def assert_within_every_limit(fleet: VppFleet, alloc: Allocation, target: FloatArray) -> None:
    """Independent checks: the battery model (not the LP) realises the powers, and the linear network
    model keeps every limit no tighter than the baseline."""
    assert alloc.status is LpStatus.OPTIMAL, alloc.message
    tol = 1e-5
    np.testing.assert_allclose(alloc.battery_kw.sum(axis=1) - alloc.curtail_kw.sum(axis=1), target, atol=1e-5)
    assert (np.abs(alloc.battery_kw) <= fleet.p_max_kw + tol).all()
    assert (alloc.curtail_kw >= -tol).all() and (alloc.curtail_kw <= fleet.gen_available_kw + tol).all()
    devices = BatteryFleet(
        ids=fleet.battery_ids,
        e_kwh=np.array(fleet.e_kwh),
        p_kw=np.array(fleet.p_max_kw),
        eta_charge=np.array(fleet.eta_charge),
        eta_discharge=np.array(fleet.eta_discharge),
        soc_min=np.array(fleet.soc_min),
        soc_max=np.array(fleet.soc_max),
        soc=np.array(fleet.soc0),
    )
    delivered, soc = devices.run(alloc.battery_kw, fleet.dt_h)
    np.testing.assert_allclose(delivered, alloc.battery_kw, atol=1e-4)  # nothing clamped by the device
    np.testing.assert_allclose(soc, alloc.soc, atol=1e-6)
    sens = fleet.sensitivity
    assert sens is not None
    predicted = sens.predict(np.hstack([alloc.battery_kw, -alloc.curtail_kw]))
    assert (predicted <= np.maximum(sens.upper, sens.base) + 1e-7).all()
    assert (predicted >= np.minimum(sens.lower, sens.base) - 1e-7).all()


def test_every_dispatch_inside_the_envelope_disaggregates_within_every_limit() -> None:
    fleet = random_fleet(steps=24, seed=3)
    env = vpp_envelope(fleet)
    assert network_rows(fleet).size > 0  # some limits can bind: the test exercises the network part
    assert env.up_kw.max() > 0 and env.down_kw.max() > 0
    samples = sample_inside(env, 200, seed=11)
    assert samples.shape == (200, 24)
    assert np.abs(samples).max() > 0.99 * env.up_kw.max()  # the corners reach the bounds
    for award in samples:
        alloc = disaggregate(fleet, award, envelope=env)
        assert alloc.fit.inside, alloc.fit.reasons
        assert_within_every_limit(fleet, alloc, award)


def test_the_envelope_is_not_needlessly_small_where_nothing_binds() -> None:
    fleet = random_fleet(steps=8, seed=5)
    loose = VppFleet(**{**fleet.__dict__, "sensitivity": None})
    env = vpp_envelope(loose)
    share = env.share
    np.testing.assert_allclose(env.up_kw, np.min(fleet.p_max_kw / share))
    np.testing.assert_allclose(env.curtail_kw, fleet.gen_available_kw.sum(axis=1))


def test_malformed_fleet_names_the_field() -> None:
    with pytest.raises(ValueError, match="soc0 must have shape"):
        two_batteries(soc0=(0.5,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="soc_min ≤ soc0 ≤ soc_max ≤ 1 must hold; not for small"):
        two_batteries(soc0=(0.05, 0.5))
    with pytest.raises(ValueError, match="award must be 16 finite values"):
        fit_award(vpp_envelope(two_batteries()), np.zeros(3))
