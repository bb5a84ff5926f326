"""The control cycle: controllers request, arbitration merges, the safety layer decides.

Per window: every controller plans on the frozen process image (a failing controller is isolated,
reported and skipped, the others go on); arbitration merges requests by priority (a higher-priority
limit narrows every lower-priority setpoint; for curtailment and flexible loads the highest-priority
opinion wins); the safety layer then walks the steps and clamps each battery setpoint to the battery's
rating, its SOC window, its ramp limit and the microgrid's PCC rating, each curtailment to the
generator's available power (none for generators that may not be curtailed), each load shift to the
load's flexibility and backlog window, and logs every refusal with its reason. Time per controller is
measured.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridmesh.control.controller import Controller, FloatArray, Request, Window
from gridmesh.control.site_balance import SiteBalance, share_by_rating
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.flexible_load import FlexibleLoads

TOLERANCE_KW = 1e-6


def arbitrate(requests: Sequence[tuple[int, Request]], shape: tuple[int, int]) -> FloatArray:
    """One setpoint per step and battery from prioritised requests (NaN where nobody asked).

    Limits are merged from the highest priority down; a lower-priority limit that contradicts a
    higher one is ignored. The winning setpoint is the highest-priority one, clipped into the limits.
    """
    setpoint = np.full(shape, np.nan)
    lower = np.full(shape, -np.inf)
    upper = np.full(shape, np.inf)
    for _, request in sorted(requests, key=lambda item: -item[0]):
        setpoint = np.where(np.isnan(setpoint), request.setpoint_kw, setpoint)
        if request.lower_kw is not None:
            proposed = np.fmax(lower, request.lower_kw)
            lower = np.where(proposed <= upper, proposed, lower)
        if request.upper_kw is not None:
            proposed = np.fmin(upper, request.upper_kw)
            upper = np.where(proposed >= lower, proposed, upper)
    bounded = np.isfinite(lower) | np.isfinite(upper)
    setpoint = np.where(np.isnan(setpoint) & bounded, 0.0, setpoint)  # a bare limit still moves an idle battery
    clipped: FloatArray = np.clip(setpoint, lower, upper)
    return clipped


def first_opinion(opinions: Sequence[tuple[int, FloatArray | None]], shape: tuple[int, int]) -> FloatArray:
    """Per step and element the highest-priority value that is not NaN (NaN where nobody has an opinion)."""
    merged = np.full(shape, np.nan)
    for _, values in sorted(opinions, key=lambda item: -item[0]):
        if values is not None:
            merged = np.where(np.isnan(merged), values, merged)
    return merged


def _refusals(
    times: pd.DatetimeIndex, ids: Sequence[str], requested: FloatArray, applied: FloatArray, reason: FloatArray
) -> pd.DataFrame:
    rows, cols = np.nonzero(reason != "")
    return pd.DataFrame(
        {
            "time": times[rows],
            "device": np.array(ids, dtype=object)[cols],
            "requested_kw": requested[rows, cols],
            "applied_kw": applied[rows, cols],
            "reason": reason[rows, cols].astype(str),
        }
    )


@dataclass
class CycleResult:
    """What the devices did in a window, and what the cycle refused or lost on the way.

    ``curtail_kw`` (steps, generators) is generation held back; ``flex_kw`` (steps, flexible loads) the
    consumption deferred (+) or caught up (−); ``refusals`` has one row per clamped request, its
    ``device`` a battery, generator or load id.
    """

    battery_kw: FloatArray
    soc: FloatArray
    refusals: pd.DataFrame
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    curtail_kw: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    flex_kw: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass
class SafetyLayer:
    """Clamps setpoints to what is safe; the last word before a device."""

    ramp_kw_per_step: FloatArray | None = None  # per battery; None: no ramp limit
    pcc_limit_kw: Mapping[str, float] = field(default_factory=dict)  # per microgrid
    _balance: SiteBalance = field(default_factory=SiteBalance)
    # The power applied last, carried across windows (study windows, live steps): a ramp limit
    # continues from it instead of from zero at every window start.
    _last: FloatArray | None = None

    def reset(self) -> None:
        """Forget the last applied power (a new episode or study starts from idle)."""
        self._last = None

    def _pcc_bounds(self, window: Window, n: int) -> tuple[FloatArray, FloatArray]:
        """Battery bounds that keep each microgrid's PCC flow within its rating: |net − Σp| ≤ limit."""
        lower = np.full((window.steps, n), -np.inf)
        upper = np.full((window.steps, n), np.inf)
        for site in self._balance.sites(window):
            limit = self.pcc_limit_kw.get(site.site)
            if limit is None or not site.batteries.size:
                continue
            share = share_by_rating(window, site.batteries)
            lower[:, site.batteries] = (site.net_load_kw - limit)[:, None] * share
            upper[:, site.batteries] = (site.net_load_kw + limit)[:, None] * share
        return lower, upper

    def apply(
        self, window: Window, fleet: BatteryFleet, setpoint: FloatArray
    ) -> tuple[FloatArray, FloatArray, pd.DataFrame]:
        """Step through the window: clamp, apply to the fleet, log refusals. Returns power, SOC, refusals."""
        steps, n = setpoint.shape
        pcc_lo, pcc_hi = self._pcc_bounds(window, n)
        power = np.zeros((steps, n))
        soc = np.zeros((steps, n))
        reason = np.full((steps, n), "", dtype=object)
        previous = self._last if self._last is not None and self._last.shape == (n,) else np.zeros(n)
        for t in range(steps):
            wanted = np.nan_to_num(setpoint[t], nan=0.0)
            discharge_max, charge_max = fleet.limits_kw(window.dt_h)
            p = np.clip(wanted, -charge_max, discharge_max)
            # Clamped below the rating means the SOC window was the binding limit.
            why = np.where(np.abs(p) < fleet.p_kw - TOLERANCE_KW, "SOC window", "power rating")
            reason[t] = np.where(np.abs(p - wanted) > TOLERANCE_KW, why, "")
            clipped = np.clip(p, pcc_lo[t], pcc_hi[t])
            reason[t] = np.where(np.abs(clipped - p) > TOLERANCE_KW, "PCC rating", reason[t])
            p = clipped
            if self.ramp_kw_per_step is not None:
                ramped = np.clip(p, previous - self.ramp_kw_per_step, previous + self.ramp_kw_per_step)
                reason[t] = np.where(np.abs(ramped - p) > TOLERANCE_KW, "ramp limit", reason[t])
                p = ramped
            power[t] = fleet.step(p, window.dt_h)
            soc[t] = fleet.soc
            previous = power[t]
        self._last = previous.copy()
        return power, soc, _refusals(window.times, fleet.ids, setpoint, power, reason)

    @staticmethod
    def curtail(window: Window, wanted: FloatArray) -> tuple[FloatArray, pd.DataFrame]:
        """Curtailment within ``[0, available]``, and none at all where a generator may not be curtailed."""
        generators = list(window.network.generators.values())
        allowed = np.array([g.curtailable for g in generators], dtype=bool)
        request = np.nan_to_num(wanted, nan=0.0)
        applied = np.where(allowed, np.clip(request, 0.0, np.maximum(window.gen_p_kw, 0.0)), 0.0)
        moved = np.abs(applied - request) > TOLERANCE_KW
        reason = np.where(moved, np.where(allowed, "available power", "not curtailable"), "").astype(object)
        ids = [g.id for g in generators]
        return applied, _refusals(window.times, ids, wanted, applied, reason)

    @staticmethod
    def shift(window: Window, flexible: FlexibleLoads, wanted: FloatArray) -> tuple[FloatArray, pd.DataFrame]:
        """Step the flexible loads through the window (NaN: they catch up what they owe), logging clamps."""
        load = window.load_p_kw[:, flexible.columns]
        applied = np.zeros_like(wanted)
        for t in range(window.steps):
            applied[t] = flexible.step(wanted[t], load[t], window.dt_h)
        reason = np.where(
            ~np.isnan(wanted) & (np.abs(applied - np.nan_to_num(wanted)) > TOLERANCE_KW), "flexibility window", ""
        ).astype(object)
        return applied, _refusals(window.times, flexible.ids, wanted, applied, reason)


def _check_shapes(request: Request, window: Window, shape: tuple[int, int]) -> None:
    flexible = 0 if window.flexible is None else len(window.flexible)
    expected = {
        "setpoint_kw": shape,
        "curtail_kw": (window.steps, len(window.network.generators)),
        "flex_kw": (window.steps, flexible),
    }
    for name, want in expected.items():
        value = getattr(request, name)
        if value is not None and value.shape != want:
            raise ValueError(f"request {name} has shape {value.shape}, expected {want}")


class ControlCycle:
    """Controllers in scheduler order (priority, then the order given), arbitration and safety."""

    def __init__(self, controllers: Sequence[Controller], safety: SafetyLayer | None = None) -> None:
        self.controllers = list(controllers)
        self.safety = safety or SafetyLayer()
        self.isolated: dict[str, str] = {}

    def run(self, window: Window, fleet: BatteryFleet, flexible: FlexibleLoads | None = None) -> CycleResult:
        """One window: plan, arbitrate, clamp and apply to ``fleet`` and ``flexible`` (the real devices)."""
        shape = (window.steps, len(fleet))
        requests: list[tuple[int, Request]] = []
        seconds: dict[str, float] = {}
        failures: list[str] = []
        for controller in self.controllers:
            if controller.name in self.isolated:
                continue
            started = time.perf_counter()
            try:
                request = controller.plan(window)
                _check_shapes(request, window, shape)
                requests.append((controller.priority, request))
            except Exception as exc:  # a failing controller must not stop the cycle
                summary = f"{controller.name}: {type(exc).__name__}: {exc}"
                self.isolated[controller.name] = "".join(traceback.format_exception_only(exc)).strip()
                failures.append(summary)
            seconds[controller.name] = time.perf_counter() - started
        started = time.perf_counter()
        setpoint = arbitrate(requests, shape)
        power, soc, refusals = self.safety.apply(window, fleet, setpoint)
        wanted_curtail = first_opinion(
            [(k, r.curtail_kw) for k, r in requests], (window.steps, len(window.network.generators))
        )
        curtail, curtail_refusals = self.safety.curtail(window, wanted_curtail)
        shift = np.zeros((window.steps, 0))
        frames = [refusals, curtail_refusals]
        if flexible is not None:
            wanted_shift = first_opinion([(k, r.flex_kw) for k, r in requests], (window.steps, len(flexible)))
            shift, shift_refusals = self.safety.shift(window, flexible, wanted_shift)
            frames.append(shift_refusals)
        seconds["arbitration+safety"] = time.perf_counter() - started
        frames = [f for f in frames if len(f)] or frames[:1]
        return CycleResult(power, soc, pd.concat(frames, ignore_index=True), failures, seconds, curtail, shift)
