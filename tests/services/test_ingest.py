"""The ingest against an in-memory historian: acceptance, every rejection reason, duplicates versus
replays, restarts, failed writes and live consumers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmesh.security.keys import provision_keyrings
from gridmesh.security.signing import sign
from gridmesh.services.bus import InProcessBus, Message
from gridmesh.services.historian.base import DEAD_LETTER_KEEP_BYTES, DeadLetter, Historian, ReadingRows, StoredEvent
from gridmesh.services.ingest import Ingest
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind, DeviceSpec
from gridmesh.telemetry.decode import Reason
from gridmesh.telemetry.envelope import Envelope, Event, Reading, encode, topic
from gridmesh.telemetry.quantities import Phase, Quality

NOW = 1_764_216_000_000_000_000  # 2025-11-27 04:00 UTC
SECOND = 1_000_000_000
SPECS = [
    DeviceSpec("meter-1", DeviceKind.METER, "load-1", "bus-1", "mg1", ("TotW", "TotVAr", "PhV"), False),
    DeviceSpec("inverter-1", DeviceKind.INVERTER, "pv-1", "bus-2", "grid", ("TotW", "TotVAr", "PhV"), True),
    DeviceSpec("battery-1", DeviceKind.BATTERY, "bess", "bus-1", "mg1", ("TotW", "SocPct"), True),
]
CATALOGUE = Catalogue({d.id: d for d in SPECS})
FIELD, CENTRE = provision_keyrings([d.id for d in SPECS], hmac_devices=["meter-1"])
SITE = {d.id: d.site for d in SPECS}


def _ns(moment: datetime) -> int:
    return int(pd.Timestamp(moment).value)


@dataclass
class FakeHistorian:
    """The Historian protocol's behaviour in memory: idempotent readings keyed by (device, seq, q, phase)."""

    readings: dict[tuple[str, int, str, str], tuple[int, float, str]] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)
    stored_events: list[StoredEvent] = field(default_factory=list)
    fail: bool = False
    json_as_text: bool = False  # as a backend that returns JSON columns as strings

    def write_readings(self, rows: ReadingRows) -> int:
        if self.fail:
            raise OSError("disk full")
        new = 0
        for d, s, t, q, p, v, ql in zip(
            rows.device, rows.seq, rows.ts_ns, rows.quantity, rows.phase, rows.value, rows.quality, strict=True
        ):
            key = (d, int(s), q, p)
            if key not in self.readings:
                self.readings[key] = (int(t), float(v), ql)
                new += 1
        return new

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.letters.extend(letters)

    def write_events(self, events: Sequence[StoredEvent]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.stored_events.extend(events)

    def _frame(self) -> pd.DataFrame:
        records = [
            {"device": d, "quantity": q, "phase": p, "ts": t, "value": v, "quality": ql, "seq": s}
            for (d, s, q, p), (t, v, ql) in self.readings.items()
        ]
        frame = pd.DataFrame(records, columns=["device", "quantity", "phase", "ts", "value", "quality", "seq"])
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), utc=True)
        return frame

    def latest(self, *, device: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        frame = self._frame().sort_values("ts")
        return frame.groupby(["device", "quantity", "phase"], as_index=False).last()

    def history(
        self, *, start: datetime, end: datetime, device: str | None = None, quantity: str | None = None
    ) -> pd.DataFrame:
        frame = self._frame()
        ts = frame["ts"].astype("int64")
        keep = (ts >= _ns(start)) & (ts < _ns(end)) & ((frame["device"] == device) if device else True)
        return frame[keep]

    def events(self, *, since: datetime | None = None, kind: str | None = None, limit: int = 1000) -> pd.DataFrame:
        chosen = [e for e in self.stored_events if since is None or e.ts_ns >= _ns(since)]
        records = [{name: getattr(e, name) for name in e.__slots__} for e in chosen[-limit:]]
        if self.json_as_text:
            records = [r | {"data": json.dumps(r["data"])} for r in records]
        return pd.DataFrame(records)


def signed_bytes(message: Envelope | Event) -> bytes:
    return encode(sign(message, FIELD.secrets[message.device]))


def telemetry(device: str, seq: int, readings: list[Reading] | None = None, *, ts: int = NOW) -> Message:
    envelope = Envelope(device, seq, ts, readings or [Reading("TotW", 100.0 + seq)])
    return Message(topic(SITE[device], device, "telemetry"), signed_bytes(envelope))


def event(device: str, seq: int, kind: str = "last-gasp", *, ts: int = NOW) -> Message:
    return Message(topic(SITE[device], device, "event"), signed_bytes(Event(device, seq, ts, kind, {"v_pu": 0.2})))


class Harness:
    def __init__(self, historian: FakeHistorian | None = None) -> None:
        self.historian = historian or FakeHistorian()
        self.now = NOW
        self.accepted: list[ReadingRows] = []
        self.events: list[Event] = []
        self.ingest = self.restart()

    def restart(self) -> Ingest:
        self.ingest = Ingest(
            CATALOGUE,
            CENTRE,
            cast(Historian, self.historian),  # the fake has what the ingest uses, not the query API
            clock=lambda: self.now,
            on_accept=self.accepted.append,
            on_event=self.events.append,
        )
        return self.ingest

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.ingest.counters.snapshot().items() if v}

    def reasons(self) -> list[str]:
        return [letter.reason for letter in self.historian.letters]


def test_accepts_a_batch_into_columnar_rows() -> None:
    h = Harness()
    readings = [Reading("TotW", -3500.0), Reading("PhV", 231.5, Phase.A, Quality.QUESTIONABLE)]
    h.ingest.handle([telemetry("inverter-1", 5, readings, ts=NOW - SECOND), telemetry("meter-1", 1)])
    (rows,) = h.accepted
    assert rows.device == ["inverter-1", "inverter-1", "meter-1"]
    assert rows.seq.tolist() == [5, 5, 1]
    assert rows.ts_ns.tolist() == [NOW - SECOND, NOW - SECOND, NOW]
    assert rows.quantity == ["TotW", "PhV", "TotW"]
    assert rows.phase == ["", "A", ""]
    assert rows.quality == ["good", "questionable", "good"]
    np.testing.assert_array_equal(rows.value, [-3500.0, 231.5, 101.0])
    assert rows.received_ns.tolist() == [NOW] * 3
    assert rows.seq.dtype == np.int64 and rows.ts_ns.dtype == np.int64 and rows.value.dtype == np.float64
    assert len(h.historian.readings) == 3
    assert h.counters() == {"accepted_messages": 2, "accepted_readings": 3}
    assert h.ingest.last_seen() == {"inverter-1": NOW - SECOND, "meter-1": NOW}


def test_every_bad_input_is_dead_lettered_with_its_reason_and_ingest_goes_on() -> None:
    h = Harness()
    good = telemetry("battery-1", 1)
    envelope = Envelope("inverter-1", 2, NOW, [Reading("TotW", 1.0)])
    forged = msgspec.structs.replace(sign(envelope, FIELD.secrets["inverter-1"]), readings=[Reading("TotW", 9e8)])
    unknown = sign(Envelope("meter-1", 3, NOW, [Reading("TotW", 1.0)]), FIELD.secrets["meter-1"])
    wrong_topic = topic("mg1", "meter-1", "telemetry")
    cases = {
        "malformed": Message(wrong_topic, signed_bytes(Envelope("meter-1", 4, NOW, [Reading("TotW", 1.0)]))[:-9]),
        "bad-value": Message(wrong_topic, b'{"device":"meter-1","seq":5,"ts":1,"readings":[{"q":"TotW","v":NaN}]}'),
        "unknown-quantity": telemetry("meter-1", 6, [Reading("Volts", 1.0)]),
        "out-of-range": telemetry("meter-1", 7, [Reading("Hz", 500.0)]),
        "unknown-device": Message(
            topic("mg1", "meter-9", "telemetry"), encode(msgspec.structs.replace(unknown, device="meter-9"))
        ),
        "topic-mismatch": Message(topic("mg1", "battery-1", "telemetry"), signed_bytes(envelope)),
        "bad-signature": Message(topic("grid", "inverter-1", "telemetry"), encode(forged)),
        "future-timestamp": telemetry("meter-1", 8, ts=NOW + 86_400 * SECOND),
        "stale-timestamp": telemetry("meter-1", 9, ts=NOW - 8 * 86_400 * SECOND),
        "too-large": Message(wrong_topic, b"{" + b" " * 10_000_000 + b"}"),
    }
    h.ingest.handle([*cases.values(), good])
    assert sorted(h.reasons()) == sorted(cases)
    assert len(h.historian.readings) == 1 and ("battery-1", 1, "TotW", "") in h.historian.readings
    expected = {f"rejected:{r}": 1 for r in cases} | {"rejected": len(cases)}
    assert h.counters() == expected | {"accepted_messages": 1, "accepted_readings": 1}
    (big,) = [letter for letter in h.historian.letters if letter.reason == "too-large"]
    assert big.size == 10_000_002 and len(big.payload) == DEAD_LETTER_KEEP_BYTES
    assert all(letter.detail and letter.received_ns == NOW for letter in h.historian.letters)
    assert {letter.device for letter in h.historian.letters} >= {"meter-1", "inverter-1", "meter-9"}


def test_mismatched_site_is_a_topic_mismatch() -> None:
    h = Harness()
    message = telemetry("meter-1", 1)
    h.ingest.handle([Message(topic("grid", "meter-1", "telemetry"), message.payload)])
    assert h.reasons() == [Reason.TOPIC_MISMATCH]


def test_redelivery_is_a_duplicate_counted_but_not_stored_or_dead_lettered() -> None:
    h = Harness()
    first = telemetry("meter-1", 10)
    h.ingest.handle([first, first])  # twice in one batch
    h.ingest.handle([first])  # and again later
    assert h.counters() == {"accepted_messages": 1, "accepted_readings": 1, "duplicates": 2}
    assert h.historian.letters == [] and len(h.accepted) == 1


def test_reusing_a_seq_with_other_content_is_a_replay() -> None:
    h = Harness()
    h.ingest.handle([telemetry("meter-1", 10, [Reading("TotW", 1.0)])])
    h.ingest.handle([telemetry("meter-1", 10, [Reading("TotW", 2.0)])])
    assert h.reasons() == [Reason.REPLAY]
    assert h.historian.readings[("meter-1", 10, "TotW", "")][1] == 1.0


def test_late_messages_inside_the_reorder_window_are_accepted() -> None:
    h = Harness()
    h.ingest.handle([telemetry("meter-1", 100)])
    h.ingest.handle([telemetry("meter-1", 98), telemetry("meter-1", 99), telemetry("meter-1", 100 - 64)])
    assert sorted(s for (_, s, _, _) in h.historian.readings) == [98, 99, 100]
    assert h.reasons() == [Reason.REPLAY]  # 64 behind the highest is outside the window
    assert "older than the reorder window" in h.historian.letters[0].detail


def test_sequence_windows_are_per_device_and_channel() -> None:
    h = Harness()
    h.ingest.handle([telemetry("meter-1", 50), event("meter-1", 1), telemetry("battery-1", 1)])
    assert h.counters() == {"accepted_messages": 2, "accepted_readings": 2, "accepted_events": 1}


def test_restart_seeds_the_windows_from_the_historian() -> None:
    h = Harness()
    original = telemetry("meter-1", 10, [Reading("TotW", 1.0), Reading("PhV", 230.0, Phase.A)])
    h.ingest.handle([original, telemetry("meter-1", 11)])
    h.restart()
    assert h.ingest.last_seen() == {"meter-1": NOW}
    h.ingest.handle(
        [
            original,  # redelivered after the restart: the historian holds the very same message
            telemetry("meter-1", 10, [Reading("TotW", 7.0)]),  # same seq, other content
            telemetry("meter-1", 9),  # never stored, inside the window: late but new
            telemetry("meter-1", 12),
        ]
    )
    assert h.counters() == {
        "duplicates": 1,
        "rejected": 1,
        "rejected:replay": 1,
        "accepted_messages": 2,
        "accepted_readings": 2,
    }
    assert "different content" in h.historian.letters[0].detail
    assert h.reasons() == [Reason.REPLAY]


def test_a_failed_write_changes_nothing_so_the_redelivery_is_accepted() -> None:
    h = Harness()
    batch = [telemetry("meter-1", 1), event("battery-1", 1), telemetry("meter-1", 0, [Reading("Hz", 5.0)])]
    h.historian.fail = True
    with pytest.raises(OSError, match="disk full"):
        h.ingest.handle(batch)
    assert h.ingest.counters.snapshot()["accepted_messages"] == 0 and h.ingest.last_seen() == {}
    # The live view saw the readings before the (failed) commit; events wait for a commit.
    assert [r.device for r in h.accepted] == [["meter-1"]] and h.events == []
    h.historian.fail = False
    h.ingest.handle(batch)
    assert [r.device for r in h.accepted] == [["meter-1"], ["meter-1"]] and len(h.events) == 1
    assert h.counters() == {
        "accepted_messages": 1,
        "accepted_readings": 1,
        "accepted_events": 1,
        "rejected": 1,
        "rejected:out-of-range": 1,
    }
    assert len(h.historian.letters) == 1 and len(h.historian.stored_events) == 1


def test_events_are_verified_stored_and_handed_on() -> None:
    h = Harness()
    h.ingest.handle([event("battery-1", 3, "trip"), event("battery-1", 3, "trip"), event("battery-1", 2, "x")])
    stored, late = h.historian.stored_events
    assert late.kind == "x"
    assert (stored.kind, stored.source, stored.ts_ns, stored.severity) == ("trip", "battery-1", NOW, "warning")
    assert stored.data is not None and stored.data["seq"] == 3 and stored.data["detail"] == {"v_pu": 0.2}
    assert [e.kind for e in h.events] == ["trip", "x"]  # seq 2 is late but inside the window
    forged = msgspec.structs.replace(msgspec.json.decode(event("battery-1", 4).payload, type=Event), kind="trip")
    h.ingest.handle([Message(topic("mg1", "battery-1", "event"), encode(forged))])
    assert h.reasons() == [Reason.BAD_SIGNATURE]
    assert h.counters()["duplicates"] == 1


@pytest.mark.parametrize("json_as_text", [False, True])
def test_events_seen_before_a_restart_stay_duplicates_or_replays(json_as_text: bool) -> None:
    h = Harness(FakeHistorian(json_as_text=json_as_text))
    first = event("battery-1", 3, "trip")
    h.ingest.handle([first])
    h.restart()
    h.ingest.handle([first, event("battery-1", 3, "close")])
    assert len(h.historian.stored_events) == 1
    assert h.reasons() == [Reason.REPLAY]
    assert h.counters()["duplicates"] == 1


def test_a_failing_consumer_does_not_fail_the_batch() -> None:
    historian = FakeHistorian()

    def broken(rows: ReadingRows) -> None:
        raise RuntimeError("consumer bug")

    ingest = Ingest(CATALOGUE, CENTRE, cast(Historian, historian), clock=lambda: NOW, on_accept=broken)
    ingest.handle([telemetry("meter-1", 1)])
    assert ingest.counters.snapshot()["consumer_errors"] == 1
    assert len(historian.readings) == 1


def test_other_topics_are_ignored() -> None:
    h = Harness()
    h.ingest.handle([Message("gridmesh/v1/mg1/meter-1/state", b"{}"), Message("other/topic", b"x")])
    assert h.counters() == {"ignored": 2} and h.historian.letters == []


def test_counters_list_every_reason_from_the_start() -> None:
    snapshot = Harness().ingest.counters.snapshot()
    assert {f"rejected:{r.value}" for r in Reason} <= set(snapshot)
    assert set(snapshot.values()) == {0}


def test_through_the_in_process_bus() -> None:
    h = Harness()
    bus = InProcessBus()
    bus.subscribe("gridmesh/v1/+/+/telemetry", h.ingest.handle)
    bus.subscribe("gridmesh/v1/+/+/event", h.ingest.handle)
    try:
        for seq in range(1, 201):
            message = telemetry("meter-1", seq)
            bus.publish(message.topic, message.payload)
        bus.publish(topic("mg1", "battery-1", "event"), event("battery-1", 1).payload)
        assert bus.drain(timeout=30)
    finally:
        bus.close()
    assert bus.errors == []
    assert h.counters() == {"accepted_messages": 200, "accepted_readings": 200, "accepted_events": 1}
    assert sorted(s for (_, s, _, _) in h.historian.readings) == list(range(1, 201))


@st.composite
def batches(draw: st.DrawFn) -> list[Message]:
    messages = []
    for _ in range(draw(st.integers(1, 25))):
        device = draw(st.sampled_from([d.id for d in SPECS]))
        seq = draw(st.integers(0, 12))
        value = draw(st.sampled_from([1.0, 2.0, 5e9]))
        message = telemetry(device, seq, [Reading("TotW", value)], ts=NOW + draw(st.sampled_from([0, 40 * SECOND])))
        payload = message.payload
        if draw(st.booleans()):
            at = draw(st.integers(0, len(payload) - 1))
            payload = payload[:at] + bytes([payload[at] ^ 0x20]) + payload[at + 1 :]
        messages.append(Message(message.topic, payload))
    return messages


@given(st.lists(batches(), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_message_is_accounted_for_once(stream: list[list[Message]]) -> None:
    h = Harness()
    for batch in stream:
        h.ingest.handle(batch)
    counters = h.ingest.counters.snapshot()
    total = sum(len(b) for b in stream)
    assert counters["accepted_messages"] + counters["duplicates"] + counters["rejected"] == total
    assert counters["rejected"] == len(h.historian.letters)
    assert counters["accepted_readings"] == len(h.historian.readings) == sum(len(r) for r in h.accepted)
    for (device, seq, _, _), (ts, value, _) in h.historian.readings.items():
        assert ts <= NOW + 30 * SECOND and abs(value) <= 1e9 and device in SITE and seq <= 12
