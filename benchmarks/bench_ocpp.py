"""OCPP at fleet scale: N simulated charging stations (one asyncio loop, a child process) connected at once
to one central system (its own thread in this process), as a DSO's charger backend would see them.

Every station boots, authorizes a car and charges it, sending meter values (energy register + power, one
TransactionEvent / MeterValues per ``--period`` s) for ``--seconds``. Then the centre pushes a new charging
plan (a 3.7 kW station limit) to all of them at once, and the stations stop and drain their outboxes.

Checks (exit status 1 when one fails): every station connected; every sampled value the stations
generated was acknowledged and stored exactly once (sink count = sent count); every station accepted the
plan and limits its power to it. Figures: time to connect all, push wall time (target < 5 s for 500),
message rate, CPU seconds of the centre and of the fleet.

    .venv/bin/python benchmarks/bench_ocpp.py [--chargers 500] [--seconds 20] [--period 1] [--version mixed]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ocpp.messages
import psutil

from gridmesh.adapters.ocpp import (
    CentralConfig,
    CentralSystem,
    ChargerBinding,
    ChargerRegistry,
    Fleet,
    MemorySink,
    PasswordStore,
    PushOutcome,
    SessionPlan,
    StationConfig,
    make_station,
    provision_passwords,
)
from gridmesh.adapters.ocpp.auth import HASH_FILE
from gridmesh.adapters.ocpp.profiles import limit_kw

LIMIT_KW = 3.7
PUSH_TARGET_S = 5.0


def fleet_process(
    url: str, passwords: dict[str, str], versions: dict[str, str], period: float, sync: bool, inbox: Any, outbox: Any
) -> None:
    """Child: run every station on one loop until told to stop, then report what they generated."""
    ocpp.messages.ASYNC_VALIDATION = not sync

    async def main() -> None:
        stations = [
            make_station(
                versions[c],
                StationConfig(c, url, password=p, meter_period_s=period, response_timeout_s=30.0, heartbeat_s=300),
                [SessionPlan(0.0, 1e12, 1e9, f"tok-{c}")],
            )
            for c, p in passwords.items()
        ]
        fleet = Fleet(stations)
        outbox.put(time.time())  # the fleet starts now (process start-up and imports excluded)
        fleet.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, inbox.get)  # "stop"
        limited = sum(limit_kw(s.profiles, datetime.now(UTC)) == LIMIT_KW for s in stations)
        await fleet.stop(drain_timeout_s=60.0)
        stats = fleet.stats()
        outbox.put(
            {
                "generated": stats.values_generated,
                "acknowledged": stats.values_acknowledged,
                "pending": stats.pending_messages,
                "limited": limited,
                "refused": sum(len(s.refused) for s in stations),
                "cpu_s": sum(psutil.Process().cpu_times()[:2]),
            }
        )

    asyncio.run(main())


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="steady state before the push")
    parser.add_argument("--period", type=float, default=1.0, help="meter value period per station, s")
    parser.add_argument("--version", choices=["2.0.1", "1.6", "mixed"], default="mixed")
    parser.add_argument(
        "--sync-validation", action="store_true", help="validate schemas on the loop, not in the library's thread pool"
    )
    args = parser.parse_args()
    ocpp.messages.ASYNC_VALIDATION = not args.sync_validation

    ids = [f"bench-{k:04d}" for k in range(args.chargers)]
    versions = {c: (args.version if args.version != "mixed" else ("2.0.1", "1.6")[k % 2]) for k, c in enumerate(ids)}
    folder = Path(tempfile.mkdtemp(prefix="bench-ocpp-"))
    passwords = provision_passwords(ids, folder)
    sink = MemorySink()
    registry = ChargerRegistry(ChargerBinding(c, "bus", 11.0, 1) for c in ids)
    config = CentralConfig(passwords=PasswordStore.load(folder / HASH_FILE), response_timeout_s=30.0)
    centre = CentralSystem(registry, sink, config).start()
    me = psutil.Process()

    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    child = ctx.Process(
        target=fleet_process,
        args=(centre.url, passwords, versions, args.period, args.sync_validation, inbox, outbox),
        daemon=True,
    )
    child.start()
    fleet_started = outbox.get(timeout=120)
    all_connected = _wait(lambda: len(centre.connected()) == args.chargers, 120.0)
    connect_s = time.time() - fleet_started
    charging = _wait(lambda: len(centre.state.transactions()) == args.chargers, 60.0)

    cpu0, rows0, w0 = sum(me.cpu_times()[:2]), sink.row_count(), time.perf_counter()
    time.sleep(args.seconds)  # the steady state being measured
    cpu1, rows1, w1 = sum(me.cpu_times()[:2]), sink.row_count(), time.perf_counter()

    cpu_push0 = sum(me.cpu_times()[:2])
    report = centre.push_profiles(dict.fromkeys(ids, LIMIT_KW))
    cpu_push = sum(me.cpu_times()[:2]) - cpu_push0
    time.sleep(2 * args.period)  # let every station tick once under the new limit
    inbox.put("stop")
    fleet = outbox.get(timeout=180)
    child.join(timeout=30)
    _wait(lambda: sink.row_count() >= fleet["acknowledged"], 10.0)
    stored = sink.row_count()
    centre_cpu = sum(me.cpu_times()[:2])
    centre.stop()

    steady_rate = (rows1 - rows0) / 2 / (w1 - w0)  # two sampled values per message
    accepted = report.count(PushOutcome.ACCEPTED)
    checks = {
        "all connected": all_connected,
        "all charging": charging,
        "stored = sent": stored == fleet["generated"] == fleet["acknowledged"] and fleet["pending"] == 0,
        "plan accepted by all": accepted == args.chargers,
        "plan obeyed by all": fleet["limited"] == args.chargers,
        f"push < {PUSH_TARGET_S:g} s": report.wall_s < PUSH_TARGET_S,
    }
    width = 34
    print(
        f"\nOCPP bench: {args.chargers} stations ({args.version}), meter period {args.period:g} s, "
        f"{args.seconds:g} s steady state, {psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    rows = [
        ("connect all (s)", f"{connect_s:.2f}"),
        ("meter messages / s (steady)", f"{steady_rate:.0f}"),
        ("sampled values sent / stored", f"{fleet['generated']} / {stored}"),
        ("repeats dropped by the centre", f"{centre.state.repeats_dropped}"),
        ("push plan to all: wall (s)", f"{report.wall_s:.3f}"),
        (
            "push accepted / timeout / other",
            f"{accepted} / {report.count(PushOutcome.TIMEOUT)} / "
            f"{args.chargers - accepted - report.count(PushOutcome.TIMEOUT)}",
        ),
        ("centre CPU during the push (s)", f"{cpu_push:.2f}"),
        ("centre CPU, steady (% of a core)", f"{100 * (cpu1 - cpu0) / (w1 - w0):.0f}"),
        ("centre CPU total (s)", f"{centre_cpu:.1f}"),
        ("fleet CPU total (s)", f"{fleet['cpu_s']:.1f}"),
    ]
    for name, value in rows:
        print(f"  {name:<{width}} {value:>16}")
    for name, ok in checks.items():
        print(f"  {'check: ' + name:<{width}} {'ok' if ok else 'FAILED':>16}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
