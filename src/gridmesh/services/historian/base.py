"""The historian's interface and the records that cross it.

One interface, two backends (embedded for ``gridmesh run``, PostgreSQL for deployments). Storage is
idempotent: a reading is identified by ``(device, seq, quantity, phase)``, so a message delivered twice
(at-least-once transport) is stored once. ``write_*`` commit before they return: the ingest acknowledges
a message to the broker only after that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True)
class ReadingRows:
    """A columnar batch of accepted readings (one entry per reading, all columns the same length).

    ``ts_ns`` is the device's timestamp (UTC ns), ``received_ns`` when the centre accepted it (UTC ns).
    """

    device: list[str]
    seq: npt.NDArray[np.int64]
    ts_ns: npt.NDArray[np.int64]
    quantity: list[str]
    phase: list[str]
    value: npt.NDArray[np.float64]
    quality: list[str]
    received_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.device)

    @classmethod
    def empty(cls) -> ReadingRows:
        none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return cls([], none_i, none_i, [], [], none_f, [], none_i)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message: when, on which topic, why (a short machine-readable reason), and its bytes.

    ``payload`` keeps at most the first :data:`DEAD_LETTER_KEEP_BYTES`; ``size`` is the full length.
    """

    received_ns: int
    topic: str
    reason: str
    detail: str
    payload: bytes
    size: int
    device: str = ""


DEAD_LETTER_KEEP_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One line of the event log (alarm raised/updated/cleared/acknowledged, device online/offline,
    last gasp, command sent/acknowledged...). ``data`` is JSON-serialisable."""

    ts_ns: int
    kind: str
    source: str
    message: str
    severity: str = "info"
    data: dict[str, Any] | None = None


class Historian(Protocol):
    def write_readings(self, rows: ReadingRows) -> int:
        """Store a batch (committed on return); returns how many readings were new."""
        ...

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    def write_events(self, events: Sequence[StoredEvent]) -> None: ...

    def latest(self, *, device: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        """Last value of each series (device, quantity, phase): columns device, quantity, phase, ts, value,
        quality, seq."""
        ...

    def history(
        self, *, start: datetime, end: datetime, device: str | None = None, quantity: str | None = None
    ) -> pd.DataFrame:
        """Raw readings with ``start <= ts < end``: columns device, quantity, phase, ts, value, quality, seq."""
        ...

    def buckets(
        self,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        device: str | None = None,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Downsampled: columns bucket (start time), device, quantity, phase, mean, min, max, count."""
        ...

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> pd.DataFrame: ...

    def events(self, *, since: datetime | None = None, kind: str | None = None, limit: int = 1000) -> pd.DataFrame: ...

    def count(self) -> int:
        """Number of stored readings."""
        ...

    def apply_retention(self, *, keep: timedelta, now: datetime) -> int:
        """Delete readings older than ``now - keep`` (by device timestamp); returns how many went."""
        ...

    def close(self) -> None: ...
