"""DiskBuffer: FIFO order, removal by id, the byte bound's drop-oldest policy, and survival of a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gridmesh.adapters.mqtt.buffer import DiskBuffer


def test_peek_returns_messages_oldest_first_and_after_a_cursor(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "outbox.db")
    ids = [buffer.append(f"t/{i}", bytes([i]) * 3, qos=1, retain=i == 2) for i in range(5)]
    assert ids == sorted(ids)
    first = buffer.peek(0, 3)
    assert [m.topic for m in first] == ["t/0", "t/1", "t/2"]
    assert first[2].retain and not first[1].retain
    assert first[1].payload == b"\x01\x01\x01"
    assert [m.topic for m in buffer.peek(first[-1].id, 10)] == ["t/3", "t/4"]
    assert len(buffer) == 5 and buffer.size_bytes == 15


def test_remove_deletes_only_given_ids_and_ignores_unknown(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "outbox.db")
    ids = [buffer.append("t", b"abcd") for _ in range(4)]
    assert buffer.remove([ids[1], ids[3], 999_999]) == 2
    assert [m.id for m in buffer.peek()] == [ids[0], ids[2]]
    assert len(buffer) == 2 and buffer.size_bytes == 8
    assert buffer.remove([]) == 0


def test_ids_keep_growing_after_the_buffer_was_emptied_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    buffer = DiskBuffer(path)
    last = [buffer.append("t", b"x") for _ in range(3)][-1]
    buffer.remove(m.id for m in buffer.peek())
    buffer.close()
    reopened = DiskBuffer(path)
    assert len(reopened) == 0
    assert reopened.append("t", b"y") > last  # a sender's cursor past `last` must not skip new rows


def test_full_buffer_drops_the_oldest_messages_and_counts_them(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "outbox.db", max_bytes=100)
    for i in range(3):
        buffer.append("t", bytes([i]) * 30)  # 90 bytes held
    buffer.append("t", bytes([3]) * 30)  # needs 20 more: the oldest 30-byte message goes
    assert buffer.dropped == 1
    assert [m.payload[0] for m in buffer.peek()] == [1, 2, 3]
    buffer.append("t", bytes([4]) * 70)  # 90 + 70 - 100 = 60 to free: two more go
    assert buffer.dropped == 3
    assert [m.payload[0] for m in buffer.peek()] == [3, 4]
    assert buffer.size_bytes == 100


def test_a_payload_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "outbox.db", max_bytes=10)
    with pytest.raises(ValueError, match="max_bytes"):
        buffer.append("t", b"x" * 11)
    assert len(buffer) == 0


def test_concurrent_appends_are_all_kept_with_distinct_ids(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "outbox.db")
    ids: list[int] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        mine = [buffer.append(f"t/{k}", str(i).encode()) for i in range(300)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1200 and len(buffer) == 1200
    per_thread = {k: [int(m.payload) for m in buffer.peek(0, 2000) if m.topic == f"t/{k}"] for k in range(4)}
    assert all(v == list(range(300)) for v in per_thread.values())  # each thread's order is kept


CHILD = """
import os, signal, sys
from pathlib import Path
from gridmesh.adapters.mqtt.buffer import DiskBuffer
buffer = DiskBuffer(Path(sys.argv[1]))
for i in range(200):
    buffer.append("field/meter/telemetry", str(i).encode())
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_appended_messages_survive_sigkill_of_the_process(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=False, timeout=60)
    assert result.returncode == -signal.SIGKILL
    buffer = DiskBuffer(path)
    assert [int(m.payload) for m in buffer.peek(0, 1000)] == list(range(200))


def test_an_unreadable_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OSError, match="move the file aside"):
        DiskBuffer(path)
