"""Tariffs: what a kWh costs when, and what a kW of peak costs.

The default is a three-band time-of-use tariff shaped like German commercial offers (off-peak nights,
a 17–21 h evening peak) with a feed-in price for export and a demand charge on the billing peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TimeOfUseTariff:
    """Import price by hour band (€/kWh), a flat export price and a demand charge (€/kW of peak)."""

    off_peak_eur_per_kwh: float = 0.22
    shoulder_eur_per_kwh: float = 0.30
    peak_eur_per_kwh: float = 0.42
    export_eur_per_kwh: float = 0.08
    demand_charge_eur_per_kw: float = 10.0
    off_peak_hours: tuple[int, int] = (0, 6)  # [start, end) hours
    peak_hours: tuple[int, int] = (17, 21)

    def import_price(self, times: pd.DatetimeIndex) -> FloatArray:
        hour = np.asarray(times.hour)
        price = np.full(hour.shape, self.shoulder_eur_per_kwh)
        price[(hour >= self.off_peak_hours[0]) & (hour < self.off_peak_hours[1])] = self.off_peak_eur_per_kwh
        price[(hour >= self.peak_hours[0]) & (hour < self.peak_hours[1])] = self.peak_eur_per_kwh
        return price

    def export_price(self, times: pd.DatetimeIndex) -> FloatArray:
        return np.full(len(times), self.export_eur_per_kwh)

    def energy_cost(self, times: pd.DatetimeIndex, import_kw: FloatArray, dt_h: float) -> float:
        """Net energy cost (€) of a grid exchange series: imports at the import price, exports credited."""
        imported = np.clip(import_kw, 0, None) * self.import_price(times)
        exported = np.clip(-import_kw, 0, None) * self.export_price(times)
        return float(np.nansum(imported - exported) * dt_h)
