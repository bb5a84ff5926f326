"""The field side's store-and-forward buffer: outgoing messages on disk until the broker acknowledges them.

SQLite in WAL mode holds one row per message, in publish order (``AUTOINCREMENT`` ids never go back, so
order survives an emptied table and a restart). Each :meth:`DiskBuffer.append` is its own committed
transaction with ``synchronous=NORMAL``: a message survives the process being killed the moment
``append`` returns; after a power cut the last few commits may be rolled back, but the file stays
consistent. Rows leave only through :meth:`DiskBuffer.remove`, called when the broker's PUBACK arrives.

Bound and policy: the payload bytes held are capped by ``max_bytes``. When an append would exceed it,
the *oldest* messages are dropped (and counted in :attr:`DiskBuffer.dropped`, with a warning) to make
room. After an outage longer than the buffer can hold, the newest state reaches the centre and the gap
is at the old end, where it is visible as missing sequence numbers; refusing new messages instead would
freeze the device's view at the moment the buffer filled. Size ``max_bytes`` for the longest outage to
ride out (a 100-reading envelope is about 6 kB: 512 MiB holds ~90,000 of them).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 512 * 1024 * 1024

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class BufferedMessage:
    """One outgoing message as stored; ``id`` orders messages and names the row to remove on PUBACK."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class DiskBuffer:
    """An on-disk FIFO of outgoing MQTT messages; safe to use from several threads."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OSError(f"cannot open store-and-forward buffer {path}: {exc}; move the file aside") from exc
        self._count: int = count
        self._bytes: int = size

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Payload bytes currently held (what ``max_bytes`` bounds)."""
        return self._bytes

    def append(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message durably and return its id; drops the oldest messages if the bound is reached."""
        if len(payload) > self.max_bytes:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the buffer's max_bytes={self.max_bytes}")
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                self._drop_oldest(self._bytes + len(payload) - self.max_bytes)
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                (topic, payload, qos, int(retain)),
            )
            self._count += 1
            self._bytes += len(payload)
            row_id = cursor.lastrowid
        assert row_id is not None  # an INSERT always sets it
        return row_id

    def peek(self, after_id: int = 0, limit: int = 1000) -> list[BufferedMessage]:
        """Up to ``limit`` messages with an id above ``after_id``, oldest first (nothing is removed)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [BufferedMessage(i, t, bytes(p), q, bool(r)) for i, t, p, q, r in rows]

    def remove(self, ids: Iterable[int]) -> int:
        """Delete acknowledged messages in one transaction; unknown ids are ignored. Returns how many went."""
        wanted = [(i,) for i in ids]
        if not wanted:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS acked (id INTEGER PRIMARY KEY)")
                self._db.executemany("INSERT OR IGNORE INTO acked (id) VALUES (?)", wanted)
                removed, size = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE id IN (SELECT id FROM acked)"
                ).fetchone()
                self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM acked)")
                self._db.execute("DELETE FROM acked")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count -= removed
            self._bytes -= size
        return int(removed)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_oldest(self, need: int) -> None:
        freed = dropped = 0
        last_id = 0
        rows = self._db.execute("SELECT id, LENGTH(payload) FROM outbox ORDER BY id")
        try:
            for row_id, size in rows:
                freed += size
                dropped += 1
                last_id = row_id
                if freed >= need:
                    break
        finally:
            rows.close()
        self._db.execute("DELETE FROM outbox WHERE id <= ?", (last_id,))
        self._count -= dropped
        self._bytes -= freed
        self.dropped += dropped
        _log.warning(
            "store-and-forward buffer %s is full (%d bytes): dropped the %d oldest message(s); "
            "raise max_bytes to ride out longer outages",
            self.path,
            self.max_bytes,
            dropped,
        )
