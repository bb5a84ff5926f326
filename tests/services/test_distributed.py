"""Field and centre as separate processes over a real Mosquitto: nothing accepted is lost or doubled when
the centre is SIGKILLed and the broker is stopped and restarted mid-stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from gridmesh.security.tokens import Role, store_in
from support.brokers import PrivateBroker, wait_for

pytestmark = pytest.mark.slow
SPEED = "60"  # every device reports each wall second (60 simulated seconds)


def _gridmesh(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gridmesh.cli.main", *args], stdout=out, stderr=out, env=env)


def _counters(port: int, token: str) -> dict[str, int] | None:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/counters", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return None
    return reply.json() if reply.status_code == 200 else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigkill_of_the_centre_and_a_broker_restart_lose_and_double_nothing(
    small_scenario_file: Path, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    data, log = tmp_path / "data", tmp_path / "platform.log"
    data.mkdir()
    token = store_in(data).create(Role.ADMIN, "test")
    port = _free_port()
    common = [str(small_scenario_file), "--mqtt", private_broker.url, "--data", str(data), "--speed", SPEED]
    centre_args = ["centre", *common, "--port", str(port), "--cycle", "1"]

    def start_centre() -> subprocess.Popen[bytes]:
        process = _gridmesh(*centre_args, log=log)
        wait_for(lambda: _counters(port, token) is not None, 90, f"the centre's API (log: {log})")
        return process

    centre = start_centre()
    field = _gridmesh("field", *common, log=log)
    try:
        wait_for(lambda: (_counters(port, token) or {}).get("accepted_messages", 0) > 20, 90, "first telemetry")
        centre.send_signal(signal.SIGKILL)  # no chance to flush, ack or close anything
        centre.wait(timeout=10)
        time.sleep(2)  # the field keeps publishing; the broker queues for the centre's persistent session
        centre = start_centre()
        wait_for(lambda: (_counters(port, token) or {}).get("accepted_messages", 0) > 5, 60, "telemetry after restart")
        private_broker.stop()  # the field buffers on disk meanwhile
        time.sleep(2)
        private_broker.start()
        time.sleep(3)
    finally:
        field.send_signal(signal.SIGTERM)  # a clean stop flushes the field's buffer
        assert field.wait(timeout=60) == 0, log.read_text()[-3000:]
    settled: list[int] = []

    def stable() -> bool:
        settled.append((_counters(port, token) or {}).get("accepted_messages", -1))
        return len(settled) > 3 and settled[-1] == settled[-4]

    wait_for(stable, 60, "the centre to drain the broker")
    centre.send_signal(signal.SIGTERM)
    assert centre.wait(timeout=60) == 0, log.read_text()[-3000:]

    published = json.loads((data / "field-seq.json").read_text())
    with duckdb.connect(str(data / "historian.duckdb"), read_only=True) as db:
        per_device = "select device, count(distinct seq), min(seq), max(seq) from readings group by device"
        rows = db.execute(per_device).fetchall()
        total, distinct = db.execute(
            "select count(*), count(distinct (device, seq, quantity, phase)) from readings"
        ).fetchone() or (0, 0)
    assert total == distinct  # exactly once
    stored = {device: (n, first, last) for device, n, first, last in rows}
    for device, last in published.items():
        if last == 0:  # sent nothing (the gateway only answers fault orders)
            assert device not in stored
            continue
        n, first, top = stored[device]
        # Telemetry is every message these devices sent (no switching, no commands): seq 1 … last, no gaps.
        assert (n, first, top) == (last, 1, last), f"{device}: stored {n} messages {first}…{top}, sent 1…{last}"
