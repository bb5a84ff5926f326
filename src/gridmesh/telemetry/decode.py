"""Bytes → a validated message, or a :class:`Rejection` with a stable reason. Never raises on input.

Checks, in order: size (before any parsing, so a 10 MB payload costs nothing), JSON syntax and types
(msgspec into the committed Structs), integer ranges of ``seq`` and ``ts``, the number of readings, then the
readings themselves: finite values, known quantities, values inside the quantity's plausible range, no
(quantity, phase) twice in one message. The reading checks are columnar (numpy over every reading of a
batch of messages at once), so the ingest pays per reading only for building the columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from gridmesh.telemetry.envelope import MAX_PAYLOAD_BYTES, MAX_READINGS, Ack, Command, Envelope, Event
from gridmesh.telemetry.quantities import QUANTITIES, Phase, Quality

INT64_MAX = (1 << 63) - 1


class Reason(StrEnum):
    """Why a message was rejected. The values are stable: dashboards, counters and dead letters use them."""

    TOO_LARGE = "too-large"
    MALFORMED = "malformed"
    BAD_VALUE = "bad-value"
    UNKNOWN_QUANTITY = "unknown-quantity"
    OUT_OF_RANGE = "out-of-range"
    UNKNOWN_DEVICE = "unknown-device"
    TOPIC_MISMATCH = "topic-mismatch"
    BAD_SIGNATURE = "bad-signature"
    REPLAY = "replay"
    FUTURE_TIMESTAMP = "future-timestamp"
    STALE_TIMESTAMP = "stale-timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message refused: the reason (stable), a sentence for people, and the device when it was readable."""

    reason: Reason
    detail: str
    device: str = ""


M = TypeVar("M", Envelope, Event, Command, Ack)

_DECODERS: dict[type, msgspec.json.Decoder[object]] = {
    t: msgspec.json.Decoder(t) for t in (Envelope, Event, Command, Ack)
}
_BYTE_AT = re.compile(r"\(byte (\d+)\)")
_NON_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity", b"inf", b"-inf", b"nan")
_VALUE_ERRORS = ("Expected `", "Invalid enum value", "Number out of range")


def _syntax_rejection(payload: bytes, error: msgspec.DecodeError) -> Rejection:
    """``malformed``, unless the parser stopped at a NaN/Infinity literal (a bad value, not bad JSON)."""
    found = _BYTE_AT.search(str(error))
    if found and payload[int(found.group(1)) :].startswith(_NON_JSON_NUMBERS):
        return Rejection(Reason.BAD_VALUE, f"NaN and infinity are not valid values ({error})")
    return Rejection(Reason.MALFORMED, str(error))


def _validation_rejection(error: msgspec.ValidationError) -> Rejection:
    """A wrong type, enum value or number inside the message is ``bad-value``; a wrong shape is ``malformed``."""
    text = str(error)
    if " - at `$" in text and text.startswith(_VALUE_ERRORS):
        return Rejection(Reason.BAD_VALUE, text)
    return Rejection(Reason.MALFORMED, text)


def decode_structure(payload: bytes, kind: type[M]) -> M | Rejection:
    """Size, JSON and types only: the common first step of every message kind."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection(Reason.TOO_LARGE, f"{len(payload)} bytes, at most {MAX_PAYLOAD_BYTES} are accepted")
    try:
        message: M = _DECODERS[kind].decode(payload)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        return _validation_rejection(exc)
    except msgspec.DecodeError as exc:
        return _syntax_rejection(payload, exc)
    except UnicodeDecodeError as exc:  # msgspec raises it for invalid UTF-8 inside object keys
        return Rejection(Reason.MALFORMED, f"not UTF-8: {exc.reason} at byte {exc.start}")
    if not 0 <= message.seq <= INT64_MAX:
        return Rejection(Reason.BAD_VALUE, f"seq {message.seq} outside 0..2^63-1", message.device)
    if not 0 <= message.ts <= INT64_MAX:
        return Rejection(Reason.BAD_VALUE, f"ts {message.ts} outside 0..2^63-1 (UTC ns)", message.device)
    if not message.device:
        return Rejection(Reason.MALFORMED, "empty device id")
    if isinstance(message, Envelope):
        n = len(message.readings)
        if n > MAX_READINGS:
            return Rejection(Reason.TOO_LARGE, f"{n} readings, at most {MAX_READINGS} per message", message.device)
        if n == 0:
            return Rejection(Reason.MALFORMED, "no readings: an envelope carries at least one", message.device)
    elif isinstance(message, Event) and not message.kind:
        return Rejection(Reason.MALFORMED, "empty event kind", message.device)
    return message


# Quantities, phases and qualities as small integer codes, so the checks are numpy operations.
_Q_NAMES = tuple(QUANTITIES)
_Q_CODE = {name: i for i, name in enumerate(_Q_NAMES)}
_LOW = np.array([QUANTITIES[q].low for q in _Q_NAMES] + [-np.inf])  # the last entry serves unknown quantities
_HIGH = np.array([QUANTITIES[q].high for q in _Q_NAMES] + [np.inf])
_UNKNOWN = len(_Q_NAMES)
_PHASES = tuple(Phase)
_PH_CODE = {p: i for i, p in enumerate(_PHASES)}
_PH_TEXT: npt.NDArray[np.object_] = np.array([p.value for p in _PHASES], dtype=object)
_QL_TEXT = {ql: ql.value for ql in Quality}


@dataclass(frozen=True)
class ReadingColumns:
    """The readings of a batch of envelopes, one entry per reading, message after message.

    ``counts[i]`` readings belong to envelope ``i``. Strings are plain ``str`` (not enum members), ready for
    :class:`~gridmesh.services.historian.base.ReadingRows`.
    """

    counts: npt.NDArray[np.int64]
    quantity: list[str]
    phase: list[str]
    value: npt.NDArray[np.float64]
    quality: list[str]
    quantity_code: npt.NDArray[np.int64]
    phase_code: npt.NDArray[np.int64]

    @classmethod
    def of(cls, envelopes: Sequence[Envelope]) -> ReadingColumns:
        readings = [r for e in envelopes for r in e.readings]
        n = len(readings)
        quantity = [r.q for r in readings]
        phase_code = np.fromiter((_PH_CODE[r.ph] for r in readings), np.int64, n)
        return cls(
            counts=np.fromiter((len(e.readings) for e in envelopes), np.int64, len(envelopes)),
            quantity=quantity,
            phase=_PH_TEXT[phase_code].tolist(),
            value=np.fromiter((r.v for r in readings), np.float64, n),
            quality=[_QL_TEXT[r.ql] for r in readings],
            quantity_code=np.fromiter((_Q_CODE.get(q, _UNKNOWN) for q in quantity), np.int64, n),
            phase_code=phase_code,
        )

    def __len__(self) -> int:
        return len(self.quantity)

    def select(self, keep: npt.NDArray[np.bool_]) -> ReadingColumns:
        """The readings of the envelopes where ``keep`` (one flag per envelope) is true."""
        if keep.all():
            return self
        mask = np.repeat(keep, self.counts)

        def take(column: list[str]) -> list[str]:
            taken: list[str] = np.array(column, dtype=object)[mask].tolist()
            return taken

        return ReadingColumns(
            counts=self.counts[keep],
            quantity=take(self.quantity),
            phase=take(self.phase),
            value=self.value[mask],
            quality=take(self.quality),
            quantity_code=self.quantity_code[mask],
            phase_code=self.phase_code[mask],
        )

    def message_index(self) -> npt.NDArray[np.int64]:
        """For each reading, the index of its envelope."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)

    def problems(self) -> list[Rejection | None]:
        """Per envelope: None if every reading is valid, else the first problem by severity.

        Severity order: a non-finite value (``bad-value``), an unknown quantity, a value out of its range,
        then a (quantity, phase) given twice (``malformed``: storage keys readings by it).
        """
        result: list[Rejection | None] = [None] * len(self.counts)
        v, code = self.value, self.quantity_code
        finite = np.isfinite(v)
        unknown = code == _UNKNOWN
        out_of_range = finite & ((v < _LOW[code]) | (v > _HIGH[code]))
        key = (self.message_index() * (_UNKNOWN + 1) + code) * len(_PHASES) + self.phase_code
        order = np.argsort(key, kind="stable")
        repeated = np.zeros(len(key), dtype=bool)
        repeated[order[1:]] = key[order[1:]] == key[order[:-1]]
        bad = ~finite | unknown | out_of_range | repeated
        if not bad.any():
            return result
        starts = np.concatenate(([0], np.cumsum(self.counts)[:-1]))
        for message in np.unique(self.message_index()[bad]).tolist():
            span = slice(int(starts[message]), int(starts[message] + self.counts[message]))
            result[message] = self._first_problem(
                span, ~finite[span], unknown[span], out_of_range[span], repeated[span]
            )
        return result

    def _first_problem(
        self,
        span: slice,
        non_finite: npt.NDArray[np.bool_],
        unknown: npt.NDArray[np.bool_],
        out_of_range: npt.NDArray[np.bool_],
        repeated: npt.NDArray[np.bool_],
    ) -> Rejection:
        start = span.start

        def at(mask: npt.NDArray[np.bool_]) -> tuple[int, str, float]:
            i = int(np.argmax(mask))
            return i, self.quantity[start + i], float(self.value[start + i])

        if non_finite.any():
            i, q, value = at(non_finite)
            return Rejection(Reason.BAD_VALUE, f"reading {i} ({q}): {value} is not a finite number")
        if unknown.any():
            i, q, _ = at(unknown)
            return Rejection(Reason.UNKNOWN_QUANTITY, f"reading {i}: unknown quantity {q!r}; known: {list(_Q_NAMES)}")
        if out_of_range.any():
            i, q, value = at(out_of_range)
            spec = QUANTITIES[q]
            return Rejection(
                Reason.OUT_OF_RANGE, f"reading {i}: {q} = {value:g} {spec.unit} outside [{spec.low:g}, {spec.high:g}]"
            )
        i, q, _ = at(repeated)
        phase = self.phase[start + i] or "total"
        return Rejection(Reason.MALFORMED, f"reading {i}: {q} phase {phase} appears more than once")


def decode_envelope(payload: bytes) -> Envelope | Rejection:
    """A telemetry envelope whose every reading is valid, or why not."""
    message = decode_structure(payload, Envelope)
    if isinstance(message, Rejection):
        return message
    problem = ReadingColumns.of([message]).problems()[0]
    if problem is not None:
        return Rejection(problem.reason, problem.detail, message.device)
    return message


def decode_event(payload: bytes) -> Event | Rejection:
    return decode_structure(payload, Event)


def decode_command(payload: bytes) -> Command | Rejection:
    return decode_structure(payload, Command)


def decode_ack(payload: bytes) -> Ack | Rejection:
    return decode_structure(payload, Ack)
