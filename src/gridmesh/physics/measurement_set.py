"""What state estimation is fitted to: a columnar, element-keyed set of measurements with their accuracy.

Units and signs the estimator expects (convert telemetry on the way in):

* voltages: magnitude in **per unit** of the bus's nominal voltage. Field devices report ``PhV`` as the
  phase-to-neutral magnitude in volts; :func:`v_pu_from_phase_volts` converts (``v_pu = PhV·√3 / u_n``).
* appliance powers in kW / kvar in the element's own convention (:mod:`gridmesh.units`): loads and EV
  chargers consume (load convention), generators and batteries inject (generator convention); the
  external grid (substation meter) reports import from upstream as positive.
* branch flows in kW / kvar flowing *into the branch* at the measured side. A transformer monitor's
  ``TotW``/``TotVAr`` is taken at the **HV terminal** (``Terminal.TRAFO_HV``): positive when power flows
  down through the transformer into the LV grid. That is what a power-flow snapshot provides
  (``trafo_p_from_kw``, ``trafo_q_from_kvar``); a monitor wired on the LV terminal is ``TRAFO_LV``.

Every row carries a standard deviation. ``pseudo`` marks values that come from profiles or forecasts
rather than a device: the estimator uses them (with their large variance) but never names one as bad data.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from gridmesh.model.network import Network
from gridmesh.physics.powerflow import Injections, PowerFlowResult
from gridmesh.units import V_PER_KV

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]


class Terminal(StrEnum):
    """Where a power measurement is taken (and so which sign convention it follows)."""

    LOAD = "load"
    EV_CHARGER = "ev_charger"
    GENERATOR = "generator"
    BATTERY = "battery"
    EXTERNAL_GRID = "external_grid"
    LINE_FROM = "line_from"
    LINE_TO = "line_to"
    TRAFO_HV = "trafo_hv"
    TRAFO_LV = "trafo_lv"


APPLIANCES = (Terminal.LOAD, Terminal.EV_CHARGER, Terminal.GENERATOR, Terminal.BATTERY)


@dataclass(frozen=True)
class VoltageMeasurements:
    """Voltage magnitudes at buses (pu), one row per sensor."""

    bus: StrArray
    v_pu: FloatArray
    sigma_pu: FloatArray
    pseudo: BoolArray

    def __len__(self) -> int:
        return len(self.bus)


@dataclass(frozen=True)
class PowerMeasurements:
    """Active and reactive power at appliances, external grids and branch ends, one row per sensor."""

    terminal: StrArray  # Terminal values
    element: StrArray
    p_kw: FloatArray
    q_kvar: FloatArray
    sigma_p_kw: FloatArray
    sigma_q_kvar: FloatArray
    pseudo: BoolArray

    def __len__(self) -> int:
        return len(self.element)

    def __add__(self, other: PowerMeasurements) -> PowerMeasurements:
        return PowerMeasurements(
            *(np.concatenate([getattr(self, name), getattr(other, name)]) for name in _POWER_FIELDS)
        )


_POWER_FIELDS = ("terminal", "element", "p_kw", "q_kvar", "sigma_p_kw", "sigma_q_kvar", "pseudo")


@dataclass(frozen=True)
class MeasurementSet:
    """Everything one estimation cycle is fitted to."""

    voltages: VoltageMeasurements
    powers: PowerMeasurements

    def with_sigma(
        self, *, voltage_rows: npt.NDArray[np.int64] | None = None, power_rows: npt.NDArray[np.int64] | None = None
    ) -> MeasurementSet:
        """A copy with the standard deviations of the given rows multiplied by 1e3 (effectively removed).

        Used to re-estimate without a suspect while keeping the same measurement layout (and so the same
        observability and the same cached model).
        """
        v, p = self.voltages, self.powers
        v_sigma, p_sigma, q_sigma = v.sigma_pu.copy(), p.sigma_p_kw.copy(), p.sigma_q_kvar.copy()
        if voltage_rows is not None:
            v_sigma[voltage_rows] *= 1e3
        if power_rows is not None:
            p_sigma[power_rows] *= 1e3
            q_sigma[power_rows] *= 1e3
        return MeasurementSet(
            VoltageMeasurements(v.bus, v.v_pu, v_sigma, v.pseudo),
            PowerMeasurements(p.terminal, p.element, p.p_kw, p.q_kvar, p_sigma, q_sigma, p.pseudo),
        )


def v_pu_from_phase_volts(phv_v: FloatArray, vn_kv: FloatArray) -> FloatArray:
    """Phase-to-neutral magnitude in volts (telemetry ``PhV``) → per unit of the nominal line-to-line voltage."""
    out: FloatArray = np.asarray(phv_v, dtype=np.float64) * math.sqrt(3.0) / (np.asarray(vn_kv) * V_PER_KV)
    return out


def appliance_order(network: Network) -> tuple[StrArray, StrArray]:
    """(terminal, element) of every appliance: loads, EV chargers, generators, batteries (ModelIndex order)."""
    groups = (
        (Terminal.LOAD, network.loads),
        (Terminal.EV_CHARGER, network.ev_chargers),
        (Terminal.GENERATOR, network.generators),
        (Terminal.BATTERY, network.batteries),
    )
    terminal = np.concatenate([np.full(len(table), t.value, dtype=object) for t, table in groups]).astype(str)
    element = np.array([e for _, table in groups for e in table], dtype=str)
    return terminal, element


def pseudo_measurements(
    network: Network,
    profile_p_kw: FloatArray,
    profile_q_kvar: FloatArray,
    *,
    exclude: Collection[str] = (),
    sigma_fraction: float = 0.5,
    sigma_floor_kw: float = 0.1,
) -> PowerMeasurements:
    """Profile values for the appliances no device measures, with a large variance.

    ``profile_p_kw``/``profile_q_kvar`` hold one value per appliance in :func:`appliance_order`
    (each in its own sign convention); ``exclude`` lists elements already measured. The standard
    deviation is ``sigma_fraction`` of the value (at least ``sigma_floor_kw``), so that real measurements
    dominate wherever they exist while the set stays observable.
    """
    terminal, element = appliance_order(network)
    p, q = np.asarray(profile_p_kw, dtype=np.float64), np.asarray(profile_q_kvar, dtype=np.float64)
    if p.shape != element.shape or q.shape != element.shape:
        raise ValueError(
            f"profiles have {p.shape} / {q.shape} values for {len(element)} appliances; "
            "pass one value per appliance in appliance_order(network)"
        )
    keep = ~np.isin(element, np.array(list(exclude), dtype=str)) if exclude else np.ones(len(element), dtype=bool)
    sigma_p = np.maximum(np.abs(p) * sigma_fraction, sigma_floor_kw)
    sigma_q = np.maximum(np.abs(q) * sigma_fraction, sigma_floor_kw)
    return PowerMeasurements(
        terminal[keep], element[keep], p[keep], q[keep], sigma_p[keep], sigma_q[keep], np.ones(int(keep.sum()), bool)
    )


@dataclass(frozen=True)
class Accuracy:
    """Standard deviations of field devices: voltage in pu; P and Q alike, a fraction of |S| plus a floor.

    One deviation for P and Q matches how power-grid-model's iterative-linear method weighs a power sensor
    (a single complex variance), so the residuals it leaves agree with the weights J is computed with.
    """

    v_pu: float = 0.002
    power_fraction: float = 0.01
    power_floor_kw: float = 0.05


def catalogue_measurements(
    network: Network,
    result: PowerFlowResult,
    injections: Injections,
    *,
    step: int = 0,
    accuracy: Accuracy = Accuracy(),
    rng: np.random.Generator | None = None,
) -> MeasurementSet:
    """What the device catalogue's devices would report for one power-flow step (noisy when ``rng`` given).

    One device per appliance (P, Q and the voltage of its bus; an EV charger reports P only and draws no
    reactive power, so its Q is a zero reading), a substation meter per external grid (P, Q, voltage) and a
    monitor per transformer (flow at the HV terminal, voltage of the LV bus); see
    :mod:`gridmesh.telemetry.catalogue`. Used to test the estimator and by study-mode twins.
    """
    index = result.index
    bus_pos = {b: i for i, b in enumerate(index.buses)}
    terminal, element = appliance_order(network)
    zeros_ev, zeros_bat = np.zeros(len(index.ev_chargers)), np.zeros(len(index.batteries))
    p = np.concatenate(
        [injections.load_p_kw[step], injections.ev_p_kw[step], injections.gen_p_kw[step], injections.battery_p_kw[step]]
    )
    q = np.concatenate([injections.load_q_kvar[step], zeros_ev, injections.gen_q_kvar[step], zeros_bat])
    grid_terminal = np.full(len(index.sources), Terminal.EXTERNAL_GRID.value, dtype=object).astype(str)
    trafo_terminal = np.full(len(index.transformers), Terminal.TRAFO_HV.value, dtype=object).astype(str)
    terminal = np.concatenate([terminal, grid_terminal, trafo_terminal])
    element = np.concatenate([element, np.array(index.sources, dtype=str), np.array(index.transformers, dtype=str)])
    p = np.concatenate([p, result.grid_p_kw[step], result.trafo_p_from_kw[step]])
    q = np.concatenate([q, result.grid_q_kvar[step], result.trafo_q_from_kvar[step]])

    appliance_bus = [
        *(network.loads[e].bus for e in index.loads),
        *(network.ev_chargers[e].bus for e in index.ev_chargers),
        *(network.generators[e].bus for e in index.generators),
        *(network.batteries[e].bus for e in index.batteries),
        *(network.external_grids[e].bus for e in index.sources),
        *(network.transformers[e].lv_bus for e in index.transformers),
    ]
    v_bus = np.array(appliance_bus, dtype=str)
    v_all = result.v_pu[step]
    v = v_all[np.array([bus_pos[b] for b in appliance_bus], dtype=np.int64)] if appliance_bus else np.zeros(0)
    energized = np.isfinite(v)  # a device on a dead bus has nothing to report
    v_sigma = np.full(len(v), accuracy.v_pu)
    sigma_p = np.hypot(p, q) * accuracy.power_fraction + accuracy.power_floor_kw  # class accuracy: of |S|
    sigma_q = sigma_p.copy()
    if rng is not None:
        v = v + rng.normal(0.0, v_sigma)
        p = p + rng.normal(0.0, sigma_p)
        q = q + rng.normal(0.0, sigma_q)
    no_q_meter = terminal == Terminal.EV_CHARGER.value
    q[no_q_meter] = 0.0
    return MeasurementSet(
        VoltageMeasurements(v_bus[energized], v[energized], v_sigma[energized], np.zeros(int(energized.sum()), bool)),
        PowerMeasurements(terminal, element, p, q, sigma_p, sigma_q, np.zeros(len(element), bool)),
    )
