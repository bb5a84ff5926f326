"""SunSpec over Modbus TCP: discover a device's models, read them, write controls checked against its nameplate.

Errors (all :class:`SunSpecError`, a :class:`~gridmesh.errors.GridmeshError`)::

    SunSpecError
    ├── SunSpecOffline      no connection, the connection dropped, or no answer within the timeout
    ├── SunSpecDeviceError  the device answered with a Modbus exception (code and name given)
    ├── NotSunSpec          no ``SunS`` marker, or a model gridmesh needs is missing
    └── SetpointRefused     a setpoint beyond the nameplate (or not encodable): refused before any write

The client reconnects by itself: after :class:`SunSpecOffline` the next call connects afresh and scans the
model chain again (so a device replaced behind the same address is picked up). pymodbus's own background
reconnect is switched off, so a dead device costs one timeout per call, not a hidden retry loop.

Controls (SunSpec models 123 and 124, percentages of the nameplate 120):

* active power limit: ``WMaxLimPct`` = limit / ``WRtg`` · 100, ``WMaxLim_Ena`` = 1 (released: 0);
* reactive power: ``VArWMaxPct`` = Q / ``WRtg`` · 100, ``VArPct_Ena`` = 1 (released: 0);
* fixed power factor: ``OutPFSet``, ``OutPFSet_Ena`` = 1 (released: 0), at least the rated ``PFRtgQ1/Q4``;
* battery power P (W, generator convention: + discharges): ``StorCtl_Mod`` bit 2 (discharge) with
  ``OutWRte`` = P / ``MaxDisChaRte`` · 100, or bit 1 (charge) with ``InWRte`` = −P / ``WChaMax`` · 100;
  P = 0 holds both rates at 0; released: ``StorCtl_Mod`` = 0 (the device's own schedule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from gridmesh.adapters.modbus.simulated_der import CHARGE, DISCHARGE, ENABLED
from gridmesh.adapters.modbus.sunspec_map import (
    BASE_ADDRESS,
    CONTROLS,
    END_MODEL_ID,
    MAX_READ,
    NAMEPLATE,
    STORAGE,
    SUNS_MARKER,
    ModelMap,
    SunSpecMapError,
    Value,
    decode_model,
    encode_point,
    model_map,
)
from gridmesh.errors import GridmeshError

BASE_ADDRESSES = (BASE_ADDRESS, 0, 50000)  # where SunSpec scanners look for ``SunS``, in order
MAX_MODELS = 100  # a chain longer than this is corrupt


class SunSpecError(GridmeshError):
    """A SunSpec device could not be read or written; ``fix`` says what to check."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(f"{message} — {fix}" if fix else message)
        self.fix = fix


class SunSpecOffline(SunSpecError):
    """No connection, a dropped one, or no answer in time."""


class SunSpecDeviceError(SunSpecError):
    """The device answered with a Modbus exception."""

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        try:
            name = ExcCodes(code).name.lower().replace("_", " ")
        except ValueError:
            name = "not a standard code"
        super().__init__(f"{message}: Modbus exception {code} ({name})")


class NotSunSpec(SunSpecError):
    """The device has no SunSpec map, or lacks a model gridmesh needs."""


class SetpointRefused(SunSpecError):
    """A setpoint outside the device's nameplate; nothing was written."""


@dataclass(frozen=True, slots=True)
class SunSpecEndpoint:
    """Where a SunSpec device answers: TCP host and port, Modbus unit id, per-request timeout (s)."""

    host: str
    port: int = 502
    unit: int = 1
    timeout_s: float = 2.0

    @classmethod
    def parse(cls, text: str, *, timeout_s: float = 2.0) -> SunSpecEndpoint:
        """``HOST[:PORT][/UNIT]``, e.g. ``192.0.2.10:502/3``; port 502 and unit 1 by default."""
        rest, _, unit = text.partition("/")
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "502")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"SunSpec endpoint {text!r}: expected HOST[:PORT][/UNIT] with a port 1…65535")
        if unit and (not unit.isdigit() or not 0 <= int(unit) <= 247):
            raise ValueError(f"SunSpec endpoint {text!r}: the unit id must be 0…247")
        return cls(host, int(port), int(unit or 1), timeout_s)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.unit}"


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    """A model found in the chain: its id, the register of its ``ID`` and its length ``L``."""

    id: int
    address: int
    length: int


@dataclass(frozen=True, slots=True)
class Ratings:
    """The nameplate (model 120; W, var, Wh). Battery figures are None on a device without storage."""

    w_max: float
    var_max: float
    pf_min: float
    w_charge_max: float | None
    w_discharge_max: float | None
    capacity_wh: float | None


def _number(values: Mapping[str, Value], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else None


class SunSpecClient:
    """One SunSpec device over Modbus TCP (pymodbus's asyncio client). ``async with`` connects and scans."""

    def __init__(self, endpoint: SunSpecEndpoint) -> None:
        self.endpoint = endpoint
        self.models: dict[int, DiscoveredModel] = {}
        self._client: AsyncModbusTcpClient | None = None
        self._ratings: Ratings | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> SunSpecClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Connect (if not connected) and discover the models; :class:`SunSpecOffline` when unreachable."""
        if self.connected:
            return
        self.close()
        e = self.endpoint
        client = AsyncModbusTcpClient(e.host, port=e.port, timeout=e.timeout_s, retries=0, reconnect_delay=0)
        if not await client.connect():
            client.close()
            raise SunSpecOffline(f"SunSpec device {e}: cannot connect", "check that it is on and the host/port")
        self._client = client
        try:
            self.models = await self._scan()
        except SunSpecError:
            self.close()  # connected but not understood: the next call starts over
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._ratings, self.models = None, None, {}

    async def _call(self, what: str, request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One request, with Modbus exceptions, timeouts and drops turned into :class:`SunSpecError`."""
        client = self._client
        if client is None or not client.connected:
            raise SunSpecOffline(f"SunSpec device {self.endpoint}: not connected ({what})", "call connect()")
        try:
            response = await asyncio.wait_for(request(client), self.endpoint.timeout_s * 2)
        except (ModbusException, TimeoutError, OSError) as exc:
            self.close()
            raise SunSpecOffline(
                f"SunSpec device {self.endpoint}: no answer to {what} ({exc or type(exc).__name__})",
                "the next call reconnects; check the device and the network if this repeats",
            ) from exc
        if response.isError():
            raise SunSpecDeviceError(
                f"SunSpec device {self.endpoint}: {what}", int(getattr(response, "exception_code", 0))
            )
        return response

    async def _read(self, address: int, count: int) -> list[int]:
        registers: list[int] = []
        unit = self.endpoint.unit
        while count > 0:
            n = min(count, MAX_READ)
            start = address
            response = await self._call(
                f"read of {n} registers at {start}",
                lambda c, start=start, n=n: c.read_holding_registers(start, count=n, device_id=unit),  # type: ignore[misc]
            )
            registers += response.registers
            address, count = address + n, count - n
        return registers

    async def _scan(self) -> dict[int, DiscoveredModel]:
        """Find ``SunS`` at a usual base address, then walk the model chain to the end marker."""
        for base in BASE_ADDRESSES:
            try:
                marker = await self._read(base, 2)
            except SunSpecDeviceError:
                continue
            if tuple(marker) == SUNS_MARKER:
                break
        else:
            raise NotSunSpec(
                f"device {self.endpoint}: no 'SunS' marker at {', '.join(map(str, BASE_ADDRESSES))}",
                "check the unit id, and that SunSpec is enabled on the device",
            )
        found: dict[int, DiscoveredModel] = {}
        address = base + 2
        for _ in range(MAX_MODELS):
            model_id, length = await self._read(address, 2)
            if model_id == END_MODEL_ID:
                return found
            found.setdefault(model_id, DiscoveredModel(model_id, address, length))  # first instance of each id
            address += length + 2
        raise NotSunSpec(f"device {self.endpoint}: no end marker after {MAX_MODELS} models", "the map is corrupt")

    def _located(self, model_id: int) -> tuple[DiscoveredModel, ModelMap]:
        found = self.models.get(model_id)
        if found is None:
            have = sorted(self.models)
            raise NotSunSpec(f"device {self.endpoint} has no SunSpec model {model_id} (it has {have})")
        layout = model_map(model_id)
        if found.length != layout.length:
            raise NotSunSpec(
                f"device {self.endpoint}: model {model_id} has length {found.length}, "
                f"pysunspec2's definition {layout.length}"
            )
        return found, layout

    async def read(self, model_id: int) -> dict[str, Value]:
        """Every point of a model in engineering units (None: not implemented). Reconnects if needed."""
        async with self._lock:
            await self.connect()
            found, layout = self._located(model_id)
            return decode_model(layout, await self._read(found.address, found.length + 2))

    async def ratings(self) -> Ratings:
        """The nameplate, read once per connection."""
        if self._ratings is None or not self.connected:
            plate = await self.read(NAMEPLATE)
            storage = await self.read(STORAGE) if STORAGE in self.models else {}
            w_max = _number(plate, "WRtg")
            if w_max is None or w_max <= 0:
                raise NotSunSpec(f"device {self.endpoint}: nameplate WRtg is not implemented")
            q = [abs(v) for n in ("VArRtgQ1", "VArRtgQ4") if (v := _number(plate, n)) is not None]
            self._ratings = Ratings(
                w_max=w_max,
                var_max=min(q) if q else 0.0,
                pf_min=max(
                    (abs(v) for n in ("PFRtgQ1", "PFRtgQ4") if (v := _number(plate, n)) is not None), default=1.0
                ),
                w_charge_max=_number(storage, "WChaMax") or _number(plate, "MaxChaRte"),
                w_discharge_max=_number(plate, "MaxDisChaRte") or (w_max if storage else None),
                capacity_wh=_number(plate, "WHRtg"),
            )
        return self._ratings

    async def write(self, model_id: int, values: Mapping[str, float | int]) -> None:
        """Write points of a model (engineering units), scaled with the device's own scale factors.

        Every value is encoded before the first register is written: a value that does not fit its point
        raises :class:`SetpointRefused` and nothing is written. Adjacent points go in one request.
        """
        async with self._lock:
            await self.connect()
            found, layout = self._located(model_id)
            current = decode_model(layout, await self._read(found.address, found.length + 2))
            order = {name: i for i, name in enumerate(values)}
            runs: list[tuple[int, list[int], int]] = []  # (offset, registers, first place in ``values``)
            for point in sorted((layout.point(n) for n in values), key=lambda p: p.offset):
                if not point.writable:
                    raise SetpointRefused(f"device {self.endpoint}: model {model_id} point {point.name} is read-only")
                sf = point.sf if isinstance(point.sf, int) else current.get(point.sf) if point.sf else None
                try:
                    registers = encode_point(point, values[point.name], sf if isinstance(sf, int) else None,
                                             model=model_id)  # fmt: skip
                except SunSpecMapError as exc:
                    raise SetpointRefused(f"device {self.endpoint}: {exc}") from exc
                if runs and runs[-1][0] + len(runs[-1][1]) == point.offset:
                    offset, merged, first = runs[-1]
                    runs[-1] = (offset, merged + registers, min(first, order[point.name]))
                else:
                    runs.append((point.offset, registers, order[point.name]))
            unit = self.endpoint.unit
            for offset, registers, _ in sorted(runs, key=lambda run: run[2]):  # in the caller's order
                address = found.address + offset
                await self._call(
                    f"write of model {model_id} at {address}",
                    lambda c, a=address, r=registers: c.write_registers(a, r, device_id=unit),  # type: ignore[misc]
                )

    async def set_active_power_limit(self, watts: float | None) -> None:
        """Curtail to ``watts`` (0…WRtg) through model 123; None releases the limit."""
        if watts is None:
            await self.write(CONTROLS, {"WMaxLim_Ena": 0})
            return
        r = await self.ratings()
        if not 0 <= watts <= r.w_max:
            raise SetpointRefused(
                f"device {self.endpoint}: active power limit {watts:g} W outside 0…{r.w_max:g} W (nameplate WRtg)"
            )
        await self.write(CONTROLS, {"WMaxLimPct": watts / r.w_max * 100.0, "WMaxLim_Ena": ENABLED})

    async def set_reactive_power(self, var: float | None) -> None:
        """Reactive power ``var`` (+ injected, within ±VArRtg) through model 123; None releases it."""
        if var is None:
            await self.write(CONTROLS, {"VArPct_Ena": 0})
            return
        r = await self.ratings()
        if not abs(var) <= r.var_max:
            raise SetpointRefused(
                f"device {self.endpoint}: reactive power {var:g} var outside ±{r.var_max:g} var (nameplate VArRtg)"
            )
        await self.write(CONTROLS, {"VArWMaxPct": var / r.w_max * 100.0, "VArPct_Ena": ENABLED})

    async def set_power_factor(self, pf: float | None) -> None:
        """Fixed power factor through model 123 (sign as the device's convention; |pf| ≥ PFRtg); None releases."""
        if pf is None:
            await self.write(CONTROLS, {"OutPFSet_Ena": 0})
            return
        r = await self.ratings()
        if not r.pf_min <= abs(pf) <= 1.0:
            raise SetpointRefused(
                f"device {self.endpoint}: power factor {pf:g} outside ±{r.pf_min:g}…1 (nameplate PFRtg)"
            )
        await self.write(CONTROLS, {"OutPFSet": pf, "OutPFSet_Ena": ENABLED})

    async def set_battery_power(self, watts: float | None) -> None:
        """Battery power (W, + discharging) through model 124; None hands control back to the device."""
        if watts is None:
            await self.write(STORAGE, {"StorCtl_Mod": 0})
            return
        r = await self.ratings()
        if r.w_charge_max is None or r.w_discharge_max is None:
            raise NotSunSpec(f"device {self.endpoint} has no storage model 124: it is not a battery")
        if not -r.w_charge_max <= watts <= r.w_discharge_max:
            raise SetpointRefused(
                f"device {self.endpoint}: battery setpoint {watts:g} W outside "
                f"−{r.w_charge_max:g}…{r.w_discharge_max:g} W (nameplate charge/discharge rates)"
            )
        if watts >= 0:
            rates = {"OutWRte": watts / r.w_discharge_max * 100.0, "InWRte": 0.0}
        else:
            rates = {"OutWRte": 0.0, "InWRte": -watts / r.w_charge_max * 100.0}
        mode = DISCHARGE if watts > 0 else CHARGE if watts < 0 else CHARGE | DISCHARGE
        await self.write(STORAGE, {**rates, "StorCtl_Mod": mode})  # rates first, then the mode
