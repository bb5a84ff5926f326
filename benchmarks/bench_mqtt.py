"""Throughput and latency of ``MqttBus`` through a real broker (Mosquitto), publisher and subscriber in
separate processes, as ``gridmesh field`` and ``gridmesh centre`` run.

Cases: unpaced 100-reading and 1-reading telemetry envelopes (messages/s, readings/s, payload MB/s,
end to end: first publish to last handler call), then a paced 10,000 msg/s stream of 1-reading envelopes
for publish → handler latency (p50/p99/max). Each case runs with the unbuffered publisher and with the
store-and-forward one (``--buffer``: SQLite commit per message). Payloads are real encoded ``Envelope``s
whose ``seq`` carries the publish time (``time.perf_counter_ns``, CLOCK_MONOTONIC: shared by processes);
handlers only count and read that field. Messages the broker dropped (Mosquitto's ``max_queued_messages``
per client, 1000 by default) show up as "lost".

    .venv/bin/python benchmarks/bench_mqtt.py [--url mqtt://127.0.0.1:1883] [--seconds 5] [--rate 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gridmesh.adapters.mqtt import MqttBus
from gridmesh.services.bus import Message
from gridmesh.telemetry.envelope import Envelope, Reading, encode
from gridmesh.telemetry.quantities import Phase

QUANTITIES = ("TotW", "TotVAr", "PhV", "A", "Hz")
PHASES = (Phase.A, Phase.B, Phase.C)


def envelope(device: str, n_readings: int) -> Envelope:
    """A realistic envelope: rotating quantities and phases, a base64-sized signature."""
    readings = [
        Reading(q=QUANTITIES[i % len(QUANTITIES)], v=230.0 + i * 0.137, ph=PHASES[i % len(PHASES)])
        for i in range(n_readings)
    ]
    return Envelope(device=device, seq=0, ts=time.time_ns(), readings=readings, sig="A" * 88)


def publisher(url: str, topic: str, n: int, n_readings: int, rate: float, buffer: str | None) -> None:
    """Child process: publish ``n`` envelopes, paced at ``rate`` msg/s (0: as fast as possible)."""
    bus = MqttBus(url, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}", buffer_path=Path(buffer) if buffer else None)
    bus.ready(10.0)
    template = envelope("meter-bench", n_readings)
    start = time.perf_counter()
    for i in range(n):
        if rate:
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
        payload = encode(msgspec.structs.replace(template, seq=time.perf_counter_ns()))
        bus.publish(topic, payload)
    bus.flush(120.0)
    bus.close()


@dataclass
class Result:
    sent: int
    received: int
    unique: int
    seconds: float
    payload_bytes: int
    latencies_ms: list[float]


def run_case(url: str, n: int, n_readings: int, rate: float, buffered: bool) -> Result:
    topic = f"bench/{uuid.uuid4().hex[:8]}/telemetry"
    seqs: list[int] = []
    latencies: list[int] = []
    size = [0]
    last = [0]
    done = threading.Event()

    def handler(batch: Sequence[Message]) -> None:
        now = time.perf_counter_ns()
        for m in batch:
            start = m.payload.index(b'"seq":') + 6
            seq = int(m.payload[start : m.payload.index(b",", start)])
            seqs.append(seq)
            latencies.append(now - seq)
            size[0] += len(m.payload)
        last[0] = now
        if len(seqs) >= n:
            done.set()

    bus = MqttBus(url, client_id=f"bench-sub-{uuid.uuid4().hex[:8]}", persistent_session=False)
    bus.subscribe(topic, handler)
    if not bus.ready(10.0):
        raise SystemExit(f"no broker at {url}: start Mosquitto or pass --url")
    with tempfile.TemporaryDirectory() as tmp:
        buffer = str(Path(tmp) / "outbox.db") if buffered else None
        child = mp.get_context("spawn").Process(target=publisher, args=(url, topic, n, n_readings, rate, buffer))
        child.start()
        child.join()
        done.wait(timeout=10.0)  # the child returns once the broker acknowledged all; let delivery finish
    bus.close()
    first = min(seqs) if seqs else 0
    return Result(
        sent=n,
        received=len(seqs),
        unique=len(set(seqs)),
        seconds=(last[0] - first) / 1e9,
        payload_bytes=size[0],
        latencies_ms=[x / 1e6 for x in latencies],
    )


def report(label: str, n_readings: int, r: Result) -> None:
    rate = r.unique / r.seconds if r.seconds > 0 else 0.0
    lat = sorted(r.latencies_ms)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    print(
        f"{label:<34} {rate:>9,.0f} msg/s {rate * n_readings:>11,.0f} readings/s "
        f"{r.payload_bytes / r.seconds / 1e6 if r.seconds else 0:>6.1f} MB/s  "
        f"lost {r.sent - r.unique:>6}  dup {r.received - r.unique:>4}  "
        f"latency p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {lat[-1] if lat else float('nan'):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--seconds", type=float, default=5.0, help="approximate length of each case")
    parser.add_argument("--rate", type=float, default=10_000.0, help="paced rate for the latency case (msg/s)")
    args = parser.parse_args()
    size_100 = len(encode(envelope("meter-bench", 100)))
    size_1 = len(encode(envelope("meter-bench", 1)))
    print(f"payload: 100 readings = {size_100} B, 1 reading = {size_1} B; broker {args.url}")
    n_paced = int(args.rate * args.seconds)
    for buffered in (False, True):
        mode = "buffered" if buffered else "direct"
        r = run_case(args.url, int(3_000 * args.seconds), 100, 0.0, buffered)
        report(f"{mode}, 100 readings, unpaced", 100, r)
        r = run_case(args.url, int(15_000 * args.seconds), 1, 0.0, buffered)
        report(f"{mode}, 1 reading, unpaced", 1, r)
        r = run_case(args.url, n_paced, 1, args.rate, buffered)
        report(f"{mode}, 1 reading, paced {args.rate:,.0f}/s", 1, r)


if __name__ == "__main__":
    main()
