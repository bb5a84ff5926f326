"""SunSpec register maps, built from pysunspec2's model definitions, and the value codec.

Nothing here is hand-typed: point names, order, sizes, types, units, access and scale-factor names come
from the JSON model definitions that ship with pysunspec2 (``sunspec2/models/json/model_<id>.json``), and
the per-type packing and "not implemented" sentinels come from ``sunspec2.mb``. What pysunspec2 has no
function for, and is written here: a flat offset table per model, the range check of a raw value against
its type (so a setpoint that does not fit is refused rather than wrapped), and scaling that rounds to the
scale factor's precision.

A model's registers start with ``ID`` (offset 0) and ``L`` (offset 1, the length after ``L``). Engineering
value = raw × 10^sf, where ``sf`` is a ``sunssf`` point of the same model; a raw value equal to the type's
sentinel (``0x8000`` for int16, ``0xFFFF`` for uint16/enum16/bitfield16, ``0x8000`` for a sunssf...) reads as
missing (None).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sunspec2.device as sunspec_device
import sunspec2.mb as sunspec_mb
import sunspec2.mdef as sunspec_mdef

from gridmesh.errors import GridmeshError

BASE_ADDRESS = 40000  # the usual SunSpec base register (others: 0, 50000)
SUNS_MARKER = (0x5375, 0x6E53)  # "SunS", the two registers at the base address
END_MODEL_ID = 0xFFFF  # the model id that ends the chain (followed by length 0)
MAX_READ = 125  # registers per Modbus read (the protocol's limit)

# The models gridmesh reads and writes (the classic SunSpec inverter set, all fixed-length).
COMMON, INVERTER_THREE_PHASE, NAMEPLATE, CONTROLS, STORAGE = 1, 103, 120, 123, 124
SUPPORTED_MODELS = (COMMON, INVERTER_THREE_PHASE, NAMEPLATE, CONTROLS, STORAGE)

Value = int | float | str | None
_RANGES: Mapping[str, tuple[int, int]] = {  # raw ranges without the "not implemented" sentinel
    "int16": (-32767, 32767),
    "uint16": (0, 0xFFFE),
    "count": (0, 0xFFFE),
    "acc16": (0, 0xFFFF),
    "enum16": (0, 0xFFFE),
    "bitfield16": (0, 0x7FFF),
    "int32": (-(2**31) + 1, 2**31 - 1),
    "uint32": (0, 2**32 - 2),
    "acc32": (0, 2**32 - 1),
    "enum32": (0, 2**32 - 2),
    "bitfield32": (0, 2**31 - 1),
    "sunssf": (-10, 10),
    "pad": (0, 0),
}


class SunSpecMapError(GridmeshError):
    """A model, point or value the register map cannot serve (names the model and point)."""


@dataclass(frozen=True, slots=True)
class PointMap:
    """One point of a model: offset from the model's ``ID`` register, size in registers, SunSpec type."""

    name: str
    offset: int
    size: int
    type: str
    sf: str | int | None
    units: str
    writable: bool


@dataclass(frozen=True)
class ModelMap:
    """The register layout of one fixed-length SunSpec model; ``length`` is ``L`` (registers after ``L``)."""

    id: int
    name: str
    length: int
    points: Mapping[str, PointMap]

    def point(self, name: str) -> PointMap:
        try:
            return self.points[name]
        except KeyError:
            raise SunSpecMapError(f"model {self.id} ({self.name}) has no point {name!r}") from None

    def at(self, offset: int) -> PointMap | None:
        """The point that covers register ``offset`` of the model, if any."""
        for p in self.points.values():
            if p.offset <= offset < p.offset + p.size:
                return p
        return None


@functools.cache
def model_map(model_id: int) -> ModelMap:
    """The layout of ``model_id`` from pysunspec2's definition (fixed-length models only)."""
    try:
        definition = sunspec_device.get_model_def(model_id)
    except Exception as exc:  # pysunspec2 raises bare Exception subclasses for an unknown id
        raise SunSpecMapError(f"pysunspec2 has no definition of SunSpec model {model_id}: {exc}") from exc
    group = definition[sunspec_mdef.GROUP]
    if group.get(sunspec_mdef.GROUPS):
        raise SunSpecMapError(f"model {model_id} has repeating groups; gridmesh maps fixed-length models only")
    points: dict[str, PointMap] = {}
    offset = 0
    for pdef in group[sunspec_mdef.POINTS]:
        kind = pdef[sunspec_mdef.TYPE]
        size = int(pdef.get(sunspec_mdef.SIZE) or sunspec_mb.point_type_info[kind].len)
        name = pdef[sunspec_mdef.NAME]
        sf = pdef.get(sunspec_mdef.SF)
        points[name] = PointMap(
            name=name,
            offset=offset,
            size=size,
            type=kind,
            sf=int(sf) if isinstance(sf, int) or (isinstance(sf, str) and sf.lstrip("-").isdigit()) else sf,
            units=str(pdef.get(sunspec_mdef.UNITS, "")),
            writable=pdef.get(sunspec_mdef.ACCESS) == "RW",
        )
        offset += size
    return ModelMap(model_id, str(group[sunspec_mdef.NAME]), offset - 2, points)


def _bytes(registers: Sequence[int]) -> bytes:
    return struct.pack(f">{len(registers)}H", *registers)


def _registers(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def decode_raw(point: PointMap, registers: Sequence[int]) -> int | str | None:
    """The raw (unscaled) value of ``point`` from its registers; None when "not implemented"."""
    info = sunspec_mb.point_type_info[point.type]
    value = info.data_to(_bytes(registers[: point.size]))
    if not info.is_impl(value):
        return None
    return str(value) if point.type == "string" else int(value)


def scale(raw: int | None, sf: int | None) -> float | None:
    """raw × 10^sf rounded to the scale factor's precision; None when either is missing."""
    if raw is None or sf is None:
        return None
    return round(raw * 10.0**sf, max(0, -sf))


def _scale_factor(point: PointMap, raw: Mapping[str, Value]) -> int | None:
    if isinstance(point.sf, int):
        return point.sf
    sf = raw.get(point.sf) if point.sf else None
    return sf if isinstance(sf, int) else None


def decode_model(model: ModelMap, registers: Sequence[int]) -> dict[str, Value]:
    """Every point of ``model`` in engineering units (scaled), from its registers starting at ``ID``.

    A point is None when it is not implemented, or when its scale factor is not.
    """
    if len(registers) < model.length + 2:
        raise SunSpecMapError(f"model {model.id} needs {model.length + 2} registers, got {len(registers)}")
    raw: dict[str, Value] = {
        p.name: decode_raw(p, registers[p.offset : p.offset + p.size]) for p in model.points.values()
    }
    values = dict(raw)
    for p in model.points.values():
        if p.sf is not None:
            value = raw[p.name]
            values[p.name] = scale(value if isinstance(value, int) else None, _scale_factor(p, raw))
    return values


def encode_point(point: PointMap, value: Value, sf: int | None = None, *, model: int = 0) -> list[int]:
    """The registers of ``point`` holding ``value`` (engineering units; scaled by ``sf``), or its sentinel.

    Raises :class:`SunSpecMapError` naming model and point when the scaled value does not fit the type.
    """
    info = sunspec_mb.point_type_info[point.type]
    n_bytes = point.size * 2
    if value is None:
        return _registers(sunspec_mb.create_unimpl_value(point.type, len=n_bytes))
    if point.type == "string":
        text = str(value).encode()
        if len(text) > n_bytes:
            raise SunSpecMapError(f"model {model} point {point.name}: {value!r} is longer than {n_bytes} bytes")
        return _registers(info.to_data(str(value), n_bytes))
    if isinstance(value, str):
        raise SunSpecMapError(f"model {model} point {point.name}: {value!r} is not a number")
    if point.sf is not None and sf is None:
        raise SunSpecMapError(f"model {model} point {point.name}: its scale factor {point.sf} is not implemented")
    raw = round(value / 10.0**sf) if sf is not None else round(value)
    low, high = _RANGES[point.type]
    if not low <= raw <= high:
        shown = f"{value:g} → raw {raw}" if sf is not None else f"{raw}"
        raise SunSpecMapError(
            f"model {model} point {point.name} ({point.type}): {shown} outside {low}..{high}"
            + (f" at scale factor {sf}" if sf is not None else "")
        )
    return _registers(info.to_data(raw, n_bytes))


def encode_model(model: ModelMap, values: Mapping[str, Value]) -> list[int]:
    """The registers of ``model`` (``ID`` and ``L`` included) with ``values`` in engineering units.

    Scale factors are raw integers in ``values`` (their own point names); points not given are "not
    implemented".
    """
    unknown = set(values) - set(model.points)
    if unknown:
        raise SunSpecMapError(f"model {model.id} has no point(s) {sorted(unknown)}")
    raw: dict[str, Value] = {p.name: values.get(p.name) for p in model.points.values() if p.type == "sunssf"}
    registers: list[int] = []
    for p in model.points.values():
        value = {"ID": model.id, "L": model.length}.get(p.name, values.get(p.name))
        registers += encode_point(p, value, _scale_factor(p, raw), model=model.id)
    return registers
