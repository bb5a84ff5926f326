"""What is particular to the embedded (DuckDB) historian: the file, reopening it, and its writer lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.historian.embedded import EmbeddedHistorian

T0_NS = 1_709_251_200 * 10**9


def batch(device: str, seqs: range) -> pd.DataFrame:
    seq = np.array(seqs)
    return pd.DataFrame(
        {
            "device": device,
            "seq": seq,
            "ts_ns": T0_NS + seq * 10**9,
            "quantity": "TotW",
            "phase": "",
            "value": seq * 1.5,
        }
    )


def test_the_file_is_created_with_its_folder_and_survives_reopening(
    tmp_path: Path, rows_from: Callable[[pd.DataFrame], ReadingRows]
) -> None:
    path = tmp_path / "gridmesh-data" / "historian.duckdb"
    first = EmbeddedHistorian(path)
    assert first.write_readings(rows_from(batch("m1", range(1, 11)))) == 10
    first.close()
    assert path.is_file()

    again = EmbeddedHistorian(path)
    assert again.count() == 10
    assert again.write_readings(rows_from(batch("m1", range(5, 16)))) == 5  # 5..10 were already there
    assert again.latest()["seq"].tolist() == [15]
    again.close()


def test_the_schema_is_what_the_docstring_says(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    EmbeddedHistorian(path).close()
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        keys = dict(
            con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE constraint_type = 'PRIMARY KEY'"
            ).fetchall()
        )
    assert tables == {"readings", "latest", "dead_letters", "events"}
    assert keys["readings"] == ["device", "seq", "quantity", "phase"]
    assert keys["latest"] == ["device", "quantity", "phase"]


def test_a_second_process_on_the_same_file_is_told_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    held = EmbeddedHistorian(path)
    try:
        code = (
            "import sys; from pathlib import Path\n"
            "from gridmesh.services.historian.embedded import EmbeddedHistorian\n"
            "try:\n    EmbeddedHistorian(Path(sys.argv[1]))\n"
            "except RuntimeError as exc:\n    print(exc)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, check=True
        )
    finally:
        held.close()
    assert "another gridmesh process" in result.stdout


def test_a_closed_historian_refuses_work(tmp_path: Path, rows_from: Callable[[pd.DataFrame], ReadingRows]) -> None:
    store = EmbeddedHistorian(tmp_path / "h.duckdb")
    store.close()
    with pytest.raises(duckdb.Error):
        store.write_readings(rows_from(batch("m1", range(1, 3))))
