"""MPC on forecasts: the rolling-horizon battery plan fed by forecasters instead of the study's true future.

:class:`~gridmesh.control.mpc.ModelPredictiveControl` plans on the window's look-ahead, which studies fill
with the truth (perfect forecasts). :class:`ForecastingMpc` keeps the same LP but replaces the net loads
it plans on (the substation's and each microgrid's) by forecasts issued at every re-planning instant:
the plan made at step ``t`` sees, for steps ``t … t+H-1``, a forecast issued at ``times[t]``. Prices come
from the tariff (known in advance); billing peaks are tracked on the realised values, as a meter would.

Each window, the forecasters are first told the window's realised net loads (``observe``) and then asked
once per series for every issue time of the window (``predict_batch``). That is what operation sees: the
forecaster contract (:mod:`gridmesh.analytics.forecast`) guarantees a forecast issued at ``τ`` only reads
observations before ``τ``, so the later steps of the window are invisible to earlier issue times, and
nothing beyond the window (the look-ahead) is ever observed.

Training (:meth:`ForecastingMpc.from_twin`) uses the scenario's profile year with the study period left
out, as the held-out evaluation does (:mod:`gridmesh.analytics.evaluation`); the history has no EV
charging (EV sessions are only drawn for the study), the study's observations do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridmesh.analytics.forecast import Forecaster, GradientBoosting, Horizon, SeasonalNaive
from gridmesh.analytics.targets import location
from gridmesh.control.controller import FloatArray, Request, Window
from gridmesh.control.mpc import HorizonForecast, ModelPredictiveControl
from gridmesh.control.site_balance import SiteBalance
from gridmesh.devices.battery import BatteryFleet
from gridmesh.optim.problem import DispatchProblem
from gridmesh.physics.sensitivity import Sensitivity

if TYPE_CHECKING:
    from gridmesh.sim.twin import StudyTwin

HISTORY_CHUNK_STEPS = 2976
"""Steps of profiles turned into net loads at a time (a month at 15 min): bounds memory on large grids."""


class ForecastMethod(StrEnum):
    """How :meth:`ForecastingMpc.from_twin` forecasts: the gradient-boosted model or the daily baseline."""

    GBM = "gbm"
    SEASONAL = "same-time-yesterday"


def mpc_horizon(resolution: timedelta, horizon_steps: int) -> Horizon:
    """The MPC's forecast schedule: issued every step, covering the next ``horizon_steps`` steps."""
    return Horizon("mpc", timedelta(0), resolution, timedelta(0), resolution * horizon_steps, latest=True)


def net_load_history(twin: StudyTwin) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Substation and microgrid net loads (kW, loads − generation, no EV) over the profile period minus the study.

    Returns ``(substation, {microgrid: series})``; the study's steps are left out (a gap, not zeros).
    """
    profiles = twin.scenario.profiles
    index = pd.date_range(profiles.start, periods=profiles.steps, freq=profiles.resolution)
    balance = SiteBalance()
    substation, sites = np.zeros(profiles.steps), dict[str, FloatArray]()
    for first in range(0, profiles.steps, HISTORY_CHUNK_STEPS):
        steps = min(HISTORY_CHUNK_STEPS, profiles.steps - first)
        base = twin.injections.window(first, steps)
        chunk = Window(
            twin.scenario.network,
            twin.sites,
            index[first : first + steps],
            twin.dt_h,
            base.load_p_kw,
            base.gen_p_kw,
            np.zeros((steps, len(twin.ev_chargers))),
            twin.fleet,
        )
        substation[first : first + steps] = base.load_p_kw.sum(axis=1) - base.gen_p_kw.sum(axis=1)
        for site in balance.sites(chunk):
            sites.setdefault(site.site, np.zeros(profiles.steps))[first : first + steps] = site.net_load_kw
    keep = np.ones(profiles.steps, dtype=bool)
    keep[twin.first_step : twin.first_step + twin.steps] = False
    return (
        pd.Series(substation[keep], index=index[keep], name="substation"),
        {name: pd.Series(values[keep], index=index[keep], name=name) for name, values in sites.items()},
    )


class ForecastingMpc(ModelPredictiveControl):
    """:class:`ModelPredictiveControl` planning on net-load forecasts issued at each re-planning step.

    ``substation`` and ``sites`` are the training histories (kW, time-indexed; one per level-1 microgrid,
    by site id); ``make`` builds one fresh forecaster per series (default: same time yesterday). Gaps
    that a forecaster cannot fill (NaN, e.g. no yesterday at the start of the data) fall back to the
    history's mean at that time of day. ``network_aware`` defaults to False here: the voltage limits
    would be linearised around the *true* future injections, which a forecast-driven plan must not see.
    """

    name = "mpc-forecast"

    def __init__(
        self,
        substation: pd.Series,
        sites: Mapping[str, pd.Series],
        *,
        make: Callable[[], Forecaster] = SeasonalNaive,
        horizon_steps: int = 96,
        replan_every: int = 1,
        network_aware: bool = False,
    ) -> None:
        super().__init__(horizon_steps=horizon_steps, replan_every=replan_every, network_aware=network_aware)
        self.forecasters: dict[str | None, Forecaster] = {}
        self._climatology: dict[str | None, pd.Series] = {}
        for key, history in [(None, substation), *sites.items()]:
            forecaster = make()
            forecaster.fit(history)
            self.forecasters[key] = forecaster
            self._climatology[key] = history.groupby(pd.DatetimeIndex(history.index).time).mean()
        self._window_steps = 0
        self.issued: dict[int, tuple[FloatArray, FloatArray]] = {}
        """The latest plan's forecasts by re-planning step: substation ``(H,)`` and microgrids ``(H, S)``, kW."""

    @classmethod
    def from_twin(
        cls,
        twin: StudyTwin,
        *,
        method: ForecastMethod = ForecastMethod.GBM,
        max_iter: int = 100,
        train_every: int = 1,
        horizon_steps: int = 96,
        replan_every: int = 1,
        network_aware: bool = False,
    ) -> ForecastingMpc:
        """Forecasters trained on the twin's profile period minus the study (see :func:`net_load_history`).

        ``GBM``: gradient boosting with intraday features (latest value at issue) on the MPC's schedule
        (issued every step, ``horizon_steps`` ahead), with solar features where the grid has coordinates.
        """
        substation, sites = net_load_history(twin)
        make: Callable[[], Forecaster]
        if method is ForecastMethod.GBM:
            horizon = mpc_horizon(twin.scenario.profiles.resolution, horizon_steps)
            where = location(twin.scenario.network)

            def make() -> Forecaster:
                return GradientBoosting(horizon, location=where, max_iter=max_iter, train_every=train_every)
        else:
            make = SeasonalNaive
        return cls(
            substation,
            sites,
            make=make,
            horizon_steps=horizon_steps,
            replan_every=replan_every,
            network_aware=network_aware,
        )

    def plan(self, window: Window) -> Request:
        self._window_steps = window.steps
        return super().plan(window)

    def forecast(self, view: Window) -> HorizonForecast:
        """The truth (for billing peaks on realised steps) plus the forecasts issued at each re-planning step."""
        truth = super().forecast(view)
        names = [s.site for s in self._balance.sites(view)]
        # the window's own steps, realised by the end of this plan (outside a plan: one issue at the start)
        done = min(self._window_steps or 1, view.steps)
        realised = view.times[:done]
        self.forecasters[None].observe(pd.Series(truth.substation_kw[:done], index=realised))
        for k, name in enumerate(names):
            self.forecasters[name].observe(pd.Series(truth.site_load_kw[:done, k], index=realised))
        starts = np.arange(0, done, self.replan_every)
        issues = pd.DatetimeIndex(view.times[starts])
        step = pd.Timedelta(hours=view.dt_h)
        substation = self._predict(None, issues, step)
        site = (  # (issues, H, S)
            np.stack([self._predict(name, issues, step) for name in names], axis=-1)
            if names
            else np.zeros((len(issues), self.horizon_steps, 0))
        )
        self.issued = {int(t): (substation[i], site[i]) for i, t in enumerate(starts)}
        return truth

    def _predict(self, key: str | None, issues: pd.DatetimeIndex, step: pd.Timedelta) -> FloatArray:
        values = self.forecasters[key].predict_batch(issues, self.horizon_steps)
        missing = np.isnan(values)
        if missing.any():
            targets = issues.repeat(self.horizon_steps) + pd.TimedeltaIndex(
                np.tile(np.arange(self.horizon_steps), len(issues)) * step
            )
            typical = self._climatology[key].reindex(targets.time).to_numpy(dtype=np.float64)
            values = np.where(missing, typical.reshape(values.shape), values)
        return np.nan_to_num(values)

    def problem(
        self, f: HorizonForecast, fleet: BatteryFleet, horizon: slice, limits: Sensitivity | None = None
    ) -> DispatchProblem:
        """The LP of one horizon on the forecasts issued at its first step (never on the truth)."""
        issued = self.issued.get(horizon.start)
        if issued is None:
            raise ValueError(f"no forecast was issued for step {horizon.start} of this plan")
        substation, site = issued
        n = horizon.stop - horizon.start
        substation_kw, site_load_kw = f.substation_kw.copy(), f.site_load_kw.copy()
        substation_kw[horizon], site_load_kw[horizon] = substation[:n], site[:n]
        return super().problem(
            replace(f, substation_kw=substation_kw, site_load_kw=site_load_kw), fleet, horizon, limits
        )
