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

Training: :meth:`ForecastingMpc.from_scenario` (what ``--controller mpc-forecast`` builds) reads only the
weeks before the study start (:func:`history_before`); :meth:`ForecastingMpc.from_twin` uses the profile year
with the study period left out, as the held-out evaluation does (:mod:`gridmesh.analytics.evaluation`). The
history has no EV charging (EV sessions are only drawn for the study), the study's observations do.

Reserve for forecast error: a peak forecast a little low is a peak not shaved. Each series' forecast error
is measured once, on the last week of its history by a forecaster trained without that week, as an RMS
per hour of day (``sigma``); the LP then plans on ``forecast + reserve · sigma`` so that the battery keeps
energy for the hours where the real load may exceed the forecast.
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
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.errors import GridmeshError
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites
from gridmesh.optim.problem import DispatchProblem
from gridmesh.physics.sensitivity import Sensitivity

if TYPE_CHECKING:
    from gridmesh.sim.twin import StudyTwin

HISTORY_CHUNK_STEPS = 2976
"""Steps of profiles turned into net loads at a time (a month at 15 min): bounds memory on large grids."""

HISTORY_WEEKS = 8
"""Weeks before the study start that :meth:`ForecastingMpc.from_scenario` trains on."""

HOLDOUT = pd.Timedelta(days=7)
"""The end of each history held out to measure the forecast error that sizes the reserve."""

DEFAULT_RESERVE = 1.0
"""Multiples of the measured forecast error added to the forecasts the LP plans on (chosen by measurement:
``benchmarks/bench_mpc.py --forecast``, see docs/benchmarks.md)."""


class ForecastMethod(StrEnum):
    """How :meth:`ForecastingMpc.from_twin` forecasts: the gradient-boosted model or the daily baseline."""

    GBM = "gbm"
    SEASONAL = "same-time-yesterday"


def mpc_horizon(resolution: timedelta, horizon_steps: int) -> Horizon:
    """The MPC's forecast schedule: issued every step, covering the next ``horizon_steps`` steps."""
    return Horizon("mpc", timedelta(0), resolution, timedelta(0), resolution * horizon_steps, latest=True)


def profile_net_loads(scenario: Scenario) -> tuple[pd.DatetimeIndex, FloatArray, dict[str, FloatArray]]:
    """Substation and microgrid net loads (kW, loads − generation, no EV) at every step of the profiles.

    The same gather as the study's profile injections (``control`` may not import ``sim``).

    Returns ``(times, substation, {microgrid: values})``.
    """
    net, profiles = scenario.network, scenario.profiles
    loads, gens = list(net.loads.values()), list(net.generators.values())
    load_p, gen_p = profiles.selector([x.p_profile for x in loads]), profiles.selector([x.profile for x in gens])
    load_scale = np.array([x.p_kw * x.in_service for x in loads])
    gen_scale = np.array([x.p_kw * x.in_service for x in gens])
    sites, fleet = resolve_sites(net), BatteryFleet.of(list(net.batteries.values()))
    index = pd.date_range(profiles.start, periods=profiles.steps, freq=profiles.resolution)
    dt_h = profiles.resolution / timedelta(hours=1)
    balance = SiteBalance()
    substation, by_site = np.zeros(profiles.steps), dict[str, FloatArray]()
    for first in range(0, profiles.steps, HISTORY_CHUNK_STEPS):
        steps = min(HISTORY_CHUNK_STEPS, profiles.steps - first)
        load_kw = load_p.scaled(load_scale, first, steps)
        gen_kw = gen_p.scaled(gen_scale, first, steps)
        chunk = Window(
            net,
            sites,
            index[first : first + steps],
            dt_h,
            load_kw,
            gen_kw,
            np.zeros((steps, len(net.ev_chargers))),
            fleet,
        )
        substation[first : first + steps] = load_kw.sum(axis=1) - gen_kw.sum(axis=1)
        for site in balance.sites(chunk):
            by_site.setdefault(site.site, np.zeros(profiles.steps))[first : first + steps] = site.net_load_kw
    return index, substation, by_site


def net_load_history(twin: StudyTwin) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Substation and microgrid net loads (kW, no EV) over the profile period minus the study.

    Returns ``(substation, {microgrid: series})``; the study's steps are left out (a gap, not zeros).
    """
    index, substation, sites = profile_net_loads(twin.scenario)
    keep = np.ones(len(index), dtype=bool)
    keep[twin.first_step : twin.first_step + twin.steps] = False
    return (
        pd.Series(substation[keep], index=index[keep], name="substation"),
        {name: pd.Series(values[keep], index=index[keep], name=name) for name, values in sites.items()},
    )


def history_before(scenario: Scenario, weeks: int = HISTORY_WEEKS) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Substation and microgrid net loads (kW, no EV) of the ``weeks`` weeks before the study start.

    Every time stamp is before the study's first step. Where the profiles begin less than ``weeks`` weeks
    before the study (the demo starts on the profiles' first day), the missing weeks are read from the end
    of the profile period as the same weeks of the year before, shifted by whole weeks so that weekdays
    match (a typical-year profile repeats); those rows are never the study's own.
    """
    profiles = scenario.profiles
    step = pd.Timedelta(profiles.resolution)
    start, first, end = pd.Timestamp(scenario.time.start), pd.Timestamp(profiles.start), pd.Timestamp(profiles.end)
    wanted = pd.date_range(start - pd.Timedelta(weeks=weeks), start, freq=step, inclusive="left")
    year = pd.Timedelta(weeks=(end - first) // pd.Timedelta(weeks=1))
    source = wanted.where(wanted >= first, wanted + year)
    study_end = start + scenario.steps * step
    valid = np.asarray((source >= first) & (source < end) & ~((source >= start) & (source < study_end)))
    if valid.sum() < pd.Timedelta(days=2) / step:
        raise GridmeshError(
            f"the forecast MPC trains on the {weeks} weeks before the study start ({start:%Y-%m-%d}), but the "
            f"profiles ({first:%Y-%m-%d} … {end:%Y-%m-%d}) hold less than two days of them outside the study: "
            "shorten the study or give profiles that cover the weeks before it"
        )
    positions = np.asarray((source[valid] - first) // step, dtype=np.int64)
    _, substation, sites = profile_net_loads(scenario)
    times = wanted[valid]
    return (
        pd.Series(substation[positions], index=times, name="substation"),
        {name: pd.Series(values[positions], index=times, name=name) for name, values in sites.items()},
    )


def forecast_error_by_hour(
    make: Callable[[], Forecaster], history: pd.Series, horizon_steps: int, holdout: pd.Timedelta = HOLDOUT
) -> FloatArray:
    """RMS forecast error (kW) per hour of day of the forecast step, ``(24,)``, measured on held-out data.

    A fresh forecaster trains on ``history`` without its last ``holdout``, then forecasts that span from
    every one of its steps, reading only the held-out values before each issue time (as in operation).
    Hours without a residual take the overall RMS; zeros when the history is too short to hold one out.
    """
    index = pd.DatetimeIndex(history.index)
    cut = index[-1] - holdout
    train, test = history[index <= cut], history[index > cut]
    if len(train) < 2 or len(test) < 2:
        return np.zeros(24)
    forecaster = make()
    forecaster.fit(train)
    forecaster.observe(test)
    issues = pd.DatetimeIndex(test.index)
    predicted = forecaster.predict_batch(issues, horizon_steps).ravel()
    step = pd.Timedelta(np.diff(index.asi8).min(), unit="ns")
    targets = issues.repeat(horizon_steps) + pd.TimedeltaIndex(np.tile(np.arange(horizon_steps), len(issues)) * step)
    actual = test.reindex(targets).to_numpy(dtype=np.float64)
    known = np.isfinite(actual) & np.isfinite(predicted)
    if not known.any():
        return np.zeros(24)
    squared = (actual - predicted)[known] ** 2
    hours = targets.hour.to_numpy()[known]
    count = np.bincount(hours, minlength=24)
    total = np.bincount(hours, weights=squared, minlength=24)
    return np.sqrt(np.where(count > 0, total / np.maximum(count, 1), squared.mean()))


class ForecastingMpc(ModelPredictiveControl):
    """:class:`ModelPredictiveControl` planning on net-load forecasts issued at each re-planning step.

    ``substation`` and ``sites`` are the training histories (kW, time-indexed; one per level-1 microgrid,
    by site id); ``make`` builds one fresh forecaster per series (default: same time yesterday). Gaps
    that a forecaster cannot fill (NaN, e.g. no yesterday at the start of the data) fall back to the
    history's mean at that time of day. ``network_aware`` defaults to False here: the voltage limits
    would be linearised around the *true* future injections, which a forecast-driven plan must not see.

    ``reserve``: the LP plans on ``forecast + reserve · sigma`` (see the module docstring). ``sigma`` maps
    a series (``None``: the substation, else a site id) to its RMS forecast error per hour of day ``(24,)``,
    kW; a series left out has none. Default: measured by :func:`forecast_error_by_hour` on each history.
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
        reserve: float = DEFAULT_RESERVE,
        sigma: Mapping[str | None, FloatArray] | None = None,
    ) -> None:
        super().__init__(horizon_steps=horizon_steps, replan_every=replan_every, network_aware=network_aware)
        if reserve < 0:
            raise ValueError(f"reserve must be at least 0 (multiples of the forecast error), got {reserve}")
        self.reserve = reserve
        self.forecasters: dict[str | None, Forecaster] = {}
        self.sigma: dict[str | None, FloatArray] = {}
        self._climatology: dict[str | None, pd.Series] = {}
        for key, history in [(None, substation), *sites.items()]:
            forecaster = make()
            forecaster.fit(history)
            self.forecasters[key] = forecaster
            self._climatology[key] = history.groupby(pd.DatetimeIndex(history.index).time).mean()
            if sigma is None:
                self.sigma[key] = forecast_error_by_hour(make, history, horizon_steps)
            elif key in sigma:
                self.sigma[key] = np.asarray(sigma[key], dtype=np.float64)
        self._window_steps = 0
        self._hours = np.zeros(0, dtype=np.int64)
        self._site_names: list[str] = []
        self.issued: dict[int, tuple[FloatArray, FloatArray]] = {}
        """The latest plan's forecasts by re-planning step: substation ``(H,)`` and microgrids ``(H, S)``, kW."""

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario,
        *,
        history_weeks: int = HISTORY_WEEKS,
        method: ForecastMethod = ForecastMethod.GBM,
        max_iter: int = 100,
        train_every: int = 1,
        horizon_steps: int = 96,
        replan_every: int = 1,
        reserve: float = DEFAULT_RESERVE,
    ) -> ForecastingMpc:
        """Forecasters trained on the ``history_weeks`` weeks before the study start (:func:`history_before`).

        What ``--controller mpc-forecast`` runs: nothing at or after the study's first step is trained on.
        """
        substation, sites = history_before(scenario, history_weeks)
        return cls(
            substation,
            sites,
            make=_maker(scenario, method, horizon_steps, max_iter, train_every),
            horizon_steps=horizon_steps,
            replan_every=replan_every,
            reserve=reserve,
        )

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
        reserve: float = DEFAULT_RESERVE,
    ) -> ForecastingMpc:
        """Forecasters trained on the twin's profile period minus the study (see :func:`net_load_history`).

        ``GBM``: gradient boosting with intraday features (latest value at issue) on the MPC's schedule
        (issued every step, ``horizon_steps`` ahead), with solar features where the grid has coordinates.
        """
        substation, sites = net_load_history(twin)
        return cls(
            substation,
            sites,
            make=_maker(twin.scenario, method, horizon_steps, max_iter, train_every),
            horizon_steps=horizon_steps,
            replan_every=replan_every,
            network_aware=network_aware,
            reserve=reserve,
        )

    def plan(self, window: Window) -> Request:
        self._window_steps = window.steps
        return super().plan(window)

    def forecast(self, view: Window) -> HorizonForecast:
        """The truth (for billing peaks on realised steps) plus the forecasts issued at each re-planning step."""
        truth = super().forecast(view)
        names = [s.site for s in self._balance.sites(view)]
        self._hours, self._site_names = np.asarray(view.times.hour, dtype=np.int64), names
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
        self,
        f: HorizonForecast,
        fleet: BatteryFleet,
        horizon: slice,
        limits: Sensitivity | None = None,
        *,
        flexible: FlexibleLoads | None = None,
    ) -> DispatchProblem:
        """The LP of one horizon on the forecasts issued at its first step (never on the truth), plus the reserve."""
        issued = self.issued.get(horizon.start)
        if issued is None:
            raise ValueError(f"no forecast was issued for step {horizon.start} of this plan")
        substation, site = issued
        n = horizon.stop - horizon.start
        hours = self._hours[horizon]
        substation_kw, site_load_kw = f.substation_kw.copy(), f.site_load_kw.copy()
        substation_kw[horizon] = substation[:n] + self.reserve * self._sigma(None)[hours]
        site_sigma = np.zeros((n, len(self._site_names)))
        for k, name in enumerate(self._site_names):
            site_sigma[:, k] = self._sigma(name)[hours]
        site_load_kw[horizon] = site[:n] + self.reserve * site_sigma
        forecast = replace(f, substation_kw=substation_kw, site_load_kw=site_load_kw)
        return super().problem(forecast, fleet, horizon, limits, flexible=flexible)

    def _sigma(self, key: str | None) -> FloatArray:
        return self.sigma.get(key, np.zeros(24))


def _maker(
    scenario: Scenario, method: ForecastMethod, horizon_steps: int, max_iter: int, train_every: int
) -> Callable[[], Forecaster]:
    """A factory of fresh forecasters: gradient boosting on the MPC's schedule, or same time yesterday."""
    if method is not ForecastMethod.GBM:
        return SeasonalNaive
    horizon = mpc_horizon(scenario.profiles.resolution, horizon_steps)
    where = location(scenario.network)

    def make() -> Forecaster:
        return GradientBoosting(horizon, location=where, max_iter=max_iter, train_every=train_every)

    return make
