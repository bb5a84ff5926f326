"""Per-device sequence numbers that survive a restart of the field simulator.

The centre stores telemetry idempotently by ``(device, seq)``: a restarted simulator that counted again
from 1 would have its new messages taken for redeliveries of old ones and dropped. So the counters are
written to a small JSON file *before* the messages that use them are published (a crash in between
leaves a gap, never a replay). Without a state directory the counters start from the wall clock in
microseconds, which also never goes back across restarts (a device publishes far less than once per
microsecond), at the price of large numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

STATE_FILE = "field-seq.json"
IntArray = npt.NDArray[np.int64]


class SeqStore:
    """Counters for ``devices`` (in that order); :meth:`take` hands out the next numbers in bulk."""

    def __init__(self, devices: Sequence[str], state_dir: Path | None = None) -> None:
        self.devices = tuple(devices)
        self.path = None if state_dir is None else state_dir / STATE_FILE
        self.last: IntArray = np.zeros(len(self.devices), dtype=np.int64)
        if self.path is None:
            self.last[:] = time.time_ns() // 1_000
        elif self.path.exists():
            try:
                saved = msgspec.json.decode(self.path.read_bytes(), type=dict[str, int])
            except msgspec.DecodeError as exc:
                raise ValueError(
                    f"{self.path} is not a sequence-number file ({exc}); delete it only if no centre has "
                    "stored this simulator's telemetry, else old sequence numbers would be reused"
                ) from exc
            self.last[:] = [saved.get(d, 0) for d in self.devices]
        self._dirty = False

    def take(self, rows: IntArray) -> IntArray:
        """The next sequence number of each device at ``rows`` (positions in ``devices``, no repeats)."""
        if rows.size:
            self.last[rows] += 1
            self._dirty = True
        out: IntArray = self.last[rows].copy()
        return out

    def save(self) -> None:
        """Write the counters atomically (temporary file and rename) if any changed since the last save."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(dict(zip(self.devices, self.last.tolist(), strict=True))))
        os.replace(tmp, self.path)
        self._dirty = False
