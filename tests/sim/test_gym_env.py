"""The Gymnasium environment: API conformance, safety layer in the loop, reward = study KPIs, determinism."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridmesh.control.controller import Window
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.sim.study import run_study
from gridmesh.sim.twin import StudyTwin

gym = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from gridmesh.sim.gym_env import GridmeshEnv, PolicyController  # noqa: E402

DAY = 96


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


def test_check_env_passes_without_warnings(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)  # no render modes to check
    assert [str(w.message) for w in caught] == []


def test_spaces_are_documented_and_bounded(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    assert env.action_space.shape == (1,)
    assert env.observation_space.shape == (len(env.observation_names),)
    assert env.observation_names[:2] == ("soc[bess]", "net_load[mg]")
    assert np.isfinite(env.observation_space.low).all() and np.isfinite(env.observation_space.high).all()


def test_random_policy_runs_a_full_episode(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    obs, info = env.reset(seed=3)
    assert obs in env.observation_space
    assert info["start_step"] % DAY == 0 and info["start_step"] + DAY <= 2 * DAY
    env.action_space.seed(3)
    rewards, truncations = [], []
    for _ in range(DAY):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert terminated is False
        rewards.append(float(reward))
        truncations.append(truncated)
    assert np.isfinite(rewards).all()
    assert truncations == [False] * (DAY - 1) + [True]
    assert info["battery_kw"].shape == (1,) and not info["failed"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_discharge_at_soc_min_is_refused_by_the_safety_layer(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    soc_min = float(env.twin.fleet.soc_min[0])
    obs, _ = env.reset(seed=0, options={"soc": soc_min})
    assert obs[0] == pytest.approx(soc_min)
    _, _, _, _, info = env.step(np.ones(1, dtype=np.float32))
    assert info["refusals"] == 1
    assert info["refusal_reasons"] == {"bess": "SOC window"}
    assert info["battery_kw"][0] == 0.0
    assert info["soc"][0] == pytest.approx(soc_min)


def test_reward_is_minus_its_parts_recomputed_from_an_independent_twin(scenario: Scenario) -> None:
    # A band tighter than the grid keeps (1.02–1.025 pu here), so the voltage part is not zero.
    net = scenario.network
    scenario = dataclasses.replace(
        scenario, network=net.with_elements(b.model_copy(update={"v_max_pu": 1.021}) for b in net.buses.values())
    )
    env = GridmeshEnv(scenario, episode_steps=4, voltage_penalty_eur_per_pu=500.0)
    start = DAY + 68  # 17:00 on the second day: the peak price band
    env.reset(options={"start_step": start, "ev_seed": 7})
    _, _, _, _, first = env.step(np.array([0.8], dtype=np.float32))
    obs, reward, _, _, info = env.step(np.array([-0.5], dtype=np.float32))  # charging raises the peak

    # The same step solved by a twin of our own (EV sessions seed 7), with the battery power applied.
    twin = StudyTwin(scenario, seed=7)
    window, base = twin.window(start + 1, 1)
    result = twin.solve(window, base, info["battery_kw"][None, :]).result
    grid_kw = float(result.grid_p_kw.sum())
    assert info["grid_import_kw"] == pytest.approx(grid_kw, rel=1e-9)

    tariff, dt_h = twin.tariff, 0.25
    assert window.times[0].hour == 17
    price = tariff.peak_eur_per_kwh if grid_kw > 0 else tariff.export_eur_per_kwh
    cost = grid_kw * price * dt_h
    peak_before = max(first["grid_import_kw"], 0.0)
    peak_penalty = tariff.demand_charge_eur_per_kw * max(grid_kw - peak_before, 0.0)
    v = result.v_pu[0]
    v_lo = np.array([scenario.network.buses[b].v_min_pu for b in twin.engine.index.buses])
    v_hi = np.array([scenario.network.buses[b].v_max_pu for b in twin.engine.index.buses])
    violation = float(np.nansum(np.maximum(v_lo - v, 0) + np.maximum(v - v_hi, 0)))
    voltage_penalty = 500.0 * violation
    assert violation > 0 and peak_penalty > 0

    assert info["energy_cost_eur"] == pytest.approx(cost, rel=1e-9)
    assert info["peak_penalty_eur"] == pytest.approx(peak_penalty, rel=1e-9, abs=1e-9)
    assert info["voltage_penalty_eur"] == pytest.approx(voltage_penalty, rel=1e-9, abs=1e-9)
    assert reward == pytest.approx(-(cost + peak_penalty + voltage_penalty), rel=1e-9)
    # The next observation reports this step's measurement.
    names = env.observation_names
    assert obs[names.index("v_min_prev")] == pytest.approx(np.nanmin(v), abs=1e-6)
    assert obs[names.index("v_max_prev")] == pytest.approx(np.nanmax(v), abs=1e-6)
    assert obs[0] == pytest.approx(info["soc"][0], abs=1e-6)


def test_episode_return_equals_study_kpis_with_the_policy_as_controller(scenario: Scenario, tmp_path: Path) -> None:
    """A constant policy in the env and the same policy plugged into a study give the same costs."""
    one_day = scenario.with_time(days=1)
    env = GridmeshEnv(one_day, episode_steps=DAY, voltage_penalty_eur_per_pu=0.0)
    action = np.array([0.6], dtype=np.float32)  # discharges until the SOC window refuses
    env.reset(options={"start_step": 0, "ev_seed": 7})
    total, refusals = 0.0, 0
    for _ in range(DAY):
        _, reward, _, _, info = env.step(action)
        total += float(reward)
        refusals += info["refusals"]

    controller = PolicyController(env, lambda obs: action)
    study = run_study(one_day, out=tmp_path, controller=controller, seed=7)
    kpis = study.kpis
    assert total == pytest.approx(-(kpis["energy_cost_eur"] + kpis["demand_charge_eur"]), rel=1e-9)
    assert refusals == sum(kpis["control"]["refusals"].values()) > 0


def test_policy_controller_sees_the_env_observation(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    obs, info = env.reset(seed=11)
    seen: list[np.ndarray] = []

    def policy(o: np.ndarray) -> np.ndarray:
        seen.append(o)
        return np.array([-0.5])  # charge: the SOC it sees next must rise

    controller = PolicyController(env, policy)
    controller.measure(info["grid_import_kw"], info["v_min_pu"], info["v_max_pu"])
    window: Window = env.twin.window(info["start_step"], 2)[0]
    request = controller.plan(window)
    np.testing.assert_array_equal(seen[0], obs)
    assert seen[1][0] > seen[0][0]
    np.testing.assert_allclose(request.setpoint_kw, -0.5 * env.twin.fleet.p_kw[None, :].repeat(2, axis=0))
    assert env.twin.fleet.soc[0] == pytest.approx(obs[0])  # planning never touches the live fleet


def test_same_seed_same_trajectory(scenario: Scenario) -> None:
    def trajectory(seed: int) -> tuple[list[np.ndarray], list[float], int]:
        env = GridmeshEnv(scenario)
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        observations, rewards = [obs], []
        for _ in range(24):
            obs, reward, *_ = env.step(env.action_space.sample())
            observations.append(obs)
            rewards.append(float(reward))
        return observations, rewards, info["ev_seed"]

    obs_a, rewards_a, ev_a = trajectory(5)
    obs_b, rewards_b, ev_b = trajectory(5)
    np.testing.assert_array_equal(np.array(obs_a), np.array(obs_b))
    assert rewards_a == rewards_b and ev_a == ev_b
    assert trajectory(6)[2] != ev_a


def test_reset_rejects_what_does_not_fit(scenario: Scenario) -> None:
    env = GridmeshEnv(scenario)
    with pytest.raises(ValueError, match="start_step"):
        env.reset(options={"start_step": DAY + 1})
    with pytest.raises(ValueError, match="SOC window"):
        env.reset(options={"soc": 1.5})
    with pytest.raises(ValueError, match="episode_steps"):
        GridmeshEnv(scenario, episode_steps=3 * DAY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one value per battery"):
        env.step(np.zeros(2, dtype=np.float32))
