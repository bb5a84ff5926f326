"""SunSpec points ↔ gridmesh: readings with IEC 61850 quantity names, and ``set-power`` commands.

Readings (SI units, generator convention as SunSpec reports them, + = injected into the grid):

==========  ==========================================  =====
quantity    SunSpec point                               unit
==========  ==========================================  =====
TotW        inverter model (103, 102 or 101) ``W``      W
TotVAr      ``VAr``                                     var
TotVA       ``VA``                                      VA
PhV         ``PhVphA/B/C`` (phase A, B, C) and their    V
            mean as the total
Hz          ``Hz``                                      Hz
TotWh       ``WH``                                      Wh
Tmp         ``TmpCab``                                  °C
SocPct      storage 124 ``ChaState``                    %
WSpt        storage 124 rates in force (0 when          W
            released or holding)
==========  ==========================================  =====

A point the device does not implement yields no reading (rather than a made-up value).
Commands: ``set-power`` with W is an active power limit for an inverter and the battery power for a
battery; ``release`` hands control back to the device. See :mod:`.client` for the registers written.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridmesh.adapters.modbus.client import SunSpecClient, SunSpecError
from gridmesh.adapters.modbus.simulated_der import CHARGE, DISCHARGE
from gridmesh.adapters.modbus.sunspec_map import NAMEPLATE, STORAGE, Value
from gridmesh.services.commands import RELEASE, SET_POWER
from gridmesh.telemetry.catalogue import DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Reading
from gridmesh.telemetry.quantities import Phase

INVERTER_MODELS = (103, 102, 101)  # three-phase, split-phase, single-phase: the same point names
_TOTALS = (("TotW", "W"), ("TotVAr", "VAr"), ("TotVA", "VA"), ("Hz", "Hz"), ("TotWh", "WH"), ("Tmp", "TmpCab"))
_PHASES = ((Phase.A, "PhVphA"), (Phase.B, "PhVphB"), (Phase.C, "PhVphC"))


def _number(values: Mapping[str, Value], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else None


def battery_setpoint_w(storage: Mapping[str, Value], nameplate: Mapping[str, Value]) -> float | None:
    """The battery power the storage controls ask for (W, + discharging); None if not computable."""
    mode = storage.get("StorCtl_Mod")
    if not isinstance(mode, int):
        return None
    p = 0.0
    if mode & DISCHARGE:
        rate, rating = _number(storage, "OutWRte"), _number(nameplate, "MaxDisChaRte") or _number(nameplate, "WRtg")
        if rate is None or rating is None:
            return None
        p += rate / 100.0 * rating
    if mode & CHARGE:
        rate, rating = _number(storage, "InWRte"), _number(storage, "WChaMax")
        if rate is None or rating is None:
            return None
        p -= rate / 100.0 * rating
    return p


def readings_of(models: Mapping[int, Mapping[str, Value]]) -> list[Reading]:
    """gridmesh readings from a device's decoded models (model id → points in engineering units)."""
    inverter = next((models[m] for m in INVERTER_MODELS if m in models), {})
    readings = [Reading(q, v) for q, point in _TOTALS if (v := _number(inverter, point)) is not None]
    phases = [(ph, v) for ph, point in _PHASES if (v := _number(inverter, point)) is not None]
    if phases:
        readings.append(Reading("PhV", sum(v for _, v in phases) / len(phases)))
        readings += [Reading("PhV", v, ph) for ph, v in phases]
    storage = models.get(STORAGE)
    if storage is not None:
        soc = _number(storage, "ChaState")
        if soc is not None:
            readings.append(Reading("SocPct", soc))
        setpoint = battery_setpoint_w(storage, models.get(NAMEPLATE, {}))
        if setpoint is not None:
            readings.append(Reading("WSpt", setpoint))
    return readings


class SunSpecDevice:
    """A gridmesh field device (inverter or battery, from the catalogue) behind a SunSpec client."""

    def __init__(self, spec: DeviceSpec, client: SunSpecClient) -> None:
        if spec.kind not in (DeviceKind.INVERTER, DeviceKind.BATTERY):
            raise ValueError(f"{spec.id}: a SunSpec device serves an inverter or a battery, not a {spec.kind.value}")
        self.spec, self.client = spec, client

    async def poll(self) -> list[Reading]:
        """Read the models the readings come from; raises :class:`SunSpecError` when the device fails."""
        await self.client.connect()
        wanted = [m for m in (*INVERTER_MODELS, NAMEPLATE, STORAGE) if m in self.client.models]
        return readings_of({m: await self.client.read(m) for m in wanted})

    async def execute(self, action: str, value_w: float = 0.0) -> str:
        """Carry out a verified command (W, generator convention); the refusal reason, or ``""`` when done."""
        if action not in (SET_POWER, RELEASE):
            return f"unknown action {action!r}; a {self.spec.kind.value} takes {SET_POWER} or {RELEASE}"
        target = None if action == RELEASE else value_w
        try:
            if self.spec.kind is DeviceKind.BATTERY:
                await self.client.set_battery_power(target)
            else:
                await self.client.set_active_power_limit(target)
        except SunSpecError as exc:
            return str(exc)
        return ""
