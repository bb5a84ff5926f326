"""The centre's ingest: telemetry and events off the bus → verified, validated, de-duplicated → historian.

Per message, in order: size and JSON (:mod:`gridmesh.telemetry.decode`), known device, topic matches the
envelope, signature, timestamp window; then, for the whole batch at once (numpy), the readings' values;
then the sequence number. Every refusal becomes a dead letter with its reason and a counter; the ingest
never stops on bad input.

Sequence numbers give exactly-once storage over at-least-once delivery. Each device's telemetry and
events have their own window: ``seq`` above the highest accepted is new; up to ``reorder_window`` below
it a late message is still new if its ``seq`` was never accepted. The same ``(device, seq)`` again with
the same signature is a *duplicate* (a redelivery: counted, not stored twice, not a dead letter); with
another signature, or older than the window, it is a *replay*. The windows are seeded from the
historian, and a ``seq`` the memory no longer holds is compared with what the historian stored, so a
redelivery after a centre restart is still a duplicate.

A batch is all or nothing: the state (windows, counters, last seen) changes only after the historian
has committed, and a failed write raises so the bus redelivers the batch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from gridmesh.security.keys import CentreKeyring, DeviceCredential
from gridmesh.security.signing import verify
from gridmesh.services.bus import Message
from gridmesh.services.historian.base import DEAD_LETTER_KEEP_BYTES, DeadLetter, Historian, ReadingRows, StoredEvent
from gridmesh.telemetry.catalogue import Catalogue, DeviceSpec
from gridmesh.telemetry.decode import ReadingColumns, Reason, Rejection, decode_structure
from gridmesh.telemetry.envelope import Envelope, Event, parse_topic

log = logging.getLogger(__name__)

TELEMETRY, EVENT = "telemetry", "event"
EVENT_SEVERITY = {"last-gasp": "warning", "trip": "warning", "fault-passage": "warning", "offline": "warning"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT_SEED_LIMIT = 100_000


class IngestCounters:
    """Accepted messages, readings and events, duplicates, and rejections per reason; thread-safe.

    Keys of :meth:`snapshot`: ``accepted_messages``, ``accepted_readings``, ``accepted_events``,
    ``duplicates``, ``ignored`` (not a telemetry/event topic), ``consumer_errors`` (a live consumer
    raised), ``rejected`` (total) and ``rejected:<reason>`` for every :class:`Reason`, zero included.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(
            ["accepted_messages", "accepted_readings", "accepted_events", "duplicates", "ignored", "consumer_errors"],
            0,
        )
        self._values["rejected"] = 0
        self._values.update({f"rejected:{reason.value}": 0 for reason in Reason})

    def add(self, delta: Mapping[str, int]) -> None:
        with self._lock:
            for key, n in delta.items():
                self._values[key] = self._values.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class _Window:
    """Accepted sequence numbers of one (device, channel): the highest, and the recent ones with the hash
    of their signature (to tell a redelivery from a replay)."""

    __slots__ = ("high", "seen")

    def __init__(self, high: int = -1, seen: dict[int, int] | None = None) -> None:
        self.high = high
        self.seen: dict[int, int] = seen if seen is not None else {}

    def copy(self) -> _Window:
        return _Window(self.high, dict(self.seen))

    def accept(self, seq: int, fingerprint: int, width: int) -> None:
        self.seen[seq] = fingerprint
        self.high = max(self.high, seq)
        if len(self.seen) > 2 * width:
            floor = self.high - width
            self.seen = {s: f for s, f in self.seen.items() if s > floor}


class _Staged:
    """What one batch changes, applied only once the historian has committed it."""

    def __init__(self, windows: dict[tuple[str, str], _Window]) -> None:
        self._base = windows
        self.windows: dict[tuple[str, str], _Window] = {}
        self.counts: dict[str, int] = {}
        self.letters: list[DeadLetter] = []

    def window(self, key: tuple[str, str]) -> _Window:
        found = self.windows.get(key)
        if found is None:
            base = self._base.get(key)
            found = self.windows[key] = base.copy() if base is not None else _Window()
        return found

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def reject(self, message: Message, rejection: Rejection, device: str, now: int) -> None:
        self.count("rejected")
        self.count(f"rejected:{rejection.reason.value}")
        payload = message.payload
        self.letters.append(
            DeadLetter(
                received_ns=now,
                topic=message.topic,
                reason=rejection.reason.value,
                detail=rejection.detail,
                payload=bytes(payload[:DEAD_LETTER_KEEP_BYTES]),
                size=len(payload),
                device=rejection.device or device,
            )
        )


class Ingest:
    """Subscribe :meth:`handle` to ``gridmesh/v1/+/+/telemetry`` and ``gridmesh/v1/+/+/event``."""

    def __init__(
        self,
        catalogue: Catalogue,
        keyring: CentreKeyring,
        historian: Historian,
        *,
        max_future: timedelta = timedelta(seconds=30),
        max_age: timedelta = timedelta(days=7),
        clock: Callable[[], int] = time.time_ns,
        on_accept: Callable[[ReadingRows], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        reorder_window: int = 64,
    ) -> None:
        self._devices: dict[str, tuple[DeviceSpec, DeviceCredential]] = {
            d: (spec, keyring.credentials[d]) for d, spec in catalogue.devices.items() if d in keyring.credentials
        }
        self._historian = historian
        self._max_future_ns = max_future // timedelta(microseconds=1) * 1000
        self._max_age_ns = max_age // timedelta(microseconds=1) * 1000
        self._clock = clock
        self._on_accept = on_accept
        self._on_event = on_event
        self._width = reorder_window
        self._lock = threading.Lock()
        self._seen_lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._last_seen: dict[str, int] = {}
        self.counters = IngestCounters()
        self._seed()

    def last_seen(self) -> dict[str, int]:
        """Device → device timestamp (UTC ns) of its latest accepted message."""
        with self._seen_lock:
            return dict(self._last_seen)

    def handle(self, batch: Sequence[Message]) -> None:
        """Ingest one bus batch. Raises only when the historian fails, so the bus redelivers the batch."""
        with self._lock:
            now = self._clock()
            staged = _Staged(self._windows)
            envelopes: list[tuple[Message, Envelope]] = []
            events: list[tuple[Message, Event]] = []
            for message in batch:
                route = parse_topic(message.topic)
                if route is None or route[2] not in (TELEMETRY, EVENT):
                    staged.count("ignored")
                    continue
                screened = self._screen(message, route, now)
                if isinstance(screened, Rejection):
                    staged.reject(message, screened, route[1], now)
                elif isinstance(screened, Envelope):
                    envelopes.append((message, screened))
                else:
                    events.append((message, screened))
            rows, accepted_envelopes = self._readings(envelopes, staged, now)
            accepted_events = [e for m, e in events if self._is_new(staged, m, e, EVENT, now)]
            # The live view first: it only displays, so it need not wait for the commit (a batch whose
            # write fails is redelivered and shown again, harmlessly); the acknowledgement still does.
            self._notify(rows, [])
            if len(rows):
                self._historian.write_readings(rows)
            if accepted_events:
                self._historian.write_events([_stored_event(e) for e in accepted_events])
            if staged.letters:
                self._historian.write_dead_letters(staged.letters)
            self._commit(staged, accepted_envelopes, rows, accepted_events)
        self._notify(ReadingRows.empty(), accepted_events)

    def _screen(self, message: Message, route: tuple[str, str, str], now: int) -> Envelope | Event | Rejection:
        """Everything that can be decided from one message alone."""
        site, topic_device, channel = route
        decoded: Envelope | Event | Rejection = (
            decode_structure(message.payload, Envelope)
            if channel == TELEMETRY
            else decode_structure(message.payload, Event)
        )
        if isinstance(decoded, Rejection):
            return decoded
        known = self._devices.get(decoded.device)
        if known is None:
            return Rejection(Reason.UNKNOWN_DEVICE, f"{decoded.device!r} has no key in the centre keyring")
        spec, credential = known
        if topic_device != decoded.device or site != spec.site:
            return Rejection(
                Reason.TOPIC_MISMATCH,
                f"{decoded.device} (site {spec.site}) published on {message.topic}",
                decoded.device,
            )
        if not verify(decoded, credential):
            return Rejection(Reason.BAD_SIGNATURE, f"{decoded.alg} signature does not verify", decoded.device)
        if decoded.ts > now + self._max_future_ns:
            ahead = (decoded.ts - now) / 1e9
            return Rejection(Reason.FUTURE_TIMESTAMP, f"ts is {ahead:.3g} s ahead of the centre clock", decoded.device)
        if decoded.ts < now - self._max_age_ns:
            age = (now - decoded.ts) / 3.6e12
            return Rejection(Reason.STALE_TIMESTAMP, f"ts is {age:.3g} h old", decoded.device)
        return decoded

    def _readings(
        self, candidates: list[tuple[Message, Envelope]], staged: _Staged, now: int
    ) -> tuple[ReadingRows, list[Envelope]]:
        """Value checks over the whole batch, then sequence checks in arrival order; the accepted rows."""
        columns = ReadingColumns.of([e for _, e in candidates])
        keep = np.zeros(len(candidates), dtype=bool)
        for i, ((message, envelope), problem) in enumerate(zip(candidates, columns.problems(), strict=True)):
            if problem is not None:
                staged.reject(message, Rejection(problem.reason, problem.detail, envelope.device), envelope.device, now)
            else:
                keep[i] = self._is_new(staged, message, envelope, TELEMETRY, now)
        accepted = [e for (_, e), k in zip(candidates, keep, strict=True) if k]
        columns = columns.select(keep)
        counts = columns.counts
        rows = ReadingRows(
            device=np.repeat(np.array([e.device for e in accepted], dtype=object), counts).tolist(),
            seq=np.repeat(np.fromiter((e.seq for e in accepted), np.int64, len(accepted)), counts),
            ts_ns=np.repeat(np.fromiter((e.ts for e in accepted), np.int64, len(accepted)), counts),
            quantity=columns.quantity,
            phase=columns.phase,
            value=columns.value,
            quality=columns.quality,
            received_ns=np.full(len(columns), now, dtype=np.int64),
        )
        return rows, accepted

    def _is_new(self, staged: _Staged, message: Message, signed: Envelope | Event, channel: str, now: int) -> bool:
        """Classify by sequence number; a duplicate is counted, a replay dead-lettered."""
        window = staged.window((signed.device, channel))
        seq, fingerprint = signed.seq, hash(signed.sig)
        if seq > window.high:
            window.accept(seq, fingerprint, self._width)
            return True
        known = window.seen.get(seq)
        same: bool | None = None if known is None else known == fingerprint
        if same is None and isinstance(signed, Envelope):
            same = self._stored(signed)
        if same:
            staged.count("duplicates")
            return False
        if same is None and seq > window.high - self._width:
            window.accept(seq, fingerprint, self._width)
            return True
        if same is None:
            detail = f"seq {seq} is older than the reorder window (highest accepted {window.high})"
        else:
            detail = f"seq {seq} was accepted before with different content (highest accepted {window.high})"
        staged.reject(message, Rejection(Reason.REPLAY, detail, signed.device), signed.device, now)
        return False

    def _stored(self, envelope: Envelope) -> bool | None:
        """Did the historian store this very message (True), another one with its seq (False), or none (None)?

        Only asked for a ``seq`` below the window's top that memory does not hold: after a restart, or for
        a redelivery older than the reorder window.
        """
        start = _EPOCH + timedelta(microseconds=envelope.ts // 1000)
        frame = self._historian.history(start=start, end=start + timedelta(microseconds=1), device=envelope.device)
        if frame.empty:
            return None
        frame = frame[frame["seq"].astype("int64") == envelope.seq]
        if frame.empty:
            return None
        stored = {
            (q, p or "", float(v), ql)
            for q, p, v, ql in zip(
                frame["quantity"], frame["phase"].fillna(""), frame["value"], frame["quality"], strict=True
            )
        }
        sent = {(r.q, r.ph.value, r.v, r.ql.value) for r in envelope.readings}
        return stored == sent

    def _commit(self, staged: _Staged, envelopes: list[Envelope], rows: ReadingRows, events: list[Event]) -> None:
        self._windows.update(staged.windows)
        accepted: list[Envelope | Event] = [*envelopes, *events]
        with self._seen_lock:
            for signed in accepted:
                if signed.ts > self._last_seen.get(signed.device, -1):
                    self._last_seen[signed.device] = signed.ts
        staged.count("accepted_messages", len(envelopes))
        staged.count("accepted_readings", len(rows))
        staged.count("accepted_events", len(events))
        self.counters.add(staged.counts)

    def _notify(self, rows: ReadingRows, events: list[Event]) -> None:
        """Hand accepted data to live consumers (readings before the commit, events after it); their
        failures are logged, never redelivered."""
        calls: list[Callable[[], None]] = []
        if self._on_accept is not None and len(rows):
            calls.append(partial(self._on_accept, rows))
        if self._on_event is not None:
            calls.extend(partial(self._on_event, e) for e in events)
        for call in calls:
            try:
                call()
            except Exception:
                log.exception("a live consumer of the ingest failed; the data is stored, the consumer missed it")
                self.counters.add({"consumer_errors": 1})

    def _seed(self) -> None:
        """Windows and last-seen times from the historian, so replays stay refused across restarts."""
        latest = self._historian.latest()
        if not latest.empty:
            ts = pd.to_datetime(latest["ts"], utc=True).dt.as_unit("ns").astype("int64")
            frame = pd.DataFrame({"device": latest["device"], "seq": latest["seq"].astype("int64"), "ts": ts})
            per_device = frame.groupby("device").agg(seq=("seq", "max"), ts=("ts", "max"))
            for device, seq, last in zip(per_device.index, per_device["seq"], per_device["ts"], strict=True):
                self._windows[(str(device), TELEMETRY)] = _Window(int(seq))
                self._last_seen[str(device)] = int(last)
        since = datetime.fromtimestamp(self._clock() / 1e9, tz=UTC) - timedelta(microseconds=self._max_age_ns // 1000)
        stored = self._historian.events(since=since, limit=_EVENT_SEED_LIMIT)
        if stored.empty:
            return
        for source, data in zip(stored["source"], stored["data"], strict=True):
            seq, sig = _event_origin(data)
            if seq is None or source not in self._devices:
                continue
            window = self._windows.setdefault((str(source), EVENT), _Window())
            window.accept(seq, hash(sig), self._width)


def _event_origin(data: Any) -> tuple[int | None, str]:
    """The ``seq`` and signature a stored device event came with (other event-log lines have none)."""
    if isinstance(data, str | bytes):  # backends that keep JSON as text
        try:
            data = json.loads(data)
        except ValueError:
            return None, ""
    if not isinstance(data, dict) or data.get("channel") != EVENT:
        return None, ""
    seq, sig = data.get("seq"), data.get("sig")
    return (seq, sig) if isinstance(seq, int) and isinstance(sig, str) else (None, "")


def _stored_event(event: Event) -> StoredEvent:
    detail = ", ".join(f"{k}={v}" for k, v in event.detail.items())
    return StoredEvent(
        ts_ns=event.ts,
        kind=event.kind,
        source=event.device,
        message=f"{event.device}: {event.kind}" + (f" ({detail})" if detail else ""),
        severity=EVENT_SEVERITY.get(event.kind, "info"),
        data={"channel": EVENT, "seq": event.seq, "sig": event.sig, "detail": dict(event.detail)},
    )
