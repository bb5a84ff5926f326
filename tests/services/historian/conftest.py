"""Fixtures of the historian tests: batches built from frames, and a PostgreSQL schema per test.

The PostgreSQL tests run against the real server and fail (never skip) when it is not there: a green run
must mean the PostgreSQL backend was exercised.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from gridmesh.services.historian.base import Historian, ReadingRows
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.postgres import PostgresHistorian

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def rows_from_frame(frame: pd.DataFrame) -> ReadingRows:
    """A batch from a frame with columns device, seq, ts_ns, quantity, phase, value[, quality, received_ns]."""
    n = len(frame)
    quality = frame["quality"].tolist() if "quality" in frame else ["good"] * n
    received = frame["received_ns"].to_numpy(np.int64) if "received_ns" in frame else frame["ts_ns"].to_numpy(np.int64)
    return ReadingRows(
        device=frame["device"].tolist(),
        seq=frame["seq"].to_numpy(np.int64),
        ts_ns=frame["ts_ns"].to_numpy(np.int64),
        quantity=frame["quantity"].tolist(),
        phase=frame["phase"].tolist(),
        value=frame["value"].to_numpy(np.float64),
        quality=quality,
        received_ns=received,
    )


@pytest.fixture
def rows_from() -> Callable[[pd.DataFrame], ReadingRows]:
    return rows_from_frame


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN, after checking it answers (a clear failure otherwise)."""
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_DSN} ({exc}). The historian's PostgreSQL tests need the real "
            "server: start it with `service postgresql start` (or `pg_ctlcluster 15 main start`) and make sure "
            "database `test` exists (`createdb -h 127.0.0.1 -U postgres test`)."
        )
    return PG_DSN


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test, dropped (with everything in it) afterwards."""
    schema = f"test_historian_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["embedded", "postgres"])
def historian(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Historian]:
    """Each backend in turn, empty: the contract tests run once per backend."""
    if request.param == "embedded":
        store: Historian = EmbeddedHistorian(tmp_path / "historian.duckdb")
    else:
        store = PostgresHistorian(request.getfixturevalue("pg_dsn"), schema=request.getfixturevalue("pg_schema"))
    yield store
    store.close()
