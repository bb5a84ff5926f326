"""The field simulator on the demo grid, live at ``--speed 60``, over a bus that only counts.

Measures what the platform pays to play the field: wall time per tick (commands, one power flow of the
whole network, readings, signing) and signed messages and readings per second. At speed 60 the demo's
6,311 devices should publish about 800 messages/s (60-s, 300-s and 900-s reporting periods).

    .venv/bin/python benchmarks/bench_field.py [--seconds 20] [--speed 60] [--scenario demo]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gridmesh.cli.scenario import load
from gridmesh.security.keys import provision_keyrings
from gridmesh.services.bus import BatchHandler
from gridmesh.services.field import FieldSimulator
from gridmesh.telemetry.catalogue import catalogue_of


class CountingBus:
    """A :class:`~gridmesh.services.bus.Bus` that counts what is published and delivers nothing."""

    def __init__(self) -> None:
        self.published = 0
        self.payload_bytes = 0
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        with self._lock:
            self.published += 1
            self.payload_bytes += len(payload)

    def subscribe(self, pattern: str, handler: BatchHandler) -> None:
        return None

    def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds to run")
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    console = Console()

    began = time.perf_counter()
    scenario = load(args.scenario)
    loaded = time.perf_counter()
    field, _ = provision_keyrings(catalogue_of(scenario.network).devices)
    keyed = time.perf_counter()
    bus = CountingBus()
    with tempfile.TemporaryDirectory() as data:
        sim = FieldSimulator(scenario, bus, field, speed=args.speed, data_dir=Path(data))
        built = time.perf_counter()
        sim.start()
        announced = bus.published
        time.sleep(args.seconds)
        sim.stop()
    stats = sim.stats
    wall = args.seconds
    table = Table(title=f"field simulator: {scenario.name}, {len(sim.catalogue):,} devices, speed {args.speed:g}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("scenario load", f"{loaded - began:.1f} s"),
        ("key provisioning", f"{keyed - loaded:.1f} s"),
        ("simulator set-up", f"{built - keyed:.2f} s"),
        ("simulated time", f"{sim.elapsed_s:,.0f} s"),
        ("ticks", f"{stats.ticks:,}"),
        ("tick wall time, mean", f"{1e3 * stats.tick_seconds / max(stats.ticks, 1):.1f} ms"),
        ("tick wall time, slowest", f"{1e3 * stats.slowest_tick_s:.1f} ms"),
        ("busy fraction", f"{stats.tick_seconds / wall:.0%}"),
        ("signed messages/s", f"{stats.messages / wall:,.0f}"),
        ("readings/s", f"{stats.readings / wall:,.0f}"),
        ("signing + tick cost per message", f"{1e6 * stats.tick_seconds / max(stats.messages, 1):.0f} µs"),
        ("retained state messages at start", f"{announced:,}"),
        ("mean payload", f"{bus.payload_bytes / max(bus.published, 1):.0f} B"),
        ("failed ticks", f"{stats.failed_ticks}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


if __name__ == "__main__":
    main()
