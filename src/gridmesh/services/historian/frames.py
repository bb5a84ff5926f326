"""What both historian backends share: argument checks, the Arrow form of a batch, and result frames.

Both backends store times as int64 UTC nanoseconds (lossless, the envelope's own unit) and hand them back
as tz-aware UTC pandas datetimes, so a query answers the same on DuckDB and PostgreSQL to the nanosecond.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from gridmesh.services.historian.base import DEAD_LETTER_KEEP_BYTES, DeadLetter, ReadingRows, StoredEvent

READING_COLUMNS = ("device", "seq", "quantity", "phase", "ts_ns", "value", "quality", "received_ns")
SERIES_FRAME_COLUMNS = ["device", "quantity", "phase", "ts", "value", "quality", "seq"]
BUCKET_FRAME_COLUMNS = ["bucket", "device", "quantity", "phase", "mean", "min", "max", "count"]
DEAD_LETTER_FRAME_COLUMNS = ["received", "topic", "device", "reason", "detail", "size", "payload"]
EVENT_FRAME_COLUMNS = ["ts", "kind", "source", "message", "severity", "data"]

# Readings a device itself flags invalid (IEC 61850 validity) are stored and listed, but kept out of the
# bucket statistics, where one bad value would skew a mean or an envelope the dashboard draws.
BUCKET_EXCLUDED_QUALITY = "invalid"


def to_ns(moment: datetime, name: str) -> int:
    """UTC nanoseconds of a tz-aware datetime; a naive one is refused (its zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}={moment!r} has no time zone: pass an aware datetime, e.g. datetime.now(UTC)")
    return int(pd.Timestamp(moment).value)


def span_ns(start: datetime, end: datetime) -> tuple[int, int]:
    """``(start_ns, end_ns)`` of a half-open window, checked to be non-empty."""
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    if end_ns <= start_ns:
        raise ValueError(f"empty window: end {end.isoformat()} is not after start {start.isoformat()}")
    return start_ns, end_ns


def every_ns(every: timedelta) -> int:
    """A bucket width in nanoseconds, checked to be positive."""
    width = int(pd.Timedelta(every).value)
    if width <= 0:
        raise ValueError(f"bucket width every={every!r} must be positive")
    return width


def cutoff_ns(keep: timedelta, now: datetime) -> int:
    """The retention cut-off ``now - keep`` in UTC ns; ``keep`` must be positive (zero would delete all)."""
    if keep <= timedelta(0):
        raise ValueError(f"retention keep={keep!r} must be positive")
    return to_ns(now, "now") - int(pd.Timedelta(keep).value)


def reading_table(rows: ReadingRows) -> pa.Table:
    """The batch as an Arrow table in storage column order, after checking that all columns line up."""
    n = len(rows)
    lengths = {
        "seq": len(rows.seq),
        "ts_ns": len(rows.ts_ns),
        "quantity": len(rows.quantity),
        "phase": len(rows.phase),
        "value": len(rows.value),
        "quality": len(rows.quality),
        "received_ns": len(rows.received_ns),
    }
    ragged = {name: length for name, length in lengths.items() if length != n}
    if ragged:
        raise ValueError(f"ReadingRows columns differ in length: device has {n}, {ragged}; build one entry per reading")
    return pa.table(
        {
            "device": pa.array(rows.device, type=pa.string()),
            "seq": pa.array(rows.seq, type=pa.int64()),
            "quantity": pa.array(rows.quantity, type=pa.string()),
            "phase": pa.array(rows.phase, type=pa.string()),
            "ts_ns": pa.array(rows.ts_ns, type=pa.int64()),
            "value": pa.array(rows.value, type=pa.float64()),
            "quality": pa.array(rows.quality, type=pa.string()),
            "received_ns": pa.array(rows.received_ns, type=pa.int64()),
        }
    )


def dead_letter_record(letter: DeadLetter) -> tuple[int, str, str, str, str, int, bytes]:
    """One dead letter as stored: the payload cut to :data:`DEAD_LETTER_KEEP_BYTES`, ``size`` kept whole."""
    return (
        letter.received_ns,
        letter.topic,
        letter.device,
        letter.reason,
        letter.detail,
        letter.size,
        bytes(letter.payload[:DEAD_LETTER_KEEP_BYTES]),
    )


def event_record(event: StoredEvent) -> tuple[int, str, str, str, str, str | None]:
    """One event as stored, ``data`` as JSON text (so a value that cannot round-trip fails here, loudly)."""
    data = None if event.data is None else json.dumps(event.data, separators=(",", ":"), allow_nan=False)
    return (event.ts_ns, event.kind, event.source, event.message, event.severity, data)


def utc_times(ns: pd.Series) -> pd.Series:
    """An int64 UTC ns column as tz-aware UTC datetimes (same index; also when empty)."""
    return pd.to_datetime(ns.astype("int64"), unit="ns", utc=True)


def series_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A latest/history result: ``ts_ns`` becomes ``ts`` (UTC), columns in the interface's order."""
    out = frame.assign(ts=utc_times(frame["ts_ns"]))
    out["seq"] = out["seq"].astype("int64")
    out["value"] = out["value"].astype("float64")
    return out[SERIES_FRAME_COLUMNS].reset_index(drop=True)


def bucket_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A buckets result: ``bucket_ns`` becomes ``bucket`` (UTC start time of each bucket)."""
    out = frame.assign(bucket=utc_times(frame["bucket_ns"]))
    out["count"] = out["count"].astype("int64")
    for column in ("mean", "min", "max"):
        out[column] = out[column].astype("float64")
    return out[BUCKET_FRAME_COLUMNS].reset_index(drop=True)


def dead_letter_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A dead-letters result: ``received_ns`` becomes ``received`` (UTC), payloads as ``bytes``."""
    out = frame.assign(
        received=utc_times(frame["received_ns"]),
        payload=[bytes(p) for p in frame["payload"]],
    )
    out["size"] = out["size"].astype("int64")
    return out[DEAD_LETTER_FRAME_COLUMNS].reset_index(drop=True)


def event_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """An events result: ``ts_ns`` becomes ``ts`` (UTC), ``data`` back to dicts (or None)."""
    out = frame.assign(
        ts=utc_times(frame["ts_ns"]),
        data=[_json_value(d) for d in frame["data"]],
    )
    return out[EVENT_FRAME_COLUMNS].reset_index(drop=True)


def _json_value(data: Any) -> Any:
    if data is None or isinstance(data, dict):
        return data
    return json.loads(data)
