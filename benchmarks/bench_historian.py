"""Which embedded engine for the historian: DuckDB against SQLite (and the PostgreSQL backend beside them).

Each engine stores the same idempotent batches the same way (primary key on (device, seq, quantity,
phase), duplicates ignored, the ``latest`` table upserted in the same transaction, one commit per batch):

* ingest: readings/s for batches of 1k, 10k and 100k readings into a fresh store;
* queries on a store filled with ``--rows`` readings of 30,000 series (10,000 meters x 3 quantities, one
  message every 10 s): latest of all series, latest of one device, one device's history over an hour,
  every series over 10 minutes, and 15-minute buckets of one quantity over the whole span.

SQLite is given its best standard form: WAL journal, ``synchronous=NORMAL``, a WITHOUT ROWID table, an
index on ``ts_ns`` for windows, rows bound by ``executemany`` into a staging table in one transaction.

    .venv/bin/python benchmarks/bench_historian.py [--rows 1000000] [--ingest-rows 300000]
        [--engines duckdb,sqlite,postgres] [--pg postgresql://postgres@127.0.0.1:5432/test]

The default run takes about a minute; ``--rows 5000000`` gives the query figures on ~5M rows.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from rich.console import Console
from rich.table import Table

from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.postgres import PostgresHistorian

DEVICES = 10_000
QUANTITIES = ("TotW", "PhV", "Hz")
T0_NS = 1_704_067_200 * 10**9  # 2024-01-01 UTC
PERIOD_NS = 10 * 10**9


def readings(start: int, count: int) -> ReadingRows:
    """Readings ``start .. start+count`` of the stream: message m is device m % DEVICES, seq m // DEVICES."""
    index = np.arange(start, start + count, dtype=np.int64)
    message, q = np.divmod(index, len(QUANTITIES))
    device, seq = message % DEVICES, message // DEVICES
    ts = T0_NS + seq * PERIOD_NS + device * (PERIOD_NS // DEVICES)
    names = np.array([f"meter-{i:05d}" for i in range(DEVICES)], dtype=object)
    return ReadingRows(
        device=names[device].tolist(),
        seq=seq,
        ts_ns=ts,
        quantity=np.array(QUANTITIES, dtype=object)[q].tolist(),
        phase=[""] * count,
        value=np.sin(index * 0.001) * 100.0,
        quality=["good"] * count,
        received_ns=ts,
    )


class SqliteHistorian:
    """The SQLite candidate, as good as SQLite allows, doing what the historian's writes and queries do."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.executescript(
            """
            PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
            CREATE TABLE readings (device TEXT, seq INTEGER, quantity TEXT, phase TEXT, ts_ns INTEGER,
                value REAL, quality TEXT, received_ns INTEGER, PRIMARY KEY (device, seq, quantity, phase))
                WITHOUT ROWID;
            CREATE INDEX readings_ts ON readings (ts_ns);
            CREATE TABLE latest (device TEXT, quantity TEXT, phase TEXT, ts_ns INTEGER, seq INTEGER, value REAL,
                quality TEXT, PRIMARY KEY (device, quantity, phase)) WITHOUT ROWID;
            CREATE TEMP TABLE staging (device TEXT, seq INTEGER, quantity TEXT, phase TEXT, ts_ns INTEGER,
                value REAL, quality TEXT, received_ns INTEGER);
            """
        )

    def write_readings(self, rows: ReadingRows) -> int:
        batch = zip(
            rows.device,
            rows.seq.tolist(),
            rows.quantity,
            rows.phase,
            rows.ts_ns.tolist(),
            rows.value.tolist(),
            rows.quality,
            rows.received_ns.tolist(),
            strict=True,
        )
        con = self.con
        con.execute("BEGIN")
        con.executemany("INSERT INTO staging VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
        new = con.execute("INSERT OR IGNORE INTO readings SELECT * FROM staging").rowcount
        con.execute(
            """
            INSERT INTO latest SELECT device, quantity, phase, ts_ns, seq, value, quality FROM (
                SELECT *, row_number() OVER (PARTITION BY device, quantity, phase ORDER BY ts_ns DESC, seq DESC) AS r
                FROM staging) WHERE r = 1
            ON CONFLICT (device, quantity, phase) DO UPDATE SET ts_ns = excluded.ts_ns, seq = excluded.seq,
                value = excluded.value, quality = excluded.quality
            WHERE excluded.ts_ns > latest.ts_ns OR (excluded.ts_ns = latest.ts_ns AND excluded.seq > latest.seq)
            """
        )
        con.execute("DELETE FROM staging")
        con.execute("COMMIT")
        return new

    def _frame(self, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
        cursor = self.con.execute(sql, params)
        return pd.DataFrame(cursor.fetchall(), columns=[c[0] for c in cursor.description])

    def latest(self, *, device: str | None = None) -> pd.DataFrame:
        if device is None:
            return self._frame("SELECT * FROM latest")
        return self._frame("SELECT * FROM latest WHERE device = ?", (device,))

    def history(self, *, start: pd.Timestamp, end: pd.Timestamp, device: str | None = None) -> pd.DataFrame:
        sql = "SELECT * FROM readings WHERE ts_ns >= ? AND ts_ns < ?"
        params: tuple[Any, ...] = (start.value, end.value)
        if device is not None:
            sql, params = sql + " AND device = ?", (*params, device)
        return self._frame(sql + " ORDER BY device, quantity, phase, ts_ns", params)

    def buckets(self, *, start: pd.Timestamp, end: pd.Timestamp, every: timedelta, quantity: str) -> pd.DataFrame:
        width = int(every.total_seconds() * 10**9)
        return self._frame(
            "SELECT ts_ns - ts_ns % ? AS b, device, quantity, phase, avg(value), min(value), max(value), count(*) "
            "FROM readings WHERE ts_ns >= ? AND ts_ns < ? AND quantity = ? GROUP BY 1, 2, 3, 4",
            (width, start.value, end.value, quantity),
        )

    def close(self) -> None:
        self.con.close()


Store = Any  # EmbeddedHistorian | PostgresHistorian | SqliteHistorian: the calls used are common to all


def stores(engines: list[str], folder: Path, pg: str) -> Iterator[tuple[str, Callable[[], Store]]]:
    for engine in engines:
        if engine == "duckdb":
            yield engine, lambda: EmbeddedHistorian(folder / f"{uuid.uuid4().hex}.duckdb")
        elif engine == "sqlite":
            yield engine, lambda: SqliteHistorian(folder / f"{uuid.uuid4().hex}.sqlite")
        elif engine == "postgres":
            yield engine, lambda: PostgresHistorian(pg, schema=f"bench_{uuid.uuid4().hex[:10]}")
        else:
            raise SystemExit(f"unknown engine {engine!r}: choose from duckdb, sqlite, postgres")


def dispose(store: Store, pg: str) -> None:
    store.close()
    if isinstance(store, PostgresHistorian):
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{store.schema}" CASCADE')


def ingest(store: Store, total: int, batch: int) -> float:
    """Readings/s writing ``total`` readings in batches (generation not timed)."""
    batches = [readings(start, min(batch, total - start)) for start in range(0, total, batch)]
    begin = time.perf_counter()
    for rows in batches:
        store.write_readings(rows)
    return total / (time.perf_counter() - begin)


def timed(call: Callable[[], pd.DataFrame], repeat: int = 3) -> float:
    """Best of ``repeat`` wall times (ms) of a query."""
    best = float("inf")
    for _ in range(repeat):
        begin = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - begin)
    return best * 1e3


def queries(store: Store, rows: int) -> dict[str, float]:
    span_ns = (rows // len(QUANTITIES) // DEVICES + 1) * PERIOD_NS
    t0 = pd.Timestamp(T0_NS, unit="ns", tz="UTC")
    mid = t0 + pd.Timedelta(span_ns // 2, unit="ns")
    full = {"start": t0, "end": t0 + pd.Timedelta(span_ns, unit="ns")}
    return {
        "latest, all series (ms)": timed(store.latest),
        "latest, one device (ms)": timed(lambda: store.latest(device="meter-00042")),
        "history, one device, 1 h (ms)": timed(
            lambda: store.history(start=mid, end=mid + pd.Timedelta(hours=1), device="meter-00042")
        ),
        "history, all series, 10 min (ms)": timed(lambda: store.history(start=mid, end=mid + pd.Timedelta(minutes=10))),
        "buckets 15 min, one quantity, all (ms)": timed(
            lambda: store.buckets(**full, every=timedelta(minutes=15), quantity="PhV")
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="readings in the store the queries run on")
    parser.add_argument("--ingest-rows", type=int, default=300_000, help="readings written per ingest figure")
    parser.add_argument("--engines", default="duckdb,sqlite,postgres")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    engines = args.engines.split(",")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-historian-") as tmp:
        for engine, make in stores(engines, Path(tmp), args.pg):
            figures: dict[str, float] = {}
            for batch in (1_000, 10_000, 100_000):
                store = make()
                figures[f"ingest, {batch:,} a batch (readings/s)"] = ingest(store, args.ingest_rows, batch)
                dispose(store, args.pg)
            store = make()
            figures[f"fill {args.rows:,}, 100,000 a batch (readings/s)"] = ingest(store, args.rows, 100_000)
            figures["redelivered batch, all duplicates (readings/s)"] = ingest(store, 100_000, 100_000)
            figures |= queries(store, args.rows)
            dispose(store, args.pg)
            results[engine] = figures
            Console().print(f"[dim]{engine} done[/dim]")
    show(results)


def show(results: dict[str, dict[str, float]]) -> None:
    engines = list(results)
    table = Table(title="historian engines (same batches, same idempotent writes)")
    table.add_column("measure")
    for engine in engines:
        table.add_column(engine, justify="right")
    if {"duckdb", "sqlite"} <= set(engines):
        table.add_column("duckdb vs sqlite", justify="right")
    for measure in results[engines[0]]:
        cells = [f"{results[e][measure]:,.1f}" if "ms" in measure else f"{results[e][measure]:,.0f}" for e in engines]
        if {"duckdb", "sqlite"} <= set(engines):
            duck, lite = results["duckdb"][measure], results["sqlite"][measure]
            cells.append(f"{duck / lite:.1f}x faster" if "readings/s" in measure else f"{lite / duck:.1f}x faster")
        table.add_row(measure, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
