"""Synchronisation check before a PCC closes an island back onto the grid (synch-check relay, ANSI 25).

The breaker may close only while voltage magnitude, frequency and phase angle across it are within
limits. The default limits are IEEE 1547-2018 Table 5 (synchronisation parameter limits for synchronous
interconnection, by the aggregate rating of the DER), which typical synch-check relay settings follow.

Resynchronisation is modelled as a synchronising unit does it: the grid-forming unit moves its voltage
to the grid's and its frequency to the grid's plus a small slip (half the frequency limit, signed to close
the angle the short way); the angle then slides into the window and the breaker closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEGREES_PER_CYCLE = 360.0


@dataclass(frozen=True)
class SyncLimits:
    """Largest differences across the open breaker at which it may close (pu, Hz, degrees)."""

    dv_pu: float
    df_hz: float
    dangle_deg: float


def ieee1547_limits(rating_kva: float) -> SyncLimits:
    """IEEE 1547-2018 Table 5 for an aggregate DER rating: ≤ 500 kVA, ≤ 1500 kVA, above."""
    if rating_kva <= 500.0:
        return SyncLimits(dv_pu=0.10, df_hz=0.3, dangle_deg=20.0)
    if rating_kva <= 1500.0:
        return SyncLimits(dv_pu=0.05, df_hz=0.2, dangle_deg=15.0)
    return SyncLimits(dv_pu=0.03, df_hz=0.1, dangle_deg=10.0)


def wrap_deg(angle_deg: float) -> float:
    """An angle in (−180°, 180°]."""
    wrapped = (angle_deg + 180.0) % DEGREES_PER_CYCLE - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


@dataclass(frozen=True)
class SideState:
    """Voltage magnitude (pu), frequency (Hz) and phase angle (degrees) on one side of the breaker."""

    v_pu: float
    f_hz: float
    angle_deg: float


@dataclass(frozen=True)
class SyncCheck:
    """Differences island − grid and the verdict; ``reasons`` names each limit that is exceeded."""

    dv_pu: float
    df_hz: float
    dangle_deg: float
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return not self.reasons


def sync_check(island: SideState, grid: SideState, limits: SyncLimits) -> SyncCheck:
    """May the PCC close now? Every difference must lie within its limit (boundaries included)."""
    dv, df = island.v_pu - grid.v_pu, island.f_hz - grid.f_hz
    da = wrap_deg(island.angle_deg - grid.angle_deg)
    reasons = tuple(
        f"{name} {value:+.4g} outside ±{limit:g}"
        for name, value, limit in (
            ("|ΔV| (pu)", dv, limits.dv_pu),
            ("|Δf| (Hz)", df, limits.df_hz),
            ("|Δθ| (°)", da, limits.dangle_deg),
        )
        if abs(value) > limit
    )
    return SyncCheck(dv_pu=dv, df_hz=df, dangle_deg=da, reasons=reasons)


@dataclass(frozen=True)
class Resync:
    """How the island went back: seconds from the start of synchronising to the breaker closing."""

    before: SyncCheck  # at the moment synchronising starts
    at_close: SyncCheck
    seconds: float


def synchronise(
    island: SideState, grid: SideState, limits: SyncLimits, *, ramp_hz_per_s: float = 0.1, slip_fraction: float = 0.5
) -> Resync:
    """Bring the island into the window and close: frequency ramps at ``ramp_hz_per_s`` to the grid's ± slip.

    The slip is ``slip_fraction`` of the frequency limit. During the ramp the angle keeps drifting at the
    mean frequency difference; after it, at the slip, until it reaches the edge of the angle window.
    """
    if not 0.0 < slip_fraction < 1.0:
        raise ValueError("slip_fraction must lie strictly between 0 and 1")
    before = sync_check(island, grid, limits)
    if before.allowed:
        return Resync(before=before, at_close=before, seconds=0.0)
    angle = before.dangle_deg
    slip = -slip_fraction * limits.df_hz if angle > 0 else slip_fraction * limits.df_hz
    ramp_s = abs(before.df_hz - slip) / ramp_hz_per_s
    angle = wrap_deg(angle + DEGREES_PER_CYCLE * 0.5 * (before.df_hz + slip) * ramp_s)
    # Slide the angle into the window the short way at |slip| (re-signed if the ramp carried it across 0).
    slip = -abs(slip) if angle > 0 else abs(slip)
    slide_s = max(abs(angle) - limits.dangle_deg, 0.0) / (DEGREES_PER_CYCLE * abs(slip))
    close_angle = math.copysign(min(abs(angle), limits.dangle_deg), angle)  # the window's edge, exactly
    at_close = sync_check(SideState(grid.v_pu, grid.f_hz + slip, grid.angle_deg + close_angle), grid, limits)
    return Resync(before=before, at_close=at_close, seconds=ramp_s + slide_s)
