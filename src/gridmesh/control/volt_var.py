"""Volt-var and volt-watt for inverter-based generators, solved consistently with the power flow.

Curves are IEEE 1547-2018's defaults for Category B (volt-var, Table 8: 0.92/0.98/1.02/1.08 pu with
+44 % / 0 / 0 / −44 % of nameplate as reactive power, injection positive) and its volt-watt default (1.06 pu →
100 %, 1.10 pu → 20 % of rated active power). Each inverter's setpoint depends on its own voltage, which depends
on every setpoint, so the window is solved as a damped fixed point: batch power flow → new setpoints from
the voltages → repeat until the setpoints stop moving. Reactive capability is not cut by the apparent-power
rating: IEEE 1547 Category B asks for 44 % reactive power at rated active power (inverters are sized for it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gridmesh.model.kinds import GeneratorKind
from gridmesh.model.network import Network
from gridmesh.physics.powerflow import FloatArray, Injections, PowerFlow, PowerFlowResult, with_rows

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class InverterCurves:
    """Piecewise-linear curves; voltages in pu, reactive power as a fraction of the rating."""

    var_v_pu: tuple[float, ...] = (0.92, 0.98, 1.02, 1.08)
    var_q: tuple[float, ...] = (0.44, 0.0, 0.0, -0.44)
    watt_v_pu: tuple[float, ...] = (1.06, 1.10)
    watt_p: tuple[float, ...] = (1.0, 0.2)
    kinds: tuple[GeneratorKind, ...] = (GeneratorKind.PV, GeneratorKind.WIND)
    damping: float = 0.8
    tolerance_kw: float = 0.05
    max_iterations: int = 20

    def reactive_kvar(self, v_pu: FloatArray, rating_kva: FloatArray) -> FloatArray:
        """Volt-var setpoint; an unsupplied inverter (NaN voltage) gives nothing."""
        q = np.interp(np.nan_to_num(v_pu, nan=1.0), self.var_v_pu, self.var_q) * rating_kva
        return np.where(np.isnan(v_pu), 0.0, q)

    def active_limit_kw(self, v_pu: FloatArray, rated_kw: FloatArray) -> FloatArray:
        """Volt-watt ceiling on active power."""
        return np.interp(np.nan_to_num(v_pu, nan=1.0), self.watt_v_pu, self.watt_p) * rated_kw


@dataclass(frozen=True)
class VoltVarResult:
    injections: Injections  # with the converged generator P and Q
    result: PowerFlowResult
    iterations: int
    converged: bool


class VoltVarWatt:
    """The fixed-point solver for one network; inverter columns and buses are resolved once."""

    def __init__(self, network: Network, engine: PowerFlow, curves: InverterCurves | None = None) -> None:
        self.curves = curves or InverterCurves()
        gens = list(network.generators.values())
        bus_pos = {b: i for i, b in enumerate(engine.index.buses)}
        chosen = [i for i, g in enumerate(gens) if g.kind in self.curves.kinds and g.in_service]
        self.columns: IntArray = np.array(chosen, dtype=np.int64)
        self.buses: IntArray = np.array([bus_pos[gens[i].bus] for i in chosen], dtype=np.int64)
        self.rated_kw: FloatArray = np.array([gens[i].p_kw for i in chosen])
        self.rating_kva: FloatArray = np.array([gens[i].sn_kva or gens[i].p_kw for i in chosen])
        self.engine = engine

    def solve(self, injections: Injections) -> VoltVarResult:
        """Damped fixed point over the window batch; each iteration re-solves only the steps still moving."""
        c = self.curves
        available = injections.gen_p_kw[:, self.columns]
        p, q = available.copy(), np.zeros_like(available)
        result = self.engine.run(injections)
        current = injections
        for iteration in range(1, c.max_iterations + 1):
            v = result.v_pu[:, self.buses]
            q_new = q + c.damping * (c.reactive_kvar(v, self.rating_kva) - q)
            p_new = p + c.damping * (np.minimum(available, c.active_limit_kw(v, self.rated_kw)) - p)
            moving = np.max(np.abs(np.hstack([q_new - q, p_new - p])), axis=1, initial=0.0) >= c.tolerance_kw
            p, q = p_new, q_new
            current = self._with(injections, p, q)
            if not moving.any():
                return VoltVarResult(current, result, iteration, True)
            rows = np.flatnonzero(moving)
            result = with_rows(result, rows, self.engine.run(current.rows(rows)))
        return VoltVarResult(current, result, c.max_iterations, False)

    def _with(self, injections: Injections, p: FloatArray, q: FloatArray) -> Injections:
        gen_p = injections.gen_p_kw.copy()
        gen_q = injections.gen_q_kvar.copy()
        gen_p[:, self.columns] = p
        gen_q[:, self.columns] = q
        return replace(injections, gen_p_kw=gen_p, gen_q_kvar=gen_q)
