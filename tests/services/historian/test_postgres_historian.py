"""What is particular to the PostgreSQL historian, against the real server (each test in its own schema)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import psycopg
import pytest

from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.historian.postgres import PostgresHistorian

T0_NS = 1_709_251_200 * 10**9
RowsFrom = Callable[[pd.DataFrame], ReadingRows]


def batch(device: str, seqs: range) -> pd.DataFrame:
    seq = np.array(seqs)
    return pd.DataFrame(
        {"device": device, "seq": seq, "ts_ns": T0_NS + seq * 10**9, "quantity": "Hz", "phase": "", "value": 50.0}
    )


def test_creates_its_schema_tables_and_indexes_once(pg_dsn: str, pg_schema: str, rows_from: RowsFrom) -> None:
    first = PostgresHistorian(pg_dsn, schema=pg_schema)
    first.write_readings(rows_from(batch("m1", range(1, 4))))
    first.close()
    second = PostgresHistorian(pg_dsn, schema=pg_schema)  # the DDL is idempotent and keeps the data
    assert second.count() == 3
    second.close()
    with psycopg.connect(pg_dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [pg_schema])}
        indexes = dict(
            conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [pg_schema]).fetchall()
        )
        timescale = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert tables == {"readings", "latest", "dead_letters", "events"}
    assert "(device, seq, quantity, phase)" in indexes["readings_pkey"]
    assert "(device, quantity, phase, ts_ns)" in indexes["readings_series_ts"]
    assert timescale == (0,)  # not installed on the test server: the plain-table path, with a BRIN index
    assert "USING brin (ts_ns)" in indexes["readings_ts"]


def test_schemas_keep_historians_apart(pg_dsn: str, pg_schema: str, rows_from: RowsFrom) -> None:
    one = PostgresHistorian(pg_dsn, schema=pg_schema)
    other_schema = pg_schema + "_b"
    other = PostgresHistorian(pg_dsn, schema=other_schema)
    try:
        one.write_readings(rows_from(batch("m1", range(1, 6))))
        assert (one.count(), other.count()) == (5, 0)
    finally:
        one.close()
        other.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{other_schema}" CASCADE')


def test_a_lost_connection_fails_one_call_then_reconnects(pg_dsn: str, pg_schema: str, rows_from: RowsFrom) -> None:
    store = PostgresHistorian(pg_dsn, schema=pg_schema)
    store.write_readings(rows_from(batch("m1", range(1, 4))))
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = %s",
            [f"gridmesh-historian:{pg_schema}"],
        ).fetchall()
    assert killed == [(True,)]
    with pytest.raises(psycopg.OperationalError):
        store.write_readings(rows_from(batch("m1", range(4, 7))))  # not acknowledged: the broker redelivers
    assert store.write_readings(rows_from(batch("m1", range(4, 7)))) == 3
    assert store.count() == 6
    store.close()


def test_a_closed_historian_refuses_work(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresHistorian(pg_dsn, schema=pg_schema)
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.count()


def test_an_unreachable_server_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="Start the server"):
        PostgresHistorian("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
