"""The physics of a simulated SunSpec DER: a PV inverter or a battery inverter, and its SunSpec points.

Deliberately simple, so tests can compute the expected values by hand: a PV inverter produces
``min(available, WMaxLimPct·WRtg)``; a battery follows the storage model's rates (``OutWRte`` % of
``MaxDisChaRte`` to discharge, ``InWRte`` % of ``MaxChaRte`` to charge, enabled by the ``StorCtl_Mod`` bits)
until its state of charge reaches 0 % or 100 %; reactive power is ``VArWMaxPct`` % of ``WRtg``, or follows a
fixed power factor ``OutPFSet`` when that is enabled. Signs: W and var in generator convention (+ =
injected), as SunSpec model 103 reports them. No protocol here: :mod:`.simulated_device` serves these points.

A write is judged as a whole: every changed control is checked against the device's ratings and the whole
write is refused with the reason when one is wrong (the server answers Modbus exception 3, illegal value).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gridmesh.adapters.modbus.sunspec_map import COMMON, CONTROLS, INVERTER_THREE_PHASE, NAMEPLATE, STORAGE, Value

CHARGE, DISCHARGE = 1, 2  # StorCtl_Mod bits: the charge rate (InWRte) / discharge rate (OutWRte) is in force
ENABLED = 1  # *_Ena enum value
_V_MIN = 207.0  # V: 0.9 of 230 V, the lowest voltage at which the inverter still delivers its rated power
_DER_TYPE_PV, _DER_TYPE_PV_STOR = 4, 82  # model 120 DERTyp
_CHA_ST_EMPTY, _CHA_ST_CHARGING, _CHA_ST_DISCHARGING, _CHA_ST_FULL, _CHA_ST_HOLDING = 2, 3, 4, 5, 6
_ST_OFF, _ST_MPPT, _ST_THROTTLED = 1, 4, 5  # model 103 St (operating state)


class DerKind(StrEnum):
    PV = "pv"
    BATTERY = "battery"


def scale_factor_for(max_abs: float, *, finest: int = -2) -> int:
    """The smallest scale factor (≥ ``finest``) at which ``max_abs`` fits a signed 16-bit register."""
    sf = finest
    while max_abs / 10.0**sf > 32767:
        sf += 1
    return sf


@dataclass(frozen=True, slots=True)
class DerRating:
    """Nameplate of a simulated DER (W, var, Wh). Battery rates default to the AC rating."""

    kind: DerKind
    w_max: float
    var_max: float
    capacity_wh: float = 0.0
    w_charge_max: float = 0.0
    w_discharge_max: float = 0.0
    serial: str = "SIM-0001"

    def __post_init__(self) -> None:
        if not (self.w_max > 0 and self.var_max >= 0):
            raise ValueError(f"{self.serial}: w_max must be > 0 W and var_max ≥ 0 var")
        if self.kind is DerKind.BATTERY and not (
            self.capacity_wh > 0 and 0 < self.w_charge_max <= self.w_max and 0 < self.w_discharge_max <= self.w_max
        ):
            raise ValueError(f"{self.serial}: a battery needs capacity_wh > 0 and 0 < charge/discharge rates ≤ w_max")


class SimulatedDer:
    """State of one simulated DER. Thread-safe: the Modbus server and a simulator may share it."""

    def __init__(self, rating: DerRating, *, available_w: float = 0.0, soc_pct: float = 50.0) -> None:
        self.rating = rating
        self.available_w = available_w  # PV: what the sun offers now (W)
        self.soc_pct = soc_pct
        self.v_phase = 230.0  # V, phase to neutral, the same on the three phases
        self.hz = 50.0
        self.energy_wh = 0.0
        self._lock = threading.Lock()
        self._sf = {
            "W": scale_factor_for(rating.w_max * 1.1),
            "VAr": scale_factor_for(max(rating.var_max, 1.0) * 1.1),
            "A": scale_factor_for(rating.w_max / 3 / 180.0),
            "Wh": scale_factor_for(max(rating.capacity_wh, 1.0), finest=0),
        }
        self._controls: dict[int, dict[str, Value]] = {
            COMMON: {"DA": 1},
            CONTROLS: {
                "Conn": 1,
                "WMaxLimPct": 100.0,
                "WMaxLim_Ena": 0,
                "OutPFSet": 1.0,
                "OutPFSet_Ena": 0,
                "VArWMaxPct": 0.0,
                "VArPct_Ena": 0,
                "WMaxLimPct_SF": -1,
                "OutPFSet_SF": -3,
                "VArPct_SF": -1,
            },
        }
        if rating.kind is DerKind.BATTERY:
            self._controls[STORAGE] = {
                "WChaMax": rating.w_charge_max, "WChaGra": 100, "WDisChaGra": 100, "StorCtl_Mod": 0,
                "MinRsvPct": 0.0, "OutWRte": 0.0, "InWRte": 0.0, "ChaGriSet": 1,
                "WChaMax_SF": self._sf["W"], "WChaDisChaGra_SF": 0, "MinRsvPct_SF": -1, "ChaState_SF": -1,
                "InOutWRte_SF": -2,
            }  # fmt: skip

    @property
    def models(self) -> tuple[int, ...]:
        """The SunSpec models this device serves, in chain order."""
        base = (COMMON, INVERTER_THREE_PHASE, NAMEPLATE, CONTROLS)
        return (*base, STORAGE) if self.rating.kind is DerKind.BATTERY else base

    def set_available(self, watts: float) -> None:
        """PV: the power the panels offer (W, clipped to 0…WRtg)."""
        with self._lock:
            self.available_w = min(max(watts, 0.0), self.rating.w_max)

    def _limit_w(self) -> float:
        c = self._controls[CONTROLS]
        if c["WMaxLim_Ena"] == ENABLED:
            return float(c["WMaxLimPct"] or 0.0) / 100.0 * self.rating.w_max
        return self.rating.w_max

    def _storage_w(self) -> float:
        """The battery's commanded power (W, + discharging) before the SOC and the WMaxLimPct limit."""
        s = self._controls[STORAGE]
        mode = int(s["StorCtl_Mod"] or 0)
        p = 0.0
        if mode & DISCHARGE:
            p += float(s["OutWRte"] or 0.0) / 100.0 * self.rating.w_discharge_max
        if mode & CHARGE:
            p -= float(s["InWRte"] or 0.0) / 100.0 * float(s["WChaMax"] or 0.0)
        return p

    def active_power_w(self) -> float:
        """Output now (W, generator convention)."""
        with self._lock:
            return self._active_power_w()

    def _active_power_w(self) -> float:
        if self._controls[CONTROLS]["Conn"] != ENABLED:
            return 0.0
        if self.rating.kind is DerKind.PV:
            return min(self.available_w, self._limit_w())
        p = self._storage_w()
        floor = float(self._controls[STORAGE]["MinRsvPct"] or 0.0)
        if (p > 0 and self.soc_pct <= floor) or (p < 0 and self.soc_pct >= 100.0):
            return 0.0
        return min(p, self._limit_w())

    def _reactive_power_var(self, p: float) -> float:
        c = self._controls[CONTROLS]
        if c["Conn"] != ENABLED:
            return 0.0
        if c["OutPFSet_Ena"] == ENABLED:
            pf = float(c["OutPFSet"] or 1.0)
            q = abs(p) * math.tan(math.acos(min(abs(pf), 1.0))) * math.copysign(1.0, pf)
        elif c["VArPct_Ena"] == ENABLED:
            q = float(c["VArWMaxPct"] or 0.0) / 100.0 * self.rating.w_max
        else:
            q = 0.0
        return max(-self.rating.var_max, min(q, self.rating.var_max))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass at the present output: state of charge and the energy register move."""
        with self._lock:
            p = self._active_power_w()
            self.energy_wh += max(p, 0.0) * seconds / 3600.0
            if self.rating.kind is DerKind.BATTERY:
                soc = self.soc_pct - p * seconds / 3600.0 / self.rating.capacity_wh * 100.0
                self.soc_pct = min(max(soc, 0.0), 100.0)

    def points(self) -> dict[int, dict[str, Value]]:
        """Every model's point values in engineering units (scale factors as raw integers)."""
        with self._lock:
            p = self._active_power_w()
            q = self._reactive_power_var(p)
            values = {
                COMMON: {"Mn": "gridmesh", "Md": f"simulated {self.rating.kind.value}", "Vr": "1",
                         "SN": self.rating.serial, **self._controls[COMMON]},
                INVERTER_THREE_PHASE: self._measurements(p, q),
                NAMEPLATE: self._nameplate(),
                CONTROLS: dict(self._controls[CONTROLS]),
            }  # fmt: skip
            if self.rating.kind is DerKind.BATTERY:
                values[STORAGE] = self._storage(p)
            return values

    def _measurements(self, p: float, q: float) -> dict[str, Value]:
        sf = self._sf
        s = math.hypot(p, q)
        amps = s / (3 * self.v_phase) if self.v_phase > 0 else 0.0
        throttled = self.rating.kind is DerKind.PV and p < self.available_w
        state = _ST_OFF if self._controls[CONTROLS]["Conn"] != ENABLED else _ST_THROTTLED if throttled else _ST_MPPT
        return {
            "A": 3 * amps, "AphA": amps, "AphB": amps, "AphC": amps, "A_SF": sf["A"],
            "PhVphA": self.v_phase, "PhVphB": self.v_phase, "PhVphC": self.v_phase, "V_SF": -1,
            "W": p, "W_SF": sf["W"], "Hz": self.hz, "Hz_SF": -2, "VA": s, "VA_SF": sf["W"],
            "VAr": q, "VAr_SF": sf["VAr"], "PF": (p / s * 100.0) if s else 100.0, "PF_SF": -1,
            "WH": round(self.energy_wh), "WH_SF": 0, "TmpCab": 35.0, "Tmp_SF": -1, "St": state,
            "Evt1": 0, "Evt2": 0,
        }  # fmt: skip

    def _nameplate(self) -> dict[str, Value]:
        r, w_sf = self.rating, self._sf["W"]
        battery = r.kind is DerKind.BATTERY
        return {
            "DERTyp": _DER_TYPE_PV_STOR if battery else _DER_TYPE_PV,
            "WRtg": r.w_max, "WRtg_SF": w_sf, "VARtg": r.w_max, "VARtg_SF": w_sf,
            "VArRtgQ1": r.var_max, "VArRtgQ2": r.var_max, "VArRtgQ3": -r.var_max, "VArRtgQ4": -r.var_max,
            "VArRtg_SF": self._sf["VAr"], "ARtg": r.w_max / (3 * _V_MIN), "ARtg_SF": self._sf["A"],
            "PFRtgQ1": 0.8, "PFRtgQ2": 0.8, "PFRtgQ3": -0.8, "PFRtgQ4": -0.8, "PFRtg_SF": -3,
            "WHRtg": r.capacity_wh if battery else None, "WHRtg_SF": self._sf["Wh"],
            "MaxChaRte": r.w_charge_max if battery else None, "MaxChaRte_SF": w_sf,
            "MaxDisChaRte": r.w_discharge_max if battery else None, "MaxDisChaRte_SF": w_sf,
        }  # fmt: skip

    def _storage(self, p: float) -> dict[str, Value]:
        if p > 0:
            state = _CHA_ST_DISCHARGING
        elif p < 0:
            state = _CHA_ST_CHARGING
        else:
            state = _CHA_ST_EMPTY if self.soc_pct <= 0 else _CHA_ST_FULL if self.soc_pct >= 100 else _CHA_ST_HOLDING
        return {**self._controls[STORAGE], "ChaState": self.soc_pct, "ChaSt": state}

    def write(self, model: int, values: Mapping[str, Value]) -> str:
        """Take the written control points of ``model``; the refusal reason, or ``""`` when applied."""
        with self._lock:
            current = self._controls.get(model)
            if current is None:
                return f"model {model} has no writable points on this device"
            proposed = {**current, **{k: v for k, v in values.items() if k in current}}
            reason = self._check(model, proposed)
            if not reason:
                current.update(proposed)
            return reason

    def _check(self, model: int, c: Mapping[str, Value]) -> str:
        def within(name: str, low: float, high: float) -> str:
            value = c.get(name)
            if value is None or not isinstance(value, int | float) or not low <= value <= high:
                return f"{name} = {value} outside {low:g}…{high:g}"
            return ""

        checks: list[str] = []
        if model == CONTROLS:
            checks = [within("WMaxLimPct", 0, 100), within("VArWMaxPct", -100, 100), within("OutPFSet", -1, 1)]
            checks += [within(name, 0, 1) for name in ("Conn", "WMaxLim_Ena", "OutPFSet_Ena", "VArPct_Ena")]
            pf = c.get("OutPFSet")
            if c.get("OutPFSet_Ena") == ENABLED and isinstance(pf, float | int) and abs(pf) < 0.8:
                checks.append(f"OutPFSet = {pf} below the rated power factor 0.8")
        elif model == STORAGE:
            r = self.rating
            checks = [within("StorCtl_Mod", 0, CHARGE | DISCHARGE), within("InWRte", 0, 100)]
            checks += [within("OutWRte", 0, 100), within("MinRsvPct", 0, 100), within("WChaMax", 0, r.w_charge_max)]
        return next((reason for reason in checks if reason), "")
