"""The decoder: every input gives a message or a reasoned rejection, never an exception.

Property tests (hypothesis) cover arbitrary bytes and JSON, the round trip of valid envelopes, and the
columnar checks against a plain per-reading reference; hand-written cases pin each rejection reason.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmesh.telemetry.decode import (
    ReadingColumns,
    Reason,
    Rejection,
    decode_ack,
    decode_command,
    decode_envelope,
    decode_event,
)
from gridmesh.telemetry.envelope import MAX_PAYLOAD_BYTES, MAX_READINGS, Ack, Command, Envelope, Event, Reading, encode
from gridmesh.telemetry.quantities import QUANTITIES, Phase, Quality

INT64_MAX = 2**63 - 1
device_ids = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", min_size=1, max_size=40)


@st.composite
def readings(draw: st.DrawFn, *, max_size: int = 30) -> list[Reading]:
    """Valid readings: known quantities, values inside their range, no (quantity, phase) twice."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(list(QUANTITIES)), st.sampled_from(list(Phase))),
            min_size=1,
            max_size=max_size,
            unique=True,
        )
    )
    return [
        Reading(q, draw(st.floats(QUANTITIES[q].low, QUANTITIES[q].high)), ph, draw(st.sampled_from(list(Quality))))
        for q, ph in keys
    ]


envelopes = st.builds(
    Envelope,
    device=device_ids,
    seq=st.integers(0, INT64_MAX),
    ts=st.integers(0, INT64_MAX),
    readings=readings(),
    alg=st.sampled_from(["ed25519", "hmac-sha256"]),
    sig=st.text(max_size=90),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
DECODERS = [decode_envelope, decode_event, decode_command, decode_ack]
KINDS = (Envelope, Event, Command, Ack, Rejection)


@given(st.binary(max_size=4096))
@settings(max_examples=400)
def test_any_bytes_give_a_message_or_a_rejection(payload: bytes) -> None:
    for decode in DECODERS:
        assert isinstance(decode(payload), KINDS)


@given(json_values)
@settings(max_examples=300)
def test_any_json_gives_a_message_or_a_rejection(value: Any) -> None:
    payload = msgspec.json.encode(value)
    for decode in DECODERS:
        assert isinstance(decode(payload), KINDS)


@given(st.fixed_dictionaries({"device": device_ids, "seq": json_values, "ts": json_values, "readings": json_values}))
@settings(max_examples=300)
def test_envelope_shaped_json_gives_a_message_or_a_rejection(value: dict[str, Any]) -> None:
    result = decode_envelope(msgspec.json.encode(value))
    assert isinstance(result, Envelope | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in {Reason.MALFORMED, Reason.BAD_VALUE, Reason.TOO_LARGE, Reason.UNKNOWN_QUANTITY}


@given(envelopes)
@settings(max_examples=300)
def test_valid_envelopes_round_trip(envelope: Envelope) -> None:
    assert decode_envelope(encode(envelope)) == envelope


def reference_problem(readings_of_message: list[tuple[str, str, float]]) -> Reason | None:
    """The rules of the module docstring, one reading at a time, in plain Python."""
    if any(not math.isfinite(v) for _, _, v in readings_of_message):
        return Reason.BAD_VALUE
    if any(q not in QUANTITIES for q, _, _ in readings_of_message):
        return Reason.UNKNOWN_QUANTITY
    if any(not QUANTITIES[q].low <= v <= QUANTITIES[q].high for q, _, v in readings_of_message):
        return Reason.OUT_OF_RANGE
    keys = [(q, ph) for q, ph, _ in readings_of_message]
    return Reason.MALFORMED if len(set(keys)) < len(keys) else None


loose_readings = st.lists(
    st.builds(
        Reading,
        q=st.sampled_from([*QUANTITIES, "Volts", ""]),
        v=st.floats() | st.sampled_from([0.0, 40.0, 70.0, 1e9, -1e9, 100.0, 3.0]),
        ph=st.sampled_from(list(Phase)),
    ),
    min_size=1,
    max_size=6,
)


@given(st.lists(loose_readings, min_size=1, max_size=12))
@settings(max_examples=300)
def test_columnar_checks_agree_with_the_per_reading_reference(batch: list[list[Reading]]) -> None:
    messages = [Envelope(f"d{i}", i, 0, rs) for i, rs in enumerate(batch)]
    problems = ReadingColumns.of(messages).problems()
    expected = [reference_problem([(r.q, r.ph.value, r.v) for r in rs]) for rs in batch]
    assert [p.reason if p else None for p in problems] == expected


@given(st.lists(loose_readings, min_size=1, max_size=8), st.data())
@settings(max_examples=100)
def test_select_keeps_the_readings_of_the_kept_messages(batch: list[list[Reading]], data: st.DataObject) -> None:
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(batch), max_size=len(batch))))
    columns = ReadingColumns.of([Envelope("d", i, 0, rs) for i, rs in enumerate(batch)]).select(keep)
    kept = [r for rs, k in zip(batch, keep, strict=True) if k for r in rs]
    assert columns.quantity == [r.q for r in kept]
    assert columns.phase == [r.ph.value for r in kept]
    assert columns.quality == [r.ql.value for r in kept]
    np.testing.assert_array_equal(columns.value, [r.v for r in kept])
    assert columns.counts.tolist() == [len(rs) for rs, k in zip(batch, keep, strict=True) if k]


def test_columns_are_plain_strings() -> None:
    columns = ReadingColumns.of([Envelope("d", 0, 0, [Reading("PhV", 230.0, Phase.B, Quality.QUESTIONABLE)])])
    assert type(columns.phase[0]) is str and columns.phase == ["B"]
    assert type(columns.quality[0]) is str and columns.quality == ["questionable"]


def payload(readings_json: str, **fields: str) -> bytes:
    head = {"device": '"m1"', "seq": "1", "ts": "5", **fields}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in head.items()) + f',"readings":{readings_json}' + "}").encode()


CASES = [
    ("truncated", payload('[{"q":"TotW","v":1}]')[:-7], Reason.MALFORMED),
    ("not json", b"\xff\xfe\x00garbage", Reason.MALFORMED),
    ("array", b"[1,2,3]", Reason.MALFORMED),
    ("bad utf-8 in a key", b'{"\x80device":"m1"}', Reason.MALFORMED),
    ("missing field", b'{"device":"m1","seq":1,"readings":[]}', Reason.MALFORMED),
    ("unknown field", payload('[{"q":"TotW","v":1}]', extra="1"), Reason.MALFORMED),
    ("empty device", payload('[{"q":"TotW","v":1}]', device='""'), Reason.MALFORMED),
    ("no readings", payload("[]"), Reason.MALFORMED),
    ("twice", payload('[{"q":"PhV","v":230,"ph":"A"},{"q":"PhV","v":231,"ph":"A"}]'), Reason.MALFORMED),
    ("value as string", payload('[{"q":"TotW","v":"12"}]'), Reason.BAD_VALUE),
    ("seq as float", payload('[{"q":"TotW","v":1}]', seq="1.5"), Reason.BAD_VALUE),
    ("seq as bool", payload('[{"q":"TotW","v":1}]', seq="true"), Reason.BAD_VALUE),
    ("negative seq", payload('[{"q":"TotW","v":1}]', seq="-1"), Reason.BAD_VALUE),
    ("seq beyond int64", payload('[{"q":"TotW","v":1}]', seq=str(2**63)), Reason.BAD_VALUE),
    ("ts beyond int64", payload('[{"q":"TotW","v":1}]', ts=str(2**64)), Reason.BAD_VALUE),
    ("unknown phase", payload('[{"q":"PhV","v":230,"ph":"D"}]'), Reason.BAD_VALUE),
    ("unknown quality", payload('[{"q":"PhV","v":230,"ql":"meh"}]'), Reason.BAD_VALUE),
    ("null value", payload('[{"q":"TotW","v":null}]'), Reason.BAD_VALUE),
    ("NaN literal", payload('[{"q":"TotW","v":NaN}]'), Reason.BAD_VALUE),
    ("Infinity literal", payload('[{"q":"TotW","v":-Infinity}]'), Reason.BAD_VALUE),
    ("overflow to inf", payload('[{"q":"TotW","v":1e400}]'), Reason.BAD_VALUE),
    ("unknown quantity", payload('[{"q":"TotW","v":1},{"q":"Watts","v":1}]'), Reason.UNKNOWN_QUANTITY),
    ("frequency 0", payload('[{"q":"Hz","v":0}]'), Reason.OUT_OF_RANGE),
    ("soc 100.5", payload('[{"q":"SocPct","v":100.5}]'), Reason.OUT_OF_RANGE),
    ("negative voltage", payload('[{"q":"PhV","v":-1,"ph":"A"}]'), Reason.OUT_OF_RANGE),
    ("10 MB", b" " * 10_000_000, Reason.TOO_LARGE),
    ("just over the limit", payload('[{"q":"TotW","v":1}]').ljust(MAX_PAYLOAD_BYTES + 1), Reason.TOO_LARGE),
    ("too many readings", payload("[" + ",".join(['{"q":"A","v":1}'] * (MAX_READINGS + 1)) + "]"), Reason.TOO_LARGE),
]


@pytest.mark.parametrize(("raw", "reason"), [(raw, reason) for _, raw, reason in CASES], ids=[c[0] for c in CASES])
def test_each_bad_input_has_its_reason(raw: bytes, reason: Reason) -> None:
    result = decode_envelope(raw)
    assert isinstance(result, Rejection)
    assert result.reason is reason, result.detail
    assert result.detail


def test_range_limits_are_inclusive() -> None:
    good = payload('[{"q":"Hz","v":40},{"q":"SocPct","v":100},{"q":"TotPF","v":-1},{"q":"TotW","v":-1e9}]')
    assert isinstance(decode_envelope(good), Envelope)
    just_below = math.nextafter(40.0, 0.0)
    assert decode_envelope(payload(f'[{{"q":"Hz","v":{just_below!r}}}]')).reason is Reason.OUT_OF_RANGE  # type: ignore[union-attr]


def test_limits_at_the_edge_are_accepted() -> None:
    """A payload of exactly the size limit, and every (quantity, phase) once: 70 readings."""
    exactly = payload('[{"q":"TotW","v":1}]').ljust(MAX_PAYLOAD_BYTES)
    assert isinstance(decode_envelope(exactly), Envelope)
    keys = [(q, ph) for q in QUANTITIES for ph in Phase]
    many = Envelope("m1", 1, 5, [Reading(q, QUANTITIES[q].low, ph) for q, ph in keys])
    assert decode_envelope(encode(many)) == many


def test_detail_names_the_reading_and_the_range() -> None:
    result = decode_envelope(payload('[{"q":"TotW","v":5},{"q":"Hz","v":80}]'))
    assert isinstance(result, Rejection)
    assert result.device == "m1"
    assert "reading 1" in result.detail and "[40, 70]" in result.detail and "Hz" in result.detail


def test_integers_are_accepted_as_float_values() -> None:
    result = decode_envelope(payload('[{"q":"TotW","v":1520}]'))
    assert isinstance(result, Envelope) and result.readings[0].v == 1520.0


def test_events_commands_and_acks_decode() -> None:
    event = Event("m1", 3, 5, "last-gasp", {"v": 0.0, "why": "mains lost", "ok": False})
    command = Command("battery-1", 9, 5, "set-power", 2500.0, expires=10)
    ack = Ack("battery-1", 4, 6, command_seq=9, ok=True)
    assert decode_event(encode(event)) == event
    assert decode_command(encode(command)) == command
    assert decode_ack(encode(ack)) == ack
    assert decode_event(encode(Event("m1", 3, 5, ""))).reason is Reason.MALFORMED  # type: ignore[union-attr]
    assert decode_event(b'{"device":"m1","seq":3,"ts":5,"kind":"x","detail":{"a":[1]}}').reason is Reason.BAD_VALUE  # type: ignore[union-attr]
    assert decode_command(encode(command)[:-1]).reason is Reason.MALFORMED  # type: ignore[union-attr]
