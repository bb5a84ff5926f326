"""Reinforcement-learning access: a Gymnasium environment over the study twin and control cycle.

One env step is one profile step (15 min). The agent's action is a battery setpoint that enters the
*same* control cycle as a study's controllers, as the highest-priority request, so the safety layer
clamps it exactly as in a study (rating, SOC window, PCC rating) and logs refusals. The twin then solves
the step's power flow (a batch of one) and the reward is built from the study's KPI quantities.

Spaces and reward are documented in ``docs/rl.md``. Needs the optional extra ``gridmesh[rl]``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gridmesh.control.controller import Request, Window
from gridmesh.control.cycle import ControlCycle, SafetyLayer
from gridmesh.control.site_balance import SiteBalance
from gridmesh.control.volt_var import InverterCurves
from gridmesh.devices.ev import draw_sessions
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.io.builtin import scenario_path
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.scenario import Scenario
from gridmesh.model.validation import assert_valid
from gridmesh.physics.powerflow import FloatArray, PowerFlowResult
from gridmesh.sim.injections import ProfileWindow
from gridmesh.sim.twin import StudyTwin

__all__ = ["GridmeshEnv", "Measurement", "PolicyController", "RewardParts"]

ObsArray = npt.NDArray[np.float32]
Policy = Callable[[ObsArray], npt.ArrayLike]

POWER_BOUND = 5.0  # scaled powers (kW ÷ rated kW) are clipped to ±this
PRICE_BOUND = 10.0  # €/kWh
V_BOUNDS = (0.5, 1.5)  # pu
AGENT_PRIORITY = 1_000_000  # above every built-in controller


@dataclass(frozen=True)
class Measurement:
    """What the grid showed at the end of a step: substation net import (kW) and bus voltage extremes (pu)."""

    grid_import_kw: float = 0.0
    v_min_pu: float = 1.0
    v_max_pu: float = 1.0


@dataclass(frozen=True)
class RewardParts:
    """The costs of one step (€); the reward is ``-total``."""

    energy_cost_eur: float
    peak_penalty_eur: float
    voltage_penalty_eur: float

    @property
    def total(self) -> float:
        return self.energy_cost_eur + self.peak_penalty_eur + self.voltage_penalty_eur


class _AgentController:
    """The agent's action as the highest-priority request for a one-step window."""

    name = "agent"
    priority = AGENT_PRIORITY

    def __init__(self, n: int) -> None:
        self.setpoint_kw = np.zeros((1, n))

    def plan(self, window: Window) -> Request:
        return Request(self.setpoint_kw.copy())


class GridmeshEnv(gym.Env[ObsArray, ObsArray]):
    """Battery dispatch on a scenario's twin, one 15-minute step at a time.

    Args:
        scenario: a validated scenario with at least one battery.
        episode_steps: steps per episode (96 = one day at 15 min); must fit in the scenario's time range.
        peak_weight_eur_per_kw: € per kW that the episode's running peak import rises; None: the tariff's
            demand charge, so an episode's peak penalties sum to the study's ``demand_charge_eur``.
        voltage_penalty_eur_per_pu: € per pu outside a bus's band, summed over buses, per step.
        tariff: prices for the energy cost (default: the study's time-of-use tariff).
        volt_var: inverter curves, as in a study.
        seed: seeds the twin and the first ``reset()`` that is given no seed.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Box[np.float32]

    def __init__(
        self,
        scenario: Scenario,
        *,
        episode_steps: int = 96,
        peak_weight_eur_per_kw: float | None = None,
        voltage_penalty_eur_per_pu: float = 1000.0,
        tariff: TimeOfUseTariff | None = None,
        volt_var: InverterCurves | None = None,
        seed: int = 7,
    ) -> None:
        assert_valid(scenario)
        self.twin = twin = StudyTwin(scenario, tariff=tariff, volt_var=volt_var, seed=seed)
        fleet, net = twin.fleet, scenario.network
        if not len(fleet):
            raise ValueError(f"scenario {scenario.name!r} has no batteries: an agent would have nothing to act on")
        if not 1 <= episode_steps <= twin.steps:
            raise ValueError(f"episode_steps must lie in 1…{twin.steps} (the scenario's steps), got {episode_steps}")
        self.episode_steps = episode_steps
        self.peak_weight_eur_per_kw = (
            twin.tariff.demand_charge_eur_per_kw if peak_weight_eur_per_kw is None else peak_weight_eur_per_kw
        )
        self.voltage_penalty_eur_per_pu = voltage_penalty_eur_per_pu
        self._seed = seed
        self._ev_seed = seed
        self._soc_init = fleet.soc.copy()
        self._agent = _AgentController(len(fleet))
        self._cycle = ControlCycle([self._agent], SafetyLayer(pcc_limit_kw=twin.pcc_limits_kw))
        self._balance = SiteBalance()
        self._steps_per_day = max(round(24 / twin.dt_h), 1)

        buses = twin.engine.index.buses
        self._v_lo = np.array([net.buses[b].v_min_pu for b in buses])
        self._v_hi = np.array([net.buses[b].v_max_pu for b in buses])
        self.microgrids = tuple(s for s, m in twin.sites.items() if m.level is SiteLevel.MICROGRID)
        self._site_scale_kw = np.array([_rated_kw(scenario, twin.sites[s].elements) for s in self.microgrids])
        everything = {t: frozenset(net.table(t)) for t in ("loads", "generators", "ev_chargers")}
        self._grid_scale_kw = _rated_kw(scenario, everything) + float(fleet.p_kw.sum())

        self.observation_names: tuple[str, ...] = (
            *(f"soc[{b}]" for b in fleet.ids),
            *(f"net_load[{s}]" for s in self.microgrids),
            "grid_import_prev",
            "import_price",
            "hour_sin",
            "hour_cos",
            "weekday_sin",
            "weekday_cos",
            "v_min_prev",
            "v_max_prev",
        )
        n, m = len(fleet), len(self.microgrids)
        low = np.concatenate(
            [np.zeros(n), np.full(m + 1, -POWER_BOUND), [-PRICE_BOUND], -np.ones(4), [V_BOUNDS[0]] * 2]
        )
        high = np.concatenate([np.ones(n), np.full(m + 1, POWER_BOUND), [PRICE_BOUND], np.ones(4), [V_BOUNDS[1]] * 2])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)

        self._start = self._t = 0
        self._peak_kw = 0.0
        self._measured = Measurement()
        self._current: tuple[Window, ProfileWindow] = twin.window(0, 1)

    @classmethod
    def from_file(cls, path_or_builtin_name: str | Path, **kw: Any) -> GridmeshEnv:
        """An environment on a scenario file or a built-in name (``demo``); ``kw`` as for the constructor."""
        return cls(read_scenario(scenario_path(str(path_or_builtin_name))), **kw)

    # -- the Gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[ObsArray, dict[str, Any]]:
        """Start an episode: fresh SOC, fresh EV sessions, a start step.

        Options: ``start_step`` (step of the scenario to start at; default a random whole day that
        leaves room for the episode), ``soc`` (initial SOC, scalar or per battery; default the
        scenario's ``soc_init``), ``ev_seed`` (EV sessions seed; default drawn from the env's RNG — a
        study's sessions use the study's ``seed``).
        """
        if seed is None and self._np_random is None:
            seed = self._seed  # reproducible by default, like a study
        super().reset(seed=seed)
        self._cycle.safety.reset()
        options = options or {}
        twin, fleet = self.twin, self.twin.fleet
        last_start = twin.steps - self.episode_steps
        if "start_step" in options:
            start = int(options["start_step"])
            if not 0 <= start <= last_start:
                raise ValueError(f"start_step must lie in 0…{last_start} so that the episode fits, got {start}")
        else:
            start = int(self.np_random.integers(last_start // self._steps_per_day + 1)) * self._steps_per_day
        ev_seed = int(options["ev_seed"]) if "ev_seed" in options else int(self.np_random.integers(2**31))
        if ev_seed != self._ev_seed:
            twin.sessions = draw_sessions(twin.ev_chargers, steps=twin.steps, dt_h=twin.dt_h, seed=ev_seed)
            self._ev_seed = ev_seed
        soc = np.broadcast_to(np.asarray(options.get("soc", self._soc_init), dtype=np.float64), (len(fleet),))
        if np.any(soc < fleet.soc_min - 1e-12) or np.any(soc > fleet.soc_max + 1e-12):
            raise ValueError("soc must lie in each battery's SOC window [soc_min, soc_max]")
        fleet.soc = soc.copy()

        # The "previous step" the first observation reports: the step before the episode with idle
        # batteries (the scenario's first step itself when the episode starts there).
        before, base = twin.window(max(start - 1, 0), 1)
        solved = twin.solve(before, base, np.zeros((1, len(fleet))))
        self._measured = _measure(solved.result)
        self._start, self._t, self._peak_kw = start, 0, 0.0
        self._current = twin.window(start, 1)
        info = {
            "start_step": start,
            "time": self._current[0].times[0],
            "ev_seed": ev_seed,
            **dataclasses.asdict(self._measured),
        }
        return self.observe(self._current[0], self._measured), info

    def step(self, action: ObsArray) -> tuple[ObsArray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply the action for one step; the episode is truncated after ``episode_steps`` steps."""
        if self._t >= self.episode_steps:
            raise RuntimeError("the episode is over: call reset() first")
        twin, fleet = self.twin, self.twin.fleet
        self._agent.setpoint_kw = self.action_kw(action)[None, :]
        window, base = self._current
        decided = self._cycle.run(window, fleet)
        if decided.failures:  # pragma: no cover - the agent's request is validated above
            raise RuntimeError("; ".join(decided.failures))
        solved = twin.solve(window, base, decided.battery_kw)
        result = solved.result
        failed = bool(result.failed)
        grid_kw = float(np.nan_to_num(result.grid_p_kw.sum()))
        peak_increase = max(grid_kw - self._peak_kw, 0.0)
        violation = float(
            np.nansum(np.clip(self._v_lo - result.v_pu[0], 0, None) + np.clip(result.v_pu[0] - self._v_hi, 0, None))
        )
        parts = RewardParts(
            energy_cost_eur=twin.tariff.energy_cost(window.times, np.array([grid_kw]), twin.dt_h),
            peak_penalty_eur=self.peak_weight_eur_per_kw * peak_increase,
            voltage_penalty_eur=self.voltage_penalty_eur_per_pu * violation,
        )
        self._peak_kw += peak_increase
        self._measured = _measure(result)
        refusals = decided.refusals
        info: dict[str, Any] = {
            "time": window.times[0],
            "step": self._start + self._t,
            "battery_kw": decided.battery_kw[0].copy(),
            "soc": fleet.soc.copy(),
            "refusals": len(refusals),
            "refusal_reasons": dict(zip(refusals["device"], refusals["reason"], strict=True)),
            "grid_import_kw": grid_kw,
            "peak_import_kw": self._peak_kw,
            "peak_increase_kw": peak_increase,
            "voltage_violation_pu": violation,
            "v_min_pu": self._measured.v_min_pu,
            "v_max_pu": self._measured.v_max_pu,
            "losses_kw": float(np.nan_to_num(result.losses_kw[0])),
            "failed": failed,
            **dataclasses.asdict(parts),
        }
        self._t += 1
        truncated = self._t >= self.episode_steps
        # The final observation repeats the last step's features when the scenario ends right there.
        self._current = twin.window(min(self._start + self._t, twin.steps - 1), 1)
        return self.observe(self._current[0], self._measured), -parts.total, False, truncated, info

    # -- building blocks, shared with PolicyController -------------------------------------------------

    def action_kw(self, action: npt.ArrayLike) -> FloatArray:
        """Battery setpoints (kW, generator convention) of an action in [-1, 1] per battery.

        Values outside [-1, 1] are passed on and the safety layer refuses the excess (``power rating``);
        NaN means no opinion (the battery idles).
        """
        a = np.asarray(action, dtype=np.float64)
        n = len(self.twin.fleet)
        if a.shape != (n,):
            raise ValueError(f"an action has one value per battery, shape ({n},); got shape {a.shape}")
        kw: FloatArray = a * self.twin.fleet.p_kw
        return kw

    def observe(self, window: Window, measured: Measurement) -> ObsArray:
        """The observation for the first step of ``window`` (order: :attr:`observation_names`).

        SOC comes from ``window.batteries``; net loads, price and calendar from the window; the
        substation import and voltage extremes from ``measured`` (the previous step).
        """
        when, now = window.times[:1], window.times[0]
        hour, weekday = now.hour + now.minute / 60.0, float(now.dayofweek)
        net_load = {s.site: float(s.net_load_kw[0]) for s in self._balance.sites(window)}
        sites = np.array([net_load[s] for s in self.microgrids]) / self._site_scale_kw
        obs = np.concatenate(
            [
                window.batteries.soc,
                sites,
                [measured.grid_import_kw / self._grid_scale_kw, float(window.tariff.import_price(when)[0])],
                [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)],
                [np.sin(2 * np.pi * weekday / 7), np.cos(2 * np.pi * weekday / 7)],
                [measured.v_min_pu, measured.v_max_pu],
            ]
        )
        clipped: ObsArray = np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)
        return clipped


class PolicyController:
    """A trained policy as a controller: it sees the env's observation and requests the env's action.

    Plans a window step by step on a copy of the fleet (so the policy sees the SOC its own setpoints
    would leave); the measured part of the observation is the last :meth:`measure` (nominal until then:
    zero import, 1 pu). Register it in any :class:`ControlCycle`; the safety layer still decides.
    """

    name = "rl-policy"

    def __init__(self, env: GridmeshEnv, policy: Policy, *, priority: int = 20) -> None:
        self.env, self.policy, self.priority = env, policy, priority
        self.measured = Measurement()

    def measure(self, grid_import_kw: float, v_min_pu: float, v_max_pu: float) -> None:
        """Feed the grid's latest measurement (live: from SCADA after each cycle)."""
        self.measured = Measurement(grid_import_kw, v_min_pu, v_max_pu)

    def plan(self, window: Window) -> Request:
        fleet = copy.deepcopy(window.batteries)
        setpoint = window.nothing()
        for t in range(window.steps):
            step = dataclasses.replace(
                window,
                times=window.times[t : t + 1],
                load_p_kw=window.load_p_kw[t : t + 1],
                gen_p_kw=window.gen_p_kw[t : t + 1],
                ev_p_kw=window.ev_p_kw[t : t + 1],
                batteries=fleet,
            )
            setpoint[t] = self.env.action_kw(self.policy(self.env.observe(step, self.measured)))
            fleet.step(setpoint[t], window.dt_h)
        return Request(setpoint)


def _measure(result: PowerFlowResult) -> Measurement:
    """The measured part of the next observation; a failed or dark step reads as nominal."""
    v = result.v_pu[0]
    lit = v[np.isfinite(v)]
    return Measurement(
        grid_import_kw=float(np.nan_to_num(result.grid_p_kw.sum())),
        v_min_pu=float(lit.min()) if lit.size else 1.0,
        v_max_pu=float(lit.max()) if lit.size else 1.0,
    )


def _rated_kw(scenario: Scenario, members: Mapping[str, frozenset[str]]) -> float:
    """A power scale of a set of elements: the larger of rated consumption (loads + EV) and generation."""
    net = scenario.network
    loads = sum(x.p_kw * x.in_service for i, x in net.loads.items() if i in members["loads"])
    evs = sum(x.p_kw * x.connectors * x.in_service for i, x in net.ev_chargers.items() if i in members["ev_chargers"])
    gens = sum(x.p_kw * x.in_service for i, x in net.generators.items() if i in members["generators"])
    return max(float(loads + evs), float(gens), 1.0)
