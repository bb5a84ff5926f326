"""A simulated SunSpec device: pymodbus's asyncio TCP server in front of :class:`SimulatedDer` state.

The register map is the standard one a SunSpec scanner looks for: ``SunS`` at 40000, then the models of
each device (``ID``, ``L``, points) back to back, and the end marker ``0xFFFF`` with length 0. Every read
renders the registers afresh from the device's state (so they follow the physics); a write must fall on
writable points of one model and is judged by the device before it lands: a refused write is answered
with Modbus exception 3 (illegal value), a write to a read-only or unmapped register with exception 2
(illegal address).

pymodbus 3.16 serves a :class:`pymodbus.simulator.SimDevice` per unit id; its ``action`` hook sees each
request with the device's register list, which is where the rendering and the write checks happen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridmesh.adapters.modbus.simulated_der import SimulatedDer
from gridmesh.adapters.modbus.sunspec_map import (
    BASE_ADDRESS,
    END_MODEL_ID,
    SUNS_MARKER,
    ModelMap,
    SunSpecMapError,
    decode_model,
    encode_model,
    model_map,
)

log = logging.getLogger(__name__)
_WRITE_CODES = frozenset({6, 16, 22, 23})


@dataclass(frozen=True)
class Layout:
    """Where each model of a device starts (absolute register of its ``ID``)."""

    base: int
    models: tuple[tuple[int, ModelMap], ...]  # (address, map), chain order
    end: int  # address of the end marker

    @classmethod
    def of(cls, model_ids: Sequence[int], base: int = BASE_ADDRESS) -> Layout:
        address, placed = base + len(SUNS_MARKER), []
        for mid in model_ids:
            m = model_map(mid)
            placed.append((address, m))
            address += m.length + 2
        return cls(base, tuple(placed), address)

    def model_at(self, address: int, count: int) -> tuple[int, ModelMap] | None:
        """The model whose registers hold all of ``address … address+count-1``, if one does."""
        for start, m in self.models:
            if start <= address and address + count <= start + m.length + 2:
                return start, m
        return None


class _DeviceRegisters:
    """The register image of one unit id, rendered from its device on every request."""

    def __init__(self, der: SimulatedDer, base: int) -> None:
        self.der = der
        self.layout = Layout.of(der.models, base)

    def render(self) -> list[int]:
        points = self.der.points()
        registers = list(SUNS_MARKER)
        for _, m in self.layout.models:
            registers += encode_model(m, points[m.id])
        return [*registers, END_MODEL_ID, 0]

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus's hook: refresh ``registers`` in place; judge a write before pymodbus stores it."""
        image = self.render()
        registers[: len(image)] = image
        if function_code not in _WRITE_CODES or set_values is None:
            return None
        found = self.layout.model_at(address, count)
        if found is None:
            return ExcCodes.ILLEGAL_ADDRESS
        start, m = found
        offsets = range(address - start, address - start + count)
        if any((p := m.at(o)) is None or not p.writable for o in offsets):
            return ExcCodes.ILLEGAL_ADDRESS
        proposed = image[start - start_address : start - start_address + m.length + 2]
        proposed[offsets.start : offsets.stop] = [int(v) for v in set_values]
        try:
            values = decode_model(m, proposed)
        except SunSpecMapError as exc:
            log.warning("unit %s: write to model %d refused: %s", self.der.rating.serial, m.id, exc)
            return ExcCodes.ILLEGAL_VALUE
        written = {p.name: values[p.name] for o in offsets if (p := m.at(o)) is not None}
        reason = self.der.write(m.id, written)
        if reason:
            log.warning("unit %s: write to model %d refused: %s", self.der.rating.serial, m.id, reason)
            return ExcCodes.ILLEGAL_VALUE
        return None


class SimulatedSunSpecServer:
    """Modbus TCP server for simulated DERs, one per unit id. ``async with`` starts and stops it.

    ``port=0`` picks a free port; :attr:`port` says which after :meth:`start`. Stopping drops every client
    connection (a device going offline); starting again on the same port brings it back.
    """

    def __init__(
        self, devices: Mapping[int, SimulatedDer], *, host: str = "127.0.0.1", port: int = 0, base: int = BASE_ADDRESS
    ) -> None:
        if not devices:
            raise ValueError("a SunSpec server needs at least one device")
        self.host, self.port, self.base = host, port, base
        self.units = {unit: _DeviceRegisters(der, base) for unit, der in devices.items()}
        self._server: ModbusTcpServer | None = None

    def _sim_devices(self) -> list[SimDevice]:
        sims = []
        for unit, regs in self.units.items():
            image = regs.render()
            block = SimData(self.base, values=image, datatype=DataType.REGISTERS)
            sims.append(SimDevice(id=unit, simdata=[block], action=regs.action))
        return sims

    async def start(self) -> int:
        """Listen; returns the port."""
        if self._server is not None:
            return self.port
        server = ModbusTcpServer(self._sim_devices(), address=(self.host, self.port))
        await server.serve_forever(background=True)
        listener: Any = server.transport
        self.port = int(listener.sockets[0].getsockname()[1])
        self._server = server
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> SimulatedSunSpecServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()
