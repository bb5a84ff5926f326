"""Stream study results to Parquet, one row group per window, so memory stays flat over a year."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class ParquetStream:
    """Append DataFrames with one schema to one Parquet file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ResultFiles:
    """The study's streamed outputs: system, site, battery and flexible-load time series (and bus voltages on
    request)."""

    NAMES = ("timeseries", "sites", "batteries", "flexible", "refusals", "bus_voltages")

    def __init__(self, out: Path, *, detail: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        names = self.NAMES if detail else self.NAMES[:-1]
        self.streams = {name: ParquetStream(out / f"{name}.parquet") for name in names}

    def write(self, name: str, frame: pd.DataFrame) -> None:
        stream = self.streams.get(name)
        if stream is not None:
            stream.write(frame)

    def __enter__(self) -> ResultFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for stream in self.streams.values():
            stream.close()
