"""Turn the live image into what the state estimator is fitted to.

Fresh device readings become measurements with the devices' accuracy; every appliance no device has
reported recently gets a pseudo-measurement from its profile at the present instant, with a large
variance, so that the network stays observable while real readings dominate wherever they exist.
A reading counts as fresh for 2.5 reporting periods of its device kind.

Readings arrive asynchronously (a smart meter every 15 minutes, a transformer monitor every minute), so
one cycle fits values of different ages to one instant. An old reading is a worse estimate of *now*:
its standard deviation grows with its age (``AGE_DRIFT_PER_H`` of the value, ``AGE_DRIFT_V_PU_PER_H`` for
voltages), which keeps the chi-square test honest instead of flagging the grid's own movement as bad data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np

from gridmesh.model.network import Network
from gridmesh.physics.measurement_set import (
    Accuracy,
    MeasurementSet,
    PowerMeasurements,
    Terminal,
    VoltageMeasurements,
    pseudo_measurements,
    v_pu_from_phase_volts,
)
from gridmesh.services.live_image import LiveImage
from gridmesh.sim.profiles_at import ProfilesAt
from gridmesh.telemetry.catalogue import DeviceKind
from gridmesh.units import W_PER_KW

NS_PER_S = 1_000_000_000
NS_PER_H = 3600 * NS_PER_S
FRESH_PERIODS = 2.5
AGE_DRIFT_PER_H = 0.3  # relative change of a load or infeed an hour-old reading may have missed
AGE_DRIFT_V_PU_PER_H = 0.01
DEFAULT_ACCURACY = Accuracy()

# Where each kind's TotW/TotVAr enter the estimator (see physics.measurement_set for signs).
TERMINAL_OF: Mapping[DeviceKind, Terminal] = {
    DeviceKind.METER: Terminal.LOAD,
    DeviceKind.EVSE: Terminal.EV_CHARGER,
    DeviceKind.INVERTER: Terminal.GENERATOR,
    DeviceKind.BATTERY: Terminal.BATTERY,
    DeviceKind.SUBSTATION: Terminal.EXTERNAL_GRID,
    DeviceKind.TRANSFORMER_MONITOR: Terminal.TRAFO_HV,
}
_NO_VAR_METER = {DeviceKind.EVSE}  # an EV charger reports P only and draws no reactive power


class TelemetryMeasurements:
    """Builds one cycle's :class:`MeasurementSet` from the live image and the profiles."""

    def __init__(
        self,
        network: Network,
        profiles: ProfilesAt,
        periods_s: Mapping[DeviceKind, float],
        *,
        accuracy: Accuracy = DEFAULT_ACCURACY,
    ) -> None:
        self.network, self.profiles, self.accuracy = network, profiles, accuracy
        self.periods_s = periods_s
        self._vn_kv = {b.id: b.vn_kv for b in network.buses.values()}
        self._n_ev, self._n_bat = len(network.ev_chargers), len(network.batteries)

    def _fresh(self, kind: DeviceKind, ts: np.ndarray, now_ns: int) -> np.ndarray:
        age_ns = FRESH_PERIODS * self.periods_s.get(kind, 60.0) * NS_PER_S
        fresh: np.ndarray = ts >= now_ns - age_ns
        return fresh

    def build(self, image: LiveImage, now: datetime, now_ns: int) -> MeasurementSet:
        buses: list[np.ndarray] = []
        v_pu: list[np.ndarray] = []
        v_sigma: list[np.ndarray] = []
        powers: list[PowerMeasurements] = []
        measured: list[np.ndarray] = []
        acc = self.accuracy
        for kind, terminal in TERMINAL_OF.items():
            p = image.series(kind, "TotW")
            if not p.devices:
                continue
            ok = self._fresh(kind, p.ts_ns, now_ns) & np.isfinite(p.value)
            p_kw = p.value[ok] / W_PER_KW
            if kind in _NO_VAR_METER:
                q_kvar = np.zeros_like(p_kw)
            else:
                q = image.series(kind, "TotVAr")
                q_kvar = np.where(np.isfinite(q.value[ok]), q.value[ok], 0.0) / W_PER_KW
            age_h = (now_ns - p.ts_ns[ok]) / NS_PER_H
            sigma = np.hypot(p_kw, q_kvar) * (acc.power_fraction + AGE_DRIFT_PER_H * age_h) + acc.power_floor_kw
            elements = np.array(p.elements, dtype=str)[ok]
            powers.append(
                PowerMeasurements(
                    np.full(len(elements), terminal.value).astype(str),
                    elements,
                    p_kw,
                    q_kvar,
                    sigma,
                    sigma.copy(),
                    np.zeros(len(elements), dtype=bool),
                )
            )
            measured.append(elements)
        for kind in DeviceKind:
            v = image.series(kind, "PhV")
            if not v.devices:
                continue
            ok = self._fresh(kind, v.ts_ns, now_ns) & np.isfinite(v.value) & (v.value > 0)
            bus = np.array(v.buses, dtype=str)[ok]
            vn = np.array([self._vn_kv[b] for b in bus], dtype=np.float64)
            buses.append(bus)
            v_pu.append(v_pu_from_phase_volts(v.value[ok], vn))
            v_sigma.append(acc.v_pu + AGE_DRIFT_V_PU_PER_H * (now_ns - v.ts_ns[ok]) / NS_PER_H)
        base = self.profiles.values(now)
        zeros_ev, zeros_bat = np.zeros(self._n_ev), np.zeros(self._n_bat)
        pseudo = pseudo_measurements(
            self.network,
            np.concatenate([base.load_p_kw[0], zeros_ev, base.gen_p_kw[0], zeros_bat]),
            np.concatenate([base.load_q_kvar[0], zeros_ev, base.gen_q_kvar[0], zeros_bat]),
            exclude=set(np.concatenate(measured).tolist()) if measured else (),
        )
        bus_all = np.concatenate(buses) if buses else np.zeros(0, dtype=str)
        v_all = np.concatenate(v_pu) if v_pu else np.zeros(0)
        sigma_all = np.concatenate(v_sigma) if v_sigma else np.zeros(0)
        voltages = VoltageMeasurements(bus_all, v_all, sigma_all, np.zeros(len(v_all), dtype=bool))
        total = pseudo
        for block in powers:
            total = block + total
        return MeasurementSet(voltages, total)
