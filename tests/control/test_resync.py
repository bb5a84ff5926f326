"""Synchronisation check (IEEE 1547-2018 Table 5) and the resynchronisation time, by hand."""

from __future__ import annotations

import pytest

from gridmesh.control.resync import SideState, SyncLimits, ieee1547_limits, sync_check, synchronise, wrap_deg

GRID = SideState(v_pu=1.0, f_hz=50.0, angle_deg=0.0)
SMALL = ieee1547_limits(200.0)


def test_ieee1547_table5_by_rating() -> None:
    assert ieee1547_limits(500.0) == SyncLimits(dv_pu=0.10, df_hz=0.3, dangle_deg=20.0)
    assert ieee1547_limits(501.0) == SyncLimits(dv_pu=0.05, df_hz=0.2, dangle_deg=15.0)
    assert ieee1547_limits(1500.0) == SyncLimits(dv_pu=0.05, df_hz=0.2, dangle_deg=15.0)
    assert ieee1547_limits(2000.0) == SyncLimits(dv_pu=0.03, df_hz=0.1, dangle_deg=10.0)


def test_wrap_deg() -> None:
    assert wrap_deg(190.0) == pytest.approx(-170.0)
    assert wrap_deg(-180.0) == 180.0
    assert wrap_deg(725.0) == pytest.approx(5.0)


def test_allowed_within_every_limit_boundaries_included() -> None:
    check = sync_check(SideState(1.05, 50.2, 15.0), GRID, SMALL)
    assert check.allowed and check.reasons == ()
    assert check.dv_pu == pytest.approx(0.05) and check.df_hz == pytest.approx(0.2) and check.dangle_deg == 15.0
    assert sync_check(SideState(0.9, 49.7, -20.0), GRID, SMALL).allowed


@pytest.mark.parametrize(
    ("island", "what"),
    [
        (SideState(1.0, 50.0, 25.0), "Δθ"),
        (SideState(1.0, 50.0, -160.0), "Δθ"),
        (SideState(1.0, 50.35, 0.0), "Δf"),
        (SideState(1.0, 49.6, 0.0), "Δf"),
        (SideState(1.12, 50.0, 0.0), "ΔV"),
    ],
)
def test_refused_outside_a_limit(island: SideState, what: str) -> None:
    check = sync_check(island, GRID, SMALL)
    assert not check.allowed
    assert len(check.reasons) == 1 and what in check.reasons[0]


def test_the_angle_is_compared_across_the_wrap() -> None:
    # 350° on the island and 5° on the grid are 15° apart, not 345°.
    assert sync_check(SideState(1.0, 50.0, 350.0), SideState(1.0, 50.0, 5.0), SMALL).allowed


def test_resync_time_when_the_ramp_alone_brings_the_angle_in() -> None:
    # Δθ = +50°, Δf = 0: slip −0.15 Hz reached after 0.15/0.1 = 1.5 s; meanwhile the angle moves by
    # 360·(0 − 0.15)/2·1.5 = −40.5° to 9.5°, inside the ±20° window: close at 1.5 s.
    r = synchronise(SideState(1.03, 50.0, 50.0), GRID, SMALL, ramp_hz_per_s=0.1)
    assert not r.before.allowed
    assert r.seconds == pytest.approx(1.5)
    assert r.at_close.allowed and r.at_close.dangle_deg == pytest.approx(9.5)


def test_resync_time_with_a_slide_after_the_ramp() -> None:
    # Δθ = +170°: after the 1.5 s ramp 129.5°; then at 0.15 Hz (54°/s) to 20°: (129.5 − 20)/54 s more.
    r = synchronise(SideState(1.0, 50.0, 170.0), GRID, SMALL, ramp_hz_per_s=0.1)
    assert r.seconds == pytest.approx(1.5 + 109.5 / 54.0)
    assert r.at_close.allowed and r.at_close.dangle_deg == pytest.approx(20.0)


def test_no_wait_when_already_in_sync() -> None:
    r = synchronise(SideState(1.01, 50.1, -3.0), GRID, SMALL)
    assert r.seconds == 0.0 and r.at_close == r.before


def test_a_bad_slip_fraction_is_refused() -> None:
    with pytest.raises(ValueError, match="slip_fraction"):
        synchronise(SideState(1.0, 50.0, 90.0), GRID, SMALL, slip_fraction=1.0)
