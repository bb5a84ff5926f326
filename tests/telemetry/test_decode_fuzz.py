"""A bounded fuzz run of the decoder: thousands of mutated valid payloads.

Each case takes a valid encoded envelope and applies a few mutations (byte flips, cuts, insertions of
hostile tokens, splices of another payload). The decoder must never raise, and whatever it accepts must
obey every rule: finite values inside their quantity's range, at most MAX_READINGS readings, no
(quantity, phase) twice, seq and ts inside int64.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmesh.telemetry.decode import Rejection, decode_envelope, decode_event
from gridmesh.telemetry.envelope import MAX_READINGS, Envelope, Event, Reading, encode
from gridmesh.telemetry.quantities import QUANTITIES, Phase

SEEDS = [
    encode(Envelope("meter-LV1_101_Load_1", 42, 1_764_216_000_000_000_000, [Reading("TotW", 1520.0)], sig="c2ln")),
    encode(
        Envelope(
            "trafo-MV1",
            7,
            1_764_216_000_000_000_000,
            [Reading("PhV", 230.5 + i, ph) for i, ph in enumerate(Phase)] + [Reading("Hz", 50.01), Reading("A", 3.5)],
            alg="hmac-sha256",
        )
    ),
    encode(Event("switch-S1", 9, 1_764_216_000_000_000_000, "trip", {"i_a": 812.5})),
]
TOKENS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"null", b"true", b'"', b"{", b"}", b"[", b"]", b",",
    b":", b"\\u0000", b"\xff", b"99999999999999999999999", b"-1", b"0", b"1e9", b'"TotW"', b'"Hz"', b'"ph":"A"',
    b'{"q":"TotW","v":1}', b'"extra":1',
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "token", "duplicate", "splice"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "token":
            data[at : at + draw(st.integers(0, 6))] = draw(st.sampled_from(TOKENS))
        elif op == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
        else:
            other = draw(st.sampled_from(SEEDS))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def obeys_the_rules(envelope: Envelope) -> bool:
    keys = [(r.q, r.ph) for r in envelope.readings]
    return (
        0 <= envelope.seq < 2**63
        and 0 <= envelope.ts < 2**63
        and 1 <= len(envelope.readings) <= MAX_READINGS
        and len(set(keys)) == len(keys)
        and all(
            r.q in QUANTITIES and math.isfinite(r.v) and QUANTITIES[r.q].low <= r.v <= QUANTITIES[r.q].high
            for r in envelope.readings
        )
    )


@given(mutated())
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_payloads_never_raise_and_accepted_ones_obey_the_rules(payload: bytes) -> None:
    result = decode_envelope(payload)
    assert isinstance(result, Envelope | Rejection)
    if isinstance(result, Envelope):
        assert obeys_the_rules(result)
    else:
        assert result.detail
    assert isinstance(decode_event(payload), Event | Rejection)
