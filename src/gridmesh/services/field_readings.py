"""What each simulated device measures: per-kind value tables computed from a grid state with numpy.

For every device kind one :class:`KindTable` resolves, once, where each device's element and bus sit in
the power flow's arrays; :meth:`KindTable.values` then yields a ``(devices, quantities)`` matrix in SI
units for a whole kind at once. Conventions (W, var, V, A, Hz, %):

* meters: load convention (+ = consumption); inverters and batteries: generator convention;
* EV chargers: load convention for ``TotW`` and for ``WSpt`` (the charging cap in force; the charger's
  rating when released) — the ``set-power`` command that sets it is in generator convention (≤ 0);
* transformer monitors: the power flow through the transformer into it from the HV terminal (``TotW``,
  ``TotVAr``, and ``A`` the HV-side current: the terminal where the power-flow engine reports both P and Q)
  and ``PhV`` of the LV busbar;
* substation: import from the upstream grid (> 0) and the nominal 50 Hz;
* ``PhV`` is the phase-to-neutral magnitude ``u_ll/√3``, 0 V on a de-energised bus;
* switches: ``Pos`` as IEC 61850 Dbpos (1 open, 2 closed); ``FltInd`` 1 while the fault passage indicator
  is latched (see :mod:`~gridmesh.services.field_faults`), else 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.network import Network
from gridmesh.physics.pgm_input import ModelIndex
from gridmesh.physics.powerflow import FloatArray
from gridmesh.services.field_grid import GridState
from gridmesh.telemetry.catalogue import REPORTS, DeviceKind, DeviceSpec
from gridmesh.telemetry.quantities import POS_CLOSED, POS_OPEN
from gridmesh.units import V_PER_KV, W_PER_KW

IntArray = npt.NDArray[np.int64]
NOMINAL_HZ = 50.0
HZ_NOISE_PER_UNIT = 2.0  # Hz standard deviation per unit of relative noise (0.01 Hz at noise 0.005)
NOISY = frozenset({"TotW", "TotVAr", "PhV", "A"})  # measured; setpoints, SOC and positions are exact
_SQRT3 = math.sqrt(3.0)
_SWITCH_COLUMNS = ("Pos", "FltInd")


def _positions(ids: Sequence[str], wanted: Sequence[str]) -> IntArray:
    where = {e: i for i, e in enumerate(ids)}
    return np.array([where[e] for e in wanted], dtype=np.int64)


@dataclass(frozen=True)
class KindTable:
    """The devices of one kind and where their element and bus sit in the power flow's arrays."""

    kind: DeviceKind
    devices: tuple[DeviceSpec, ...]
    rows: IntArray  # positions in the simulator's device order (sequence numbers, schedule)
    element: IntArray  # position of each device's element in its power-flow table
    bus: IntArray  # position of the bus each device measures the voltage of
    bus_phase_v: FloatArray  # nominal phase-to-neutral voltage of that bus, V
    hv_bus: IntArray  # transformer monitors: the HV bus (for the HV-side current); else empty
    hv_phase_v: FloatArray
    quantities: tuple[str, ...]

    def values(self, state: GridState) -> FloatArray:
        """``(len(devices), len(quantities))`` in SI units at ``state`` (noise-free)."""
        flow = state.flow
        v_pu = np.nan_to_num(flow.v_pu[0])
        phv = v_pu[self.bus] * self.bus_phase_v
        e, n = self.element, len(self.devices)
        zeros = np.zeros(n)
        kind = self.kind
        if kind is DeviceKind.METER:
            columns = [state.load_p_kw[e] * W_PER_KW, state.load_q_kvar[e] * W_PER_KW, phv]
        elif kind is DeviceKind.INVERTER:
            columns = [state.gen_p_kw[e] * W_PER_KW, state.gen_q_kvar[e] * W_PER_KW, phv]
        elif kind is DeviceKind.BATTERY:
            p = state.battery_p_kw[e] * W_PER_KW
            hz = np.full(n, NOMINAL_HZ) if state.battery_hz is None else state.battery_hz[e]  # NaN: no supply
            columns = [p, zeros, phv, state.battery_soc[e] * 100.0, state.battery_setpoint_kw[e] * W_PER_KW, hz]
        elif kind is DeviceKind.EVSE:
            columns = [state.ev_p_kw[e] * W_PER_KW, state.ev_limit_kw[e] * W_PER_KW]
        elif kind is DeviceKind.TRANSFORMER_MONITOR:
            p = np.nan_to_num(flow.trafo_p_from_kw[0][e]) * W_PER_KW
            q = np.nan_to_num(flow.trafo_q_from_kvar[0][e]) * W_PER_KW
            hv = v_pu[self.hv_bus] * self.hv_phase_v
            amps = np.divide(np.hypot(p, q), 3.0 * hv, out=np.zeros(n), where=hv > 0)
            columns = [p, q, phv, amps]
        elif kind is DeviceKind.SUBSTATION:
            p = np.nan_to_num(flow.grid_p_kw[0][e]) * W_PER_KW
            q = np.nan_to_num(flow.grid_q_kvar[0][e]) * W_PER_KW
            columns = [p, q, phv, np.full(n, NOMINAL_HZ)]
        else:
            closed = np.array([state.switch_closed[d.element] for d in self.devices], dtype=bool)
            indicated = np.array([d.element in state.fault_indicated for d in self.devices], dtype=np.float64)
            columns = [np.where(closed, POS_CLOSED, POS_OPEN), indicated]
        return np.column_stack(columns) if n else np.zeros((0, len(self.quantities)))

    def with_noise(self, values: FloatArray, noise: float, rng: np.random.Generator) -> FloatArray:
        """Gaussian measurement noise: relative ``noise`` on measured quantities, small absolute on Hz."""
        if noise <= 0 or not values.size:
            return values
        out = values.copy()
        for j, q in enumerate(self.quantities):
            if q in NOISY:
                out[:, j] *= 1.0 + noise * rng.standard_normal(len(out))
            elif q == "Hz":
                out[:, j] += HZ_NOISE_PER_UNIT * noise * rng.standard_normal(len(out))
        return out


def kind_tables(network: Network, index: ModelIndex, devices: Sequence[DeviceSpec]) -> dict[DeviceKind, KindTable]:
    """One table per device kind present, devices in the given order."""
    element_ids: Mapping[DeviceKind, Sequence[str]] = {
        DeviceKind.METER: index.loads,
        DeviceKind.INVERTER: index.generators,
        DeviceKind.BATTERY: index.batteries,
        DeviceKind.EVSE: index.ev_chargers,
        DeviceKind.TRANSFORMER_MONITOR: index.transformers,
        DeviceKind.SUBSTATION: index.sources,
        DeviceKind.SWITCH: tuple(s.id for s in network.switches.values() if s.remote),
    }
    bus_pos = {b: i for i, b in enumerate(index.buses)}
    phase_v = np.array([network.buses[b].vn_kv * V_PER_KV / _SQRT3 for b in index.buses])
    tables: dict[DeviceKind, KindTable] = {}
    for kind in DeviceKind:
        rows = [i for i, d in enumerate(devices) if d.kind is kind]
        if not rows:
            continue
        specs = tuple(devices[i] for i in rows)
        bus = np.array([bus_pos[d.bus] for d in specs], dtype=np.int64)
        hv = (
            np.array([bus_pos[network.transformers[d.element].hv_bus] for d in specs], dtype=np.int64)
            if kind is DeviceKind.TRANSFORMER_MONITOR
            else np.zeros(0, dtype=np.int64)
        )
        tables[kind] = KindTable(
            kind=kind,
            devices=specs,
            rows=np.array(rows, dtype=np.int64),
            element=_positions(element_ids[kind], [d.element for d in specs]),
            bus=bus,
            bus_phase_v=phase_v[bus],
            hv_bus=hv,
            hv_phase_v=phase_v[hv],
            quantities=_SWITCH_COLUMNS if kind is DeviceKind.SWITCH else REPORTS[kind],
        )
    return tables
