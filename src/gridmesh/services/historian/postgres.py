"""The PostgreSQL historian, for deployments: the same interface as the embedded one, on a server.

Schema (in ``schema``, default ``gridmesh``; times are int64 UTC nanoseconds, as in the envelope)::

    readings     device, seq, quantity, phase, ts_ns, value, quality, received_ns
                 PRIMARY KEY (device, seq, quantity, phase)     -- idempotent storage
                 INDEX (device, quantity, phase, ts_ns)         -- one series over a window
                 BRIN (ts_ns)                                   -- all series over a window, retention
    latest       device, quantity, phase, ts_ns, seq, value, quality   PRIMARY KEY (device, quantity, phase)
    dead_letters id, received_ns, topic, device, reason, detail, size, payload (first 64 KiB)
    events       id, ts_ns, kind, source, message, severity, data (jsonb)

A batch travels by ``COPY`` (CSV written by Arrow, no per-row Python) into a temporary staging table, then
one ``INSERT ... ON CONFLICT DO NOTHING`` moves the new readings over and ``latest`` is upserted from the
batch, all in one transaction committed before ``write_readings`` returns. Readings arrive roughly in
time order, so a BRIN index on ``ts_ns`` serves windows and retention for almost no write cost.

Where the TimescaleDB extension is installed in the database, ``readings`` becomes a hypertable chunked
by day on ``ts_ns``. TimescaleDB requires every unique key to hold the partitioning column, so there the
key is ``(device, seq, quantity, phase, ts_ns)``: a redelivered message carries the same timestamp, so
it is still stored once.

One connection (``application_name`` ``gridmesh-historian:<schema>``) serves the historian under a lock
(safe from several threads); a connection broken by a server restart is replaced on the next call, and
the failed call raises, so the ingest does not acknowledge and the broker redelivers.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
import psycopg
import pyarrow.csv as pa_csv
from psycopg import sql

from gridmesh.services.historian.base import DeadLetter, ReadingRows, StoredEvent
from gridmesh.services.historian.frames import (
    BUCKET_EXCLUDED_QUALITY,
    READING_COLUMNS,
    bucket_frame,
    cutoff_ns,
    dead_letter_frame,
    dead_letter_record,
    event_frame,
    event_record,
    every_ns,
    reading_table,
    series_frame,
    span_ns,
    to_ns,
)

_T = TypeVar("_T")
_DAY_NS = 86_400 * 10**9

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.readings (
    device text NOT NULL, seq bigint NOT NULL, quantity text NOT NULL, phase text NOT NULL,
    ts_ns bigint NOT NULL, value double precision NOT NULL, quality text NOT NULL, received_ns bigint NOT NULL,
    PRIMARY KEY ({key})
);
CREATE INDEX IF NOT EXISTS readings_series_ts ON {schema}.readings (device, quantity, phase, ts_ns);
CREATE TABLE IF NOT EXISTS {schema}.latest (
    device text NOT NULL, quantity text NOT NULL, phase text NOT NULL,
    ts_ns bigint NOT NULL, seq bigint NOT NULL, value double precision NOT NULL, quality text NOT NULL,
    PRIMARY KEY (device, quantity, phase)
);
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_ns bigint NOT NULL, topic text NOT NULL,
    device text NOT NULL, reason text NOT NULL, detail text NOT NULL, size bigint NOT NULL, payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON {schema}.dead_letters (received_ns);
CREATE TABLE IF NOT EXISTS {schema}.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts_ns bigint NOT NULL, kind text NOT NULL,
    source text NOT NULL, message text NOT NULL, severity text NOT NULL, data jsonb
);
CREATE INDEX IF NOT EXISTS events_ts ON {schema}.events (ts_ns);
"""

_UPSERT_LATEST = """
INSERT INTO {schema}.latest AS l (device, quantity, phase, ts_ns, seq, value, quality)
SELECT DISTINCT ON (device, quantity, phase) device, quantity, phase, ts_ns, seq, value, quality
FROM pg_temp.gridmesh_staging ORDER BY device, quantity, phase, ts_ns DESC, seq DESC
ON CONFLICT (device, quantity, phase) DO UPDATE SET
    ts_ns = excluded.ts_ns, seq = excluded.seq, value = excluded.value, quality = excluded.quality
WHERE (excluded.ts_ns, excluded.seq) > (l.ts_ns, l.seq)
"""

_SERIES_COLUMNS = ["device", "quantity", "phase", "ts_ns", "value", "quality", "seq"]


def _filters(device: str | None, quantity: str | None) -> tuple[list[sql.Composable], list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if device is not None:
        clauses.append(sql.SQL("device = %s"))
        params.append(device)
    if quantity is not None:
        clauses.append(sql.SQL("quantity = %s"))
        params.append(quantity)
    return clauses, params


def _where(clauses: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")


class PostgresHistorian:
    """The :class:`~gridmesh.services.historian.base.Historian` on PostgreSQL (schema created if missing)."""

    def __init__(self, dsn: str, *, schema: str = "gridmesh") -> None:
        self.dsn = dsn
        self.schema = schema
        self._s = sql.Identifier(schema)
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._connect()
        with self._conn.transaction():
            self.timescale = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
            ).fetchone() == (True,)
            self._create_schema()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, application_name=f"gridmesh-historian:{self.schema}"[:63])
        except psycopg.OperationalError as exc:
            raise RuntimeError(
                f"cannot reach the PostgreSQL historian at {self.dsn!r}: {exc}. Start the server "
                "(e.g. `service postgresql start`) or fix the URL."
            ) from exc
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS gridmesh_staging (device text, seq bigint, quantity text, "
            "phase text, ts_ns bigint, value double precision, quality text, received_ns bigint) "
            "ON COMMIT DELETE ROWS"
        )
        return conn

    def _create_schema(self) -> None:
        conn = self._conn
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
        key = "device, seq, quantity, phase" + (", ts_ns" if self.timescale else "")
        conn.execute(sql.SQL(_TABLES).format(schema=self._s, key=sql.SQL(key)))
        if self.timescale:
            conn.execute(
                "SELECT create_hypertable(%s, 'ts_ns', chunk_time_interval => %s::bigint, if_not_exists => true)",
                [f"{self.schema}.readings", _DAY_NS],
            )
        else:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS readings_ts ON {}.readings USING brin (ts_ns)").format(self._s)
            )

    def _run(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """One transaction on the (re)connected connection, under the lock."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the PostgreSQL historian ({self.schema}) is closed: open a new one")
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            with self._conn.transaction():
                return work(self._conn)

    # -- writes ---------------------------------------------------------------------------------------

    def write_readings(self, rows: ReadingRows) -> int:
        """COPY the batch in and keep the new readings, committed on return; returns how many were new."""
        if len(rows) == 0:
            return 0
        buffer = io.BytesIO()
        pa_csv.write_csv(reading_table(rows), buffer, pa_csv.WriteOptions(include_header=False))
        payload = buffer.getvalue()
        columns = ", ".join(READING_COLUMNS)

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.cursor() as cur:
                with cur.copy(f"COPY pg_temp.gridmesh_staging ({columns}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(payload)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {}.readings ({}) SELECT {} FROM pg_temp.gridmesh_staging ON CONFLICT DO NOTHING"
                    ).format(self._s, sql.SQL(columns), sql.SQL(columns))
                )
                inserted = cur.rowcount
                cur.execute(sql.SQL(_UPSERT_LATEST).format(schema=self._s))
            return inserted

        return self._run(work)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store rejected messages (payload cut to 64 KiB), committed on return."""
        if not letters:
            return
        query = sql.SQL(
            "INSERT INTO {}.dead_letters (received_ns, topic, device, reason, detail, size, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ).format(self._s)
        records = [dead_letter_record(letter) for letter in letters]
        self._run(lambda conn: conn.cursor().executemany(query, records))

    def write_events(self, events: Sequence[StoredEvent]) -> None:
        """Append events to the log, committed on return."""
        if not events:
            return
        query = sql.SQL(
            "INSERT INTO {}.events (ts_ns, kind, source, message, severity, data) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb)"
        ).format(self._s)
        records = [event_record(event) for event in events]
        self._run(lambda conn: conn.cursor().executemany(query, records))

    def apply_retention(self, *, keep: timedelta, now: datetime) -> int:
        """Delete readings whose device timestamp is before ``now - keep``; returns how many went.

        Series with nothing left inside the window leave ``latest`` too.
        """
        cutoff = cutoff_ns(keep, now)

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DELETE FROM {}.readings WHERE ts_ns < %s").format(self._s), [cutoff])
                deleted = cur.rowcount
                cur.execute(sql.SQL("DELETE FROM {}.latest WHERE ts_ns < %s").format(self._s), [cutoff])
            return deleted

        return self._run(work)

    # -- queries --------------------------------------------------------------------------------------

    def _frame(self, query: sql.Composed, params: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
        def work(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(query, list(params))
                return cur.fetchall()

        return pd.DataFrame.from_records(self._run(work), columns=list(columns))

    def latest(self, *, device: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        """Last value of each series: columns device, quantity, phase, ts, value, quality, seq."""
        clauses, params = _filters(device, quantity)
        query = sql.SQL("SELECT {} FROM {}.latest {} ORDER BY device, quantity, phase").format(
            sql.SQL(", ").join(map(sql.Identifier, _SERIES_COLUMNS)), self._s, _where(clauses)
        )
        return series_frame(self._frame(query, params, _SERIES_COLUMNS))

    def history(
        self, *, start: datetime, end: datetime, device: str | None = None, quantity: str | None = None
    ) -> pd.DataFrame:
        """Raw readings with ``start <= ts < end``, series by series in time order."""
        start_ns, end_ns = span_ns(start, end)
        clauses, params = _filters(device, quantity)
        window = [sql.SQL("ts_ns >= %s"), sql.SQL("ts_ns < %s"), *clauses]
        query = sql.SQL("SELECT {} FROM {}.readings {} ORDER BY device, quantity, phase, ts_ns, seq").format(
            sql.SQL(", ").join(map(sql.Identifier, _SERIES_COLUMNS)), self._s, _where(window)
        )
        return series_frame(self._frame(query, [start_ns, end_ns, *params], _SERIES_COLUMNS))

    def buckets(
        self,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        device: str | None = None,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Mean/min/max/count per series and bucket of width ``every``, buckets aligned to the Unix epoch.

        Only buckets holding readings appear; readings of quality ``invalid`` are left out.
        """
        start_ns, end_ns = span_ns(start, end)
        width = every_ns(every)
        clauses, params = _filters(device, quantity)
        window = [sql.SQL("ts_ns >= %s"), sql.SQL("ts_ns < %s"), sql.SQL("quality <> %s"), *clauses]
        query = sql.SQL(
            "SELECT ts_ns - (((ts_ns %% %s) + %s) %% %s) AS bucket_ns, device, quantity, phase, "
            "avg(value), min(value), max(value), count(*) FROM {}.readings {} "
            "GROUP BY 1, 2, 3, 4 ORDER BY device, quantity, phase, bucket_ns"
        ).format(self._s, _where(window))
        values = [width, width, width, start_ns, end_ns, BUCKET_EXCLUDED_QUALITY, *params]
        columns = ["bucket_ns", "device", "quantity", "phase", "mean", "min", "max", "count"]
        return bucket_frame(self._frame(query, values, columns))

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> pd.DataFrame:
        """The newest rejected messages first: received, topic, device, reason, detail, size, payload."""
        clauses, params = ([sql.SQL("reason = %s")], [reason]) if reason is not None else ([], [])
        query = sql.SQL(
            "SELECT received_ns, topic, device, reason, detail, size, payload FROM {}.dead_letters {} "
            "ORDER BY received_ns DESC, id DESC LIMIT %s"
        ).format(self._s, _where(clauses))
        columns = ["received_ns", "topic", "device", "reason", "detail", "size", "payload"]
        return dead_letter_frame(self._frame(query, [*params, int(limit)], columns))

    def events(self, *, since: datetime | None = None, kind: str | None = None, limit: int = 1000) -> pd.DataFrame:
        """The newest events first (``ts >= since`` when given): ts, kind, source, message, severity, data."""
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if since is not None:
            clauses.append(sql.SQL("ts_ns >= %s"))
            params.append(to_ns(since, "since"))
        if kind is not None:
            clauses.append(sql.SQL("kind = %s"))
            params.append(kind)
        query = sql.SQL(
            "SELECT ts_ns, kind, source, message, severity, data FROM {}.events {} "
            "ORDER BY ts_ns DESC, id DESC LIMIT %s"
        ).format(self._s, _where(clauses))
        columns = ["ts_ns", "kind", "source", "message", "severity", "data"]
        return event_frame(self._frame(query, [*params, int(limit)], columns))

    def count(self) -> int:
        """Number of stored readings."""
        query = sql.SQL("SELECT count(*) FROM {}.readings").format(self._s)
        return int(self._frame(query, [], ["n"])["n"].iloc[0])

    def close(self) -> None:
        """Close the connection; the historian cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._conn.close()
