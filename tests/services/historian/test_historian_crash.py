"""No data lost: a writer SIGKILLed mid-stream keeps every batch whose write had returned, exactly once.

A child process writes numbered batches through ``open_historian`` and prints each number only after
``write_readings`` returned (that is the moment the ingest acknowledges to the broker). The parent kills it
with SIGKILL while it is writing, reopens the store and checks: every acknowledged batch is there whole,
no batch is there in part (a write is one transaction), no reading twice; then it redelivers everything,
as the broker would, and exactly the missing readings are added.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.historian.open import open_historian

DEVICES = 100
SEQS_PER_BATCH = 100
QUANTITIES = ("TotW", "PhV")
BATCH_READINGS = DEVICES * SEQS_PER_BATCH * len(QUANTITIES)
T0_NS = 1_709_251_200 * 10**9


def batch(k: int) -> ReadingRows:
    """Batch number ``k``: seqs ``k*100 .. k*100+99`` of every device, values that encode ``k``."""
    seq = np.tile(np.arange(k * SEQS_PER_BATCH, (k + 1) * SEQS_PER_BATCH), DEVICES * len(QUANTITIES))
    device = np.repeat([f"m{i:03d}" for i in range(DEVICES)], SEQS_PER_BATCH * len(QUANTITIES))
    quantity = np.tile(np.repeat(QUANTITIES, SEQS_PER_BATCH), DEVICES)
    ts = T0_NS + seq * 10**9
    n = len(seq)
    value = k + (seq - k * SEQS_PER_BATCH) / 1000.0
    return ReadingRows(device.tolist(), seq, ts, quantity.tolist(), [""] * n, value, ["good"] * n, ts)


# The child imports this very module for `batch`, and acknowledges a batch only after its write returned.
CHILD = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_historian_crash import batch
from gridmesh.services.historian.open import open_historian

store = open_historian(sys.argv[1])
k = 0
while True:
    store.write_readings(batch(k))
    print(k, flush=True)
    k += 1
"""


def kill_while_writing(url: str, acknowledged: int) -> int:
    """Run the writer, SIGKILL it after ``acknowledged`` batches returned; the last acknowledged number."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = -1
    try:
        for line in child.stdout:
            last = int(line)
            if last + 1 >= acknowledged:
                break
        os.kill(child.pid, signal.SIGKILL)  # while it writes the next batch
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert last + 1 == acknowledged, "the writer died before acknowledging enough batches"
    return last


def check_store(url: str, last_acknowledged: int) -> None:
    store = open_historian(url)
    try:
        everything = store.history(
            start=pd.Timestamp(T0_NS, unit="ns", tz="UTC"),
            end=pd.Timestamp(T0_NS, unit="ns", tz="UTC") + timedelta(days=3650),
        )
        per_key = everything.groupby(["device", "seq", "quantity", "phase"]).size()
        assert per_key.max() == 1, "a reading was stored twice"
        per_batch = (everything["seq"] // SEQS_PER_BATCH).value_counts().sort_index()
        assert set(per_batch.to_numpy()) == {BATCH_READINGS}, f"a batch was stored in part: {per_batch.to_dict()}"
        stored = set(per_batch.index)
        assert set(range(last_acknowledged + 1)) <= stored, "an acknowledged batch was lost"
        assert stored <= set(range(last_acknowledged + 2)), "a batch that was never written appeared"
        one = everything[everything["seq"] // SEQS_PER_BATCH == last_acknowledged]
        expected = last_acknowledged + (one["seq"] - last_acknowledged * SEQS_PER_BATCH) / 1000.0
        np.testing.assert_array_equal(one["value"].to_numpy(), expected.to_numpy())

        before = store.count()
        redelivered = sum(store.write_readings(batch(k)) for k in range(last_acknowledged + 2))
        assert before + redelivered == store.count() == (last_acknowledged + 2) * BATCH_READINGS
    finally:
        store.close()


@pytest.mark.parametrize("acknowledged", [3, 40])  # 40: ~16 MB, DuckDB checkpoints its log
def test_embedded_store_survives_sigkill(tmp_path: Path, acknowledged: int) -> None:
    url = f"duckdb:{tmp_path / 'gridmesh-data' / 'historian.duckdb'}"
    last = kill_while_writing(url, acknowledged)
    check_store(url, last)


def test_postgres_store_survives_sigkill(pg_dsn: str, pg_schema: str) -> None:
    url = f"{pg_dsn}?schema={pg_schema}"
    last = kill_while_writing(url, 5)
    check_store(url, last)
