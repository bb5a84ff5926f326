"""No data lost, with a private Mosquitto we may stop: (a) the broker restarts mid-stream while the field
keeps publishing into its disk buffer; (b) the centre is SIGKILLed mid-stream and restarted. Every number
published must be stored, exactly once after idempotent storage, and in order per publisher."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from gridmesh.adapters.mqtt import MqttBus
from gridmesh.services.bus import Message
from support.brokers import PrivateBroker, wait_for


class Store:
    """Idempotent storage keyed by number, remembering arrival order and how often each came."""

    def __init__(self) -> None:
        self.arrivals: list[int] = []
        self.stored: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Message]) -> None:
        with self._lock:
            for m in batch:
                n = int(m.payload)
                self.arrivals.append(n)
                self.stored.setdefault(n, len(self.stored))

    def count(self) -> int:
        with self._lock:
            return len(self.stored)


def test_broker_restart_mid_stream_loses_nothing(private_broker: PrivateBroker, tmp_path: Path) -> None:
    topic = "gridmesh/v1/grid/meter-1/telemetry"
    store = Store()
    centre = MqttBus(private_broker.url, client_id=f"centre-{uuid.uuid4().hex[:8]}")
    field = MqttBus(private_broker.url, client_id="meter-1", buffer_path=tmp_path / "outbox.db")
    try:
        centre.subscribe("gridmesh/v1/+/+/telemetry", store)
        assert centre.ready(10) and field.ready(10)
        for n in range(0, 1500):
            field.publish(topic, str(n).encode())
        wait_for(lambda: store.count() >= 200, 30, "the stream to start flowing")
        private_broker.stop()
        wait_for(lambda: not field.connected, 10, "the field to notice the broker is gone")
        for n in range(1500, 2500):  # into the disk buffer only
            field.publish(topic, str(n).encode())
        assert field.counters().buffered >= 1000
        private_broker.start()
        for n in range(2500, 3000):
            field.publish(topic, str(n).encode())
        wait_for(lambda: store.count() == 3000, 60, "all 3000 numbers after the broker restart")
        assert field.flush(30)
    finally:
        field.close()
        centre.close()
    assert sorted(store.stored) == list(range(3000))  # every number, stored once
    assert store.stored == {n: n for n in range(3000)}  # first arrivals in publish order
    assert len(store.arrivals) >= 3000  # duplicates allowed on the wire (at-least-once)
    counts = field.counters()
    assert counts.published == 3000 and counts.buffered == 0 and counts.dropped == 0
    assert counts.reconnects >= 1 and centre.counters().reconnects >= 1


CENTRE = """
import sqlite3, sys, time
from pathlib import Path
from gridmesh.adapters.mqtt import MqttBus
url, client_id, db_path, ready_path = sys.argv[1:5]
db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS readings (n INTEGER PRIMARY KEY)")
db.execute("CREATE TABLE IF NOT EXISTS deliveries (n INTEGER)")

def store(batch):
    db.execute("BEGIN")
    db.executemany("INSERT OR IGNORE INTO readings (n) VALUES (?)", [(int(m.payload),) for m in batch])
    db.executemany("INSERT INTO deliveries (n) VALUES (?)", [(int(m.payload),) for m in batch])
    db.execute("COMMIT")
    time.sleep(0.02)  # a slow historian: messages queue up unhandled, so the kill lands mid-stream

bus = MqttBus(url, client_id=client_id, max_batch=50)
bus.subscribe("gridmesh/v1/+/+/telemetry", store)
if not bus.ready(10):
    sys.exit("no broker")
Path(ready_path).write_text("ready")
time.sleep(600)
"""


def _start_centre(broker: PrivateBroker, client_id: str, db: Path, tmp: Path) -> subprocess.Popen[bytes]:
    ready = tmp / f"ready-{uuid.uuid4().hex[:6]}"
    child = subprocess.Popen([sys.executable, "-c", CENTRE, broker.url, client_id, str(db), str(ready)])
    wait_for(ready.exists, 30, "the centre process to subscribe")
    return child


def _stored(db: Path) -> tuple[list[int], int]:
    if not db.exists():
        return [], 0
    with sqlite3.connect(db) as conn:
        try:
            numbers = [n for (n,) in conn.execute("SELECT n FROM readings ORDER BY n")]
            deliveries = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return [], 0
    return numbers, int(deliveries)


def test_centre_killed_mid_stream_stores_everything_exactly_once(private_broker: PrivateBroker, tmp_path: Path) -> None:
    db = tmp_path / "historian.db"
    client_id = f"centre-{uuid.uuid4().hex[:8]}"
    field = MqttBus(private_broker.url, client_id="meter-2", buffer_path=tmp_path / "outbox.db")
    centre = _start_centre(private_broker, client_id, db, tmp_path)
    try:
        assert field.ready(10)
        for n in range(2000):
            field.publish("gridmesh/v1/grid/meter-2/telemetry", str(n).encode())
        wait_for(lambda: len(_stored(db)[0]) >= 300, 60, "the centre to store the first readings")
        centre.send_signal(signal.SIGKILL)
        centre.wait(10)
        killed_at = len(_stored(db)[0])
        assert killed_at < 2000, "the centre finished before the kill; the test proves nothing"
        for n in range(2000, 3000):  # the broker queues these for the dead centre's session
            field.publish("gridmesh/v1/grid/meter-2/telemetry", str(n).encode())
        assert field.flush(60)
        centre = _start_centre(private_broker, client_id, db, tmp_path)
        wait_for(lambda: len(_stored(db)[0]) == 3000, 90, "all 3000 readings stored after the restart")
    finally:
        centre.kill()
        centre.wait(10)
        field.close()
    numbers, deliveries = _stored(db)
    assert numbers == list(range(3000))  # the primary key makes "exactly once" checkable: no gaps, no extras
    assert deliveries >= 3000
