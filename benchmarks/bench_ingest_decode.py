"""Ingest throughput in-process: decode + verify + validate + de-duplicate + columnar rows, per signature kind.

Runs :meth:`gridmesh.services.ingest.Ingest.handle` on bus-sized batches of pre-signed messages with a
historian that discards what it is given, so the figures are the ingest's own cost on one thread (the
bus hands a subscription's batches to one worker). Two payload shapes: batched (every quantity x phase
of the quantity table once: 70 readings, the most one message can carry since storage keys a reading by
(device, seq, quantity, phase)) and single-reading; two signatures: Ed25519 and HMAC-SHA256.

    .venv/bin/python benchmarks/bench_ingest_decode.py [--messages 20000] [--devices 2000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

import pandas as pd
from rich.console import Console
from rich.table import Table

from gridmesh.security.keys import DeviceSecret, provision_keyrings
from gridmesh.security.signing import sign
from gridmesh.services.bus import Message
from gridmesh.services.historian.base import DeadLetter, Historian, ReadingRows, StoredEvent
from gridmesh.services.ingest import Ingest
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind, DeviceSpec
from gridmesh.telemetry.envelope import Envelope, Reading, encode, topic
from gridmesh.telemetry.quantities import QUANTITIES, Phase

NOW = 1_764_216_000_000_000_000


class DiscardingHistorian:
    """Takes every write and keeps nothing: the benchmark measures the ingest, not storage."""

    def __init__(self) -> None:
        self.readings = 0
        self.letters = 0

    def write_readings(self, rows: ReadingRows) -> int:
        self.readings += len(rows)
        return len(rows)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.letters += len(letters)

    def write_events(self, events: Sequence[StoredEvent]) -> None:
        return None

    def latest(self, *, device: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        return pd.DataFrame(columns=["device", "quantity", "phase", "ts", "value", "quality", "seq"])

    def history(self, *, start: datetime, end: datetime, device: str | None = None) -> pd.DataFrame:
        return pd.DataFrame(columns=["device", "quantity", "phase", "ts", "value", "quality", "seq"])

    def events(self, *, since: datetime | None = None, kind: str | None = None, limit: int = 1000) -> pd.DataFrame:
        return pd.DataFrame()


def batched_readings() -> list[Reading]:
    return [Reading(q, max(spec.low, min(spec.high, 1.0)), ph) for q, spec in QUANTITIES.items() for ph in Phase]


def messages(
    devices: list[str], count: int, readings: list[Reading], keys: Mapping[str, DeviceSecret]
) -> list[Message]:
    out = []
    for i in range(count):
        device = devices[i % len(devices)]
        envelope = Envelope(device, i // len(devices), NOW - 1_000_000 * (count - i), readings)
        out.append(Message(topic("grid", device, "telemetry"), encode(sign(envelope, keys[device]))))
    return out


def run(case: str, alg_hmac: bool, readings: list[Reading], args: argparse.Namespace) -> tuple[str, float, float, int]:
    devices = [f"meter-{i}" for i in range(args.devices)]
    field, centre = provision_keyrings(devices, hmac_devices=devices if alg_hmac else ())
    catalogue = Catalogue({d: DeviceSpec(d, DeviceKind.METER, d, "bus", "grid", ("TotW",), False) for d in devices})
    stream = messages(devices, args.messages, readings, field.secrets)
    historian = DiscardingHistorian()
    # the discarding historian has what the ingest uses, not the query API
    ingest = Ingest(catalogue, centre, cast(Historian, historian), clock=lambda: NOW, max_age=timedelta(days=1))
    started = time.perf_counter()
    for at in range(0, len(stream), args.batch):
        ingest.handle(stream[at : at + args.batch])
    elapsed = time.perf_counter() - started
    accepted = ingest.counters.snapshot()["accepted_messages"]
    assert accepted == len(stream) and historian.letters == 0, ingest.counters.snapshot()
    return case, len(stream) / elapsed, historian.readings / elapsed, len(readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=1_000, help="messages per handle() call (the bus's MAX_BATCH)")
    args = parser.parse_args()
    batched = batched_readings()
    single = [Reading("TotW", 1520.0)]
    table = Table(title=f"ingest, {args.messages} messages, one thread", title_justify="left")
    for column in ("case", "readings/msg", "messages/s", "readings/s"):
        table.add_column(column, justify="right")
    for case, alg_hmac, readings in (
        ("batched, Ed25519", False, batched),
        ("batched, HMAC-SHA256", True, batched),
        ("single, Ed25519", False, single),
        ("single, HMAC-SHA256", True, single),
    ):
        name, per_message, per_reading, n = run(case, alg_hmac, readings, args)
        table.add_row(name, str(n), f"{per_message:,.0f}", f"{per_reading:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
