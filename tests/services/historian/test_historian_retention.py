"""The retention schedule prunes on its first call and then once per ``every``, by the caller's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.retention import RetentionPolicy, RetentionSchedule

NOW = datetime(2024, 3, 10, tzinfo=UTC)


def test_prunes_when_due_only(tmp_path: Path) -> None:
    store = EmbeddedHistorian(tmp_path / "h.duckdb")
    days_ago = np.array([9, 8, 5, 1, 0])  # one reading per age in days
    ts = np.array([int((NOW - timedelta(days=int(d))).timestamp()) * 10**9 for d in days_ago], dtype=np.int64)
    n = len(ts)
    store.write_readings(
        ReadingRows(["m"] * n, np.arange(n), ts, ["Hz"] * n, [""] * n, np.full(n, 50.0), ["good"] * n, ts)
    )
    schedule = RetentionSchedule(RetentionPolicy(keep=timedelta(days=7), every=timedelta(hours=6)))

    assert schedule.run_if_due(store, NOW) == 2  # the 9- and 8-day-old readings
    assert schedule.run_if_due(store, NOW + timedelta(hours=5)) is None
    assert schedule.run_if_due(store, NOW + timedelta(days=2, hours=1)) == 1  # now the 5-day-old one is 7 d+
    assert store.count() == 2
    store.close()


def test_durations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetentionPolicy(keep=timedelta(0))
    with pytest.raises(ValueError, match="positive"):
        RetentionPolicy(keep=timedelta(days=1), every=timedelta(seconds=-1))
