"""Battery fleet: state of charge with charge/discharge efficiencies, vectorised over batteries.

Energy bookkeeping (generator convention, ``p > 0`` discharges, ``dt`` in hours)::

    discharging: ΔE_stored = −p·dt / η_discharge
    charging:    ΔE_stored = −p·dt · η_charge        (p < 0)

Requests are clamped to the power rating and to what the SOC window allows in the step, so the stored
energy never leaves [soc_min, soc_max]. Time is inherently sequential here (each step depends on the
previous SOC); the loop runs over steps, never over batteries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.elements import Battery

FloatArray = npt.NDArray[np.float64]


@dataclass
class BatteryFleet:
    """Parameters and live state of a set of batteries (arrays over batteries)."""

    ids: tuple[str, ...]
    e_kwh: FloatArray
    p_kw: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    soc: FloatArray

    @classmethod
    def of(cls, batteries: Sequence[Battery]) -> BatteryFleet:
        def arr(attr: str) -> FloatArray:
            return np.array([getattr(b, attr) for b in batteries], dtype=np.float64)

        in_service = np.array([b.in_service for b in batteries], dtype=bool)
        return cls(
            ids=tuple(b.id for b in batteries),
            e_kwh=arr("e_kwh"),
            p_kw=arr("p_kw") * in_service,
            eta_charge=arr("eta_charge"),
            eta_discharge=arr("eta_discharge"),
            soc_min=arr("soc_min"),
            soc_max=arr("soc_max"),
            soc=arr("soc_init"),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def limits_kw(self, dt_h: float) -> tuple[FloatArray, FloatArray]:
        """(max discharge, max charge) power in this step, both ≥ 0, from rating and SOC window."""
        stored_above_min = np.maximum(self.soc - self.soc_min, 0.0) * self.e_kwh
        room_below_max = np.maximum(self.soc_max - self.soc, 0.0) * self.e_kwh
        discharge = np.minimum(self.p_kw, stored_above_min * self.eta_discharge / dt_h)
        charge = np.minimum(self.p_kw, room_below_max / (self.eta_charge * dt_h))
        return discharge, charge

    def step(self, request_kw: FloatArray, dt_h: float) -> FloatArray:
        """Apply one step of requested power (NaN = idle); returns the power actually delivered."""
        discharge_max, charge_max = self.limits_kw(dt_h)
        p = np.clip(np.nan_to_num(request_kw, nan=0.0), -charge_max, discharge_max)
        delta_kwh = np.where(p > 0, -p * dt_h / self.eta_discharge, -p * dt_h * self.eta_charge)
        self.soc = np.clip(self.soc + delta_kwh / self.e_kwh, self.soc_min, self.soc_max)
        return p

    def run(self, requests_kw: FloatArray, dt_h: float) -> tuple[FloatArray, FloatArray]:
        """Apply a window of requests ``(steps, n)``; returns delivered power and SOC after each step."""
        steps = requests_kw.shape[0]
        power = np.zeros_like(requests_kw)
        soc = np.zeros_like(requests_kw)
        for t in range(steps):
            power[t] = self.step(requests_kw[t], dt_h)
            soc[t] = self.soc
        return power, soc
