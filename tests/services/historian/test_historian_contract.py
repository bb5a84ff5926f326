"""The Historian contract, run against every backend (embedded DuckDB and the real PostgreSQL).

Every query result is checked against pandas computing the same answer from the frame that was written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridmesh.services.historian.base import (
    DEAD_LETTER_KEEP_BYTES,
    DeadLetter,
    Historian,
    ReadingRows,
    StoredEvent,
)

RowsFrom = Callable[[pd.DataFrame], ReadingRows]

T0 = pd.Timestamp("2024-03-01T00:00:00Z")
T0_NS = int(T0.value)
SERIES_COLUMNS = ["device", "quantity", "phase", "ts", "value", "quality", "seq"]


def frame_of(n_devices: int, n_seq: int, *, seed: int = 0, seq0: int = 1) -> pd.DataFrame:
    """Readings of ``n_devices`` meters, ``n_seq`` messages each (10 s apart, ns jitter), 3 readings a message."""
    rng = np.random.default_rng(seed)
    device = np.repeat([f"meter-{i:03d}" for i in range(n_devices)], n_seq)
    seq = np.tile(np.arange(seq0, seq0 + n_seq), n_devices)
    ts = T0_NS + (seq - 1) * 10 * 10**9 + rng.integers(0, 10**9, size=len(seq))
    parts = [
        pd.DataFrame({"device": device, "seq": seq, "ts_ns": ts, "quantity": q, "phase": p})
        for q, p in (("TotW", ""), ("PhV", "A"), ("PhV", "B"))
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame["value"] = rng.normal(230.0, 50.0, size=len(frame))
    frame["quality"] = rng.choice(["good", "good", "good", "questionable", "invalid"], size=len(frame))
    return frame


def expected_series(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(ts=pd.to_datetime(frame["ts_ns"], unit="ns", utc=True))
    return out.sort_values(["device", "quantity", "phase", "ts_ns", "seq"])[SERIES_COLUMNS].reset_index(drop=True)


def utc(ns: int) -> datetime:
    """A datetime to the nanosecond (``pd.Timestamp`` is one; ``datetime`` itself stops at microseconds)."""
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def test_a_batch_written_twice_is_stored_once(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(4, 5)
    assert historian.write_readings(rows_from(frame)) == len(frame) == 60
    assert historian.write_readings(rows_from(frame)) == 0
    overlapping = pd.concat([frame.iloc[:10], frame_of(4, 2, seq0=6)], ignore_index=True)
    assert historian.write_readings(rows_from(overlapping)) == 24
    assert historian.count() == 84


def test_duplicates_inside_one_batch_are_stored_once(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(2, 3)
    doubled = pd.concat([frame, frame.iloc[::2]], ignore_index=True)
    assert historian.write_readings(rows_from(doubled)) == len(frame)
    assert historian.count() == len(frame)


def test_history_round_trips_every_value_exactly(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(3, 20, seed=1)
    frame.loc[0, "device"] = 'odd, "quoted"\tname\nü'  # CSV/COPY must carry any text
    historian.write_readings(rows_from(frame))
    got = historian.history(start=utc(T0_NS), end=utc(T0_NS + 10**12))
    pd.testing.assert_frame_equal(got, expected_series(frame), check_dtype=False)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert got["value"].to_numpy().tobytes() == expected_series(frame)["value"].to_numpy().tobytes()


def test_history_window_is_half_open_and_filters(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(3, 30, seed=2)
    historian.write_readings(rows_from(frame))
    start_ns = int(frame["ts_ns"].iloc[7])  # an exact reading time: included at start, excluded at end
    end_ns = int(frame["ts_ns"].iloc[20])
    got = historian.history(start=utc(start_ns), end=utc(end_ns), device="meter-001", quantity="PhV")
    chosen = frame[
        (frame["ts_ns"] >= start_ns)
        & (frame["ts_ns"] < end_ns)
        & (frame["device"] == "meter-001")
        & (frame["quantity"] == "PhV")
    ]
    assert len(chosen) > 0
    pd.testing.assert_frame_equal(got, expected_series(chosen), check_dtype=False)


def test_latest_is_the_newest_reading_of_each_series(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(5, 12, seed=3)
    late = frame[frame["seq"] <= 4]  # an old message delivered last must not move `latest` back
    historian.write_readings(rows_from(frame[frame["seq"] > 4]))
    historian.write_readings(rows_from(late))
    newest = frame.sort_values(["ts_ns", "seq"]).groupby(["device", "quantity", "phase"]).tail(1)
    pd.testing.assert_frame_equal(historian.latest(), expected_series(newest), check_dtype=False)
    one = historian.latest(device="meter-002", quantity="TotW")
    assert len(one) == 1
    assert one["value"].iloc[0] == newest.query("device == 'meter-002' and quantity == 'TotW'")["value"].iloc[0]


def test_buckets_match_pandas_resample(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(3, 60, seed=4)  # 10 minutes of 10 s messages
    historian.write_readings(rows_from(frame))
    every = timedelta(seconds=45)  # does not divide the hour: alignment to the epoch matters
    start, end = utc(T0_NS + 37 * 10**9), utc(T0_NS + 530 * 10**9)
    got = historian.buckets(start=start, end=end, every=every, quantity="PhV")

    used = frame[(frame["quality"] != "invalid") & (frame["quantity"] == "PhV")]
    used = used.assign(ts=pd.to_datetime(used["ts_ns"], unit="ns", utc=True))
    used = used[(used["ts"] >= start) & (used["ts"] < end)]
    reference = (
        used.set_index("ts")
        .groupby(["device", "quantity", "phase"])["value"]
        .resample(every, origin="epoch")
        .agg(["mean", "min", "max", "count"])
        .reset_index()
        .rename(columns={"ts": "bucket"})
    )
    reference = reference[reference["count"] > 0][got.columns].reset_index(drop=True)
    assert len(reference) > 20
    pd.testing.assert_frame_equal(got, reference, check_dtype=False, rtol=1e-12)


def test_retention_deletes_what_is_older_than_keep(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(4, 30, seed=5)
    frame.loc[frame["device"] == "meter-003", "ts_ns"] -= 3600 * 10**9  # one meter an hour behind
    historian.write_readings(rows_from(frame))
    now = utc(T0_NS + 3600 * 10**9)
    keep = timedelta(minutes=58)
    cutoff = T0_NS + 2 * 60 * 10**9
    assert historian.apply_retention(keep=keep, now=now) == int((frame["ts_ns"] < cutoff).sum())
    assert historian.count() == int((frame["ts_ns"] >= cutoff).sum())
    assert set(historian.latest()["device"]) == {"meter-000", "meter-001", "meter-002"}
    with pytest.raises(ValueError, match="positive"):
        historian.apply_retention(keep=timedelta(0), now=now)


def test_dead_letters_keep_the_head_of_the_payload_newest_first(historian: Historian) -> None:
    big = bytes(range(256)) * 1000
    letters = [
        DeadLetter(T0_NS + 1, "gridmesh/v1/s/m1/telemetry", "bad_signature", "key m1", b"\x00\x01", 2, "m1"),
        DeadLetter(T0_NS + 3, "gridmesh/v1/s/m2/telemetry", "too_large", "256000 bytes", big, len(big), "m2"),
        DeadLetter(T0_NS + 2, "gridmesh/v1/s/x/telemetry", "bad_signature", "unknown device", b"{}", 2),
    ]
    historian.write_dead_letters(letters)
    got = historian.dead_letters()
    assert list(got.columns) == ["received", "topic", "device", "reason", "detail", "size", "payload"]
    assert list(got["received"]) == [pd.Timestamp(T0_NS + k, unit="ns", tz="UTC") for k in (3, 2, 1)]
    assert got["payload"].iloc[0] == big[:DEAD_LETTER_KEEP_BYTES]
    assert got["size"].iloc[0] == len(big)
    assert list(historian.dead_letters(reason="bad_signature")["device"]) == ["", "m1"]
    assert len(historian.dead_letters(limit=1)) == 1


def test_events_newest_first_with_filters(historian: Historian) -> None:
    events = [
        StoredEvent(T0_NS + k * 10**9, kind, f"dev-{k}", f"message {k}", sev, data)
        for k, (kind, sev, data) in enumerate(
            [
                ("alarm_raised", "warning", {"limit": 1.1, "tags": ["v"]}),
                ("device_online", "info", None),
                ("alarm_cleared", "info", {"limit": 1.1}),
                ("device_online", "info", None),
            ]
        )
    ]
    historian.write_events(events)
    got = historian.events()
    assert list(got["source"]) == ["dev-3", "dev-2", "dev-1", "dev-0"]
    assert got["data"].iloc[3] == {"limit": 1.1, "tags": ["v"]}
    assert got["data"].iloc[0] is None
    assert list(historian.events(kind="device_online")["source"]) == ["dev-3", "dev-1"]
    assert list(historian.events(since=utc(T0_NS + 2 * 10**9))["source"]) == ["dev-3", "dev-2"]
    assert list(historian.events(limit=2)["source"]) == ["dev-3", "dev-2"]


def test_empty_results_keep_their_columns_and_types(historian: Historian) -> None:
    latest = historian.latest()
    assert list(latest.columns) == SERIES_COLUMNS
    assert str(latest["ts"].dtype) == "datetime64[ns, UTC]"
    window = {"start": utc(T0_NS), "end": utc(T0_NS + 10**9)}
    assert list(historian.history(**window).columns) == SERIES_COLUMNS
    buckets = historian.buckets(**window, every=timedelta(minutes=1))
    assert list(buckets.columns) == ["bucket", "device", "quantity", "phase", "mean", "min", "max", "count"]
    assert historian.dead_letters().empty
    assert historian.events().empty
    assert historian.count() == 0


def test_bad_arguments_say_what_to_do(historian: Historian, rows_from: RowsFrom) -> None:
    with pytest.raises(ValueError, match="time zone"):
        historian.history(start=datetime(2024, 1, 1), end=datetime(2024, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="not after"):
        historian.history(start=utc(T0_NS), end=utc(T0_NS))
    with pytest.raises(ValueError, match="positive"):
        historian.buckets(start=utc(T0_NS), end=utc(T0_NS + 1), every=timedelta(0))
    rows = rows_from(frame_of(1, 2))
    ragged = type(rows)(**{**rows.__dict__, "value": rows.value[:-1]})
    with pytest.raises(ValueError, match="differ in length"):
        historian.write_readings(ragged)
    assert historian.count() == 0


def test_writers_on_several_threads_lose_nothing(historian: Historian, rows_from: RowsFrom) -> None:
    frame = frame_of(8, 25, seed=6)
    chunks = [frame[frame["device"] == d] for d in frame["device"].unique()]
    new: list[int] = []
    seen: list[int] = []
    threads = [threading.Thread(target=lambda c=c: new.append(historian.write_readings(rows_from(c)))) for c in chunks]
    threads += [threading.Thread(target=lambda: seen.append(len(historian.latest()))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(new) == len(chunks)  # a writer that raised would be missing here
    assert len(seen) == 4
    assert sum(new) == historian.count() == len(frame)
    assert len(historian.latest()) == 8 * 3
