"""The digital twin of a study: network, profiles, EV sessions, batteries and the power flow, stepped
window by window. The study runner and the reinforcement-learning environment drive the same twin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from gridmesh.control.controller import Window
from gridmesh.control.volt_var import InverterCurves, VoltVarWatt
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.ev import draw_sessions, uncontrolled_power
from gridmesh.devices.flexible_load import FlexibleLoads
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import pcc_limits_kw, resolve_sites
from gridmesh.physics.powerflow import STUDY_OUTPUTS, FloatArray, Injections, PowerFlow, PowerFlowResult
from gridmesh.sim.injections import ProfileInjections, ProfileWindow


@dataclass(frozen=True)
class Solved:
    """A window after the power flow: what was injected (after volt-watt) and the grid's response."""

    injections: Injections
    result: PowerFlowResult
    iterations: int = 1
    converged: bool = True


class StudyTwin:
    """Everything a study steps through, set up once per scenario."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        tariff: TimeOfUseTariff | None = None,
        volt_var: InverterCurves | None = None,
        seed: int = 7,
        method: str = "iterative_current",
    ) -> None:
        net, profiles = scenario.network, scenario.profiles
        self.scenario = scenario
        self.dt_h = profiles.resolution / timedelta(hours=1)
        self.first_step, self.steps = profiles.step_of(scenario.time.start), scenario.steps
        self.times = pd.date_range(scenario.time.start, periods=self.steps, freq=profiles.resolution)
        self.sites = resolve_sites(net)
        self.engine = PowerFlow(net, method=method, outputs=STUDY_OUTPUTS)
        self.injections = ProfileInjections(net, profiles)
        self.fleet = BatteryFleet.of(list(net.batteries.values()))
        self.flexible = FlexibleLoads.of(list(net.loads.values()))
        self.ev_chargers = list(net.ev_chargers.values())
        self.sessions = draw_sessions(self.ev_chargers, steps=self.steps, dt_h=self.dt_h, seed=seed)
        self.tariff = tariff or TimeOfUseTariff()
        self.inverters = None if volt_var is None else VoltVarWatt(net, self.engine, volt_var)
        self.pcc_limits_kw = pcc_limits_kw(net, self.sites)

    def window(self, offset: int, steps: int) -> tuple[Window, ProfileWindow]:
        """The frozen process image of steps ``offset … offset+steps-1`` of the study, and its reactive powers."""
        base = self.injections.window(self.first_step + offset, steps)
        ev = uncontrolled_power(self.sessions, self.ev_chargers, first=offset, steps=steps, dt_h=self.dt_h)
        times = self.times[offset : offset + steps]
        window = Window(
            self.scenario.network,
            self.sites,
            times,
            self.dt_h,
            base.load_p_kw,
            base.gen_p_kw,
            ev,
            self.fleet,
            self.tariff,
            lookahead=lambda horizon: self.window(offset, min(horizon, self.steps - offset))[0],
            load_q_kvar=base.load_q_kvar,
            gen_q_kvar=base.gen_q_kvar,
            flexible=self.flexible,
        )
        return window, base

    def solve(
        self,
        window: Window,
        base: ProfileWindow,
        battery_kw: FloatArray,
        *,
        curtail_kw: FloatArray | None = None,
        flex_kw: FloatArray | None = None,
    ) -> Solved:
        """Power flow of the window with the decided battery powers, curtailment and load shifts (and the
        inverter curves, if any). Shifted consumption moves reactive power at the load's nominal power factor
        (scaling by the present ratio would blow up when a catch-up lands on a nearly idle load)."""
        load_p, load_q = window.load_p_kw, base.load_q_kvar
        if flex_kw is not None and flex_kw.size:
            load_p, load_q = load_p.copy(), load_q.copy()
            columns = self.flexible.columns
            load_p[:, columns] -= flex_kw
            load_q[:, columns] -= flex_kw * self.flexible.q_per_p
        gen_p = window.gen_p_kw if curtail_kw is None or not curtail_kw.size else window.gen_p_kw - curtail_kw
        injected = Injections(
            load_p, load_q, gen_p, base.gen_q_kvar, window.ev_p_kw, np.asarray(battery_kw, dtype=np.float64)
        )
        if self.inverters is None:
            return Solved(injected, self.engine.run(injected))
        solved = self.inverters.solve(injected)
        return Solved(solved.injections, solved.result, solved.iterations, solved.converged)
