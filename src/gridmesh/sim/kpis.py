"""Key performance indicators of a study, accumulated window by window (never the whole year in memory).

Definitions (documented in ``docs/kpis.md``):

* energy served — consumption (loads + EV charging) on energized buses;
* losses — series losses in lines and transformers; % of the energy fed in (grid import + local
  generation + battery discharge);
* renewable share — renewable generation over gross consumption (consumption + losses), as national
  statistics define it, so a net-exporting rural grid can exceed 100 %;
* self-sufficiency of a site — 1 − import / consumption; self-consumption — 1 − export / generation;
* CO2 — grid import × grid factor + CHP output × CHP factor (biomass counted biogenic, zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridmesh.model.kinds import GeneratorKind

FloatArray = npt.NDArray[np.float64]

# kg CO2 per kWh. Grid: German electricity mix 2023, Umweltbundesamt (UBA) estimate 380 g/kWh.
# CHP: natural-gas engine, electricity share of fuel emissions, ~0.35 kg/kWh_el (UBA/Öko-Institut range).
CO2_KG_PER_KWH: Final[dict[str, float]] = {"grid": 0.380, GeneratorKind.CHP.value: 0.35}
LOADING_BINS: Final = np.linspace(0.0, 2.0, 201)  # loading histogram edges (1 % wide), last bin open-ended


@dataclass
class SiteTotals:
    consumption_kwh: float = 0.0
    generation_kwh: float = 0.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    peak_import_kw: float = 0.0

    def as_dict(self) -> dict[str, float]:
        cons, gen = self.consumption_kwh, self.generation_kwh
        return {
            "consumption_kwh": cons,
            "generation_kwh": gen,
            "import_kwh": self.import_kwh,
            "export_kwh": self.export_kwh,
            "peak_import_kw": self.peak_import_kw,
            "self_sufficiency": 1.0 - self.import_kwh / cons if cons > 0 else float("nan"),
            "self_consumption": 1.0 - self.export_kwh / gen if gen > 0 else float("nan"),
        }


@dataclass
class KpiAccumulator:
    """Running totals; :meth:`result` turns them into the ``kpis.json`` document."""

    dt_h: float
    n_buses: int
    n_branches: int
    steps: int = 0
    consumption_kwh: float = 0.0
    served_kwh: float = 0.0
    losses_kwh: float = 0.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    peak_import_kw: float = -np.inf
    generation_kwh: dict[str, float] = field(default_factory=dict)
    battery_discharge_kwh: float = 0.0
    battery_charge_kwh: float = 0.0
    failed_steps: int = 0
    deenergized_bus_steps: int = 0
    sites: dict[str, SiteTotals] = field(default_factory=dict)
    bus_v_min: FloatArray = field(init=False)
    bus_v_max: FloatArray = field(init=False)
    bus_steps_below: npt.NDArray[np.int64] = field(init=False)
    bus_steps_above: npt.NDArray[np.int64] = field(init=False)
    branch_max_loading: FloatArray = field(init=False)
    branch_steps_overloaded: npt.NDArray[np.int64] = field(init=False)
    branch_hist: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.bus_v_min = np.full(self.n_buses, np.inf)
        self.bus_v_max = np.full(self.n_buses, -np.inf)
        self.bus_steps_below = np.zeros(self.n_buses, dtype=np.int64)
        self.bus_steps_above = np.zeros(self.n_buses, dtype=np.int64)
        self.branch_max_loading = np.zeros(self.n_branches)
        self.branch_steps_overloaded = np.zeros(self.n_branches, dtype=np.int64)
        self.branch_hist = np.zeros((self.n_branches, LOADING_BINS.size), dtype=np.int64)

    def add_system(
        self,
        *,
        consumption_kw: FloatArray,
        served_kw: FloatArray,
        losses_kw: FloatArray,
        import_kw: FloatArray,
        generation_kw: dict[str, FloatArray],
        battery_kw: FloatArray,
        failed: int,
        deenergized: int,
    ) -> None:
        dt = self.dt_h
        self.steps += consumption_kw.size
        self.consumption_kwh += float(consumption_kw.sum() * dt)
        self.served_kwh += float(served_kw.sum() * dt)
        self.losses_kwh += float(np.nansum(losses_kw) * dt)
        self.import_kwh += float(np.nansum(np.clip(import_kw, 0, None)) * dt)
        self.export_kwh += float(-np.nansum(np.clip(import_kw, None, 0)) * dt)
        self.peak_import_kw = max(self.peak_import_kw, float(np.nanmax(import_kw, initial=-np.inf)))
        for kind, p in generation_kw.items():
            self.generation_kwh[kind] = self.generation_kwh.get(kind, 0.0) + float(p.sum() * dt)
        self.battery_discharge_kwh += float(np.clip(battery_kw, 0, None).sum() * dt)
        self.battery_charge_kwh += float(-np.clip(battery_kw, None, 0).sum() * dt)
        self.failed_steps += failed
        self.deenergized_bus_steps += deenergized

    def add_buses(self, v_pu: FloatArray, v_min_limit: FloatArray, v_max_limit: FloatArray) -> None:
        self.bus_v_min = np.fmin(self.bus_v_min, np.nanmin(v_pu, axis=0, initial=np.inf))
        self.bus_v_max = np.fmax(self.bus_v_max, np.nanmax(v_pu, axis=0, initial=-np.inf))
        self.bus_steps_below += (v_pu < v_min_limit[None, :]).sum(axis=0)
        self.bus_steps_above += (v_pu > v_max_limit[None, :]).sum(axis=0)

    def add_branches(self, loading: FloatArray) -> None:
        self.branch_max_loading = np.fmax(self.branch_max_loading, np.nanmax(loading, axis=0, initial=0.0))
        self.branch_steps_overloaded += (loading > 1.0).sum(axis=0)
        bins = np.clip(
            np.searchsorted(LOADING_BINS, np.nan_to_num(loading), side="right") - 1, 0, LOADING_BINS.size - 1
        )
        offsets = np.arange(self.n_branches) * LOADING_BINS.size
        counts = np.bincount((bins + offsets[None, :]).ravel(), minlength=self.n_branches * LOADING_BINS.size)
        self.branch_hist += counts.reshape(self.n_branches, LOADING_BINS.size)

    def add_site(
        self, site: str, *, consumption_kw: FloatArray, generation_kw: FloatArray, import_kw: FloatArray
    ) -> None:
        totals = self.sites.setdefault(site, SiteTotals())
        dt = self.dt_h
        totals.consumption_kwh += float(consumption_kw.sum() * dt)
        totals.generation_kwh += float(generation_kw.sum() * dt)
        totals.import_kwh += float(np.nansum(np.clip(import_kw, 0, None)) * dt)
        totals.export_kwh += float(-np.nansum(np.clip(import_kw, None, 0)) * dt)
        totals.peak_import_kw = max(totals.peak_import_kw, float(np.nanmax(import_kw, initial=0.0)))

    def result(
        self,
        *,
        bus_ids: tuple[str, ...],
        branch_ids: tuple[str, ...],
        battery_balance_error_kwh: float,
        battery_cycles: dict[str, float],
    ) -> dict[str, Any]:
        """The KPI document (JSON-ready)."""
        minutes = 60.0 * self.dt_h
        gen_total = sum(self.generation_kwh.values())
        renewable = sum(v for k, v in self.generation_kwh.items() if GeneratorKind(k).renewable)
        fed_in = self.import_kwh + gen_total + self.battery_discharge_kwh
        outside = (self.bus_steps_below + self.bus_steps_above) * minutes
        overloaded_h = self.branch_steps_overloaded * self.dt_h
        worst_buses = np.argsort(-outside)[:10]
        worst_branches = np.argsort(-self.branch_max_loading)[:10]
        co2 = self.import_kwh * CO2_KG_PER_KWH["grid"] + self.generation_kwh.get("chp", 0.0) * CO2_KG_PER_KWH["chp"]
        return {
            "steps": self.steps,
            "hours": self.steps * self.dt_h,
            "failed_steps": self.failed_steps,
            "energy_consumed_kwh": self.consumption_kwh,
            "energy_served_kwh": self.served_kwh,
            "energy_not_served_kwh": self.consumption_kwh - self.served_kwh,
            "losses_kwh": self.losses_kwh,
            "losses_percent": 100.0 * self.losses_kwh / fed_in if fed_in > 0 else 0.0,
            "grid_import_kwh": self.import_kwh,
            "grid_export_kwh": self.export_kwh,
            "peak_import_kw": self.peak_import_kw,
            "generation_kwh": dict(self.generation_kwh),
            "renewable_share": renewable / (self.consumption_kwh + self.losses_kwh)
            if self.consumption_kwh + self.losses_kwh > 0
            else 0.0,
            "battery_discharge_kwh": self.battery_discharge_kwh,
            "battery_charge_kwh": self.battery_charge_kwh,
            "battery_equivalent_cycles": battery_cycles,
            "battery_balance_error_kwh": battery_balance_error_kwh,
            "co2_kg": co2,
            "co2_factors_kg_per_kwh": CO2_KG_PER_KWH,
            "voltage": {
                "band_pu": "per-bus limits (default 0.9–1.1)",
                "bus_minutes_outside_band": float(outside.sum()),
                "buses_with_violations": int((outside > 0).sum()),
                "v_min_pu": float(np.min(self.bus_v_min)),
                "v_max_pu": float(np.max(self.bus_v_max)),
                "worst_buses_minutes_outside": {bus_ids[i]: float(outside[i]) for i in worst_buses if outside[i] > 0},
            },
            "loading": {
                "branch_hours_overloaded": float(overloaded_h.sum()),
                "branches_overloaded": int((overloaded_h > 0).sum()),
                "max_loading": float(self.branch_max_loading.max(initial=0.0)),
                "most_loaded_branches": {branch_ids[i]: float(self.branch_max_loading[i]) for i in worst_branches},
            },
            "deenergized_bus_steps": self.deenergized_bus_steps,
            "sites": {site: totals.as_dict() for site, totals in self.sites.items()},
        }
