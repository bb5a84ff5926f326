"""The live readings feed: accepted readings pushed to API listeners within tens of milliseconds.

The state estimate is pushed once per cycle (seconds); operators watching a device want its readings as
they arrive. Ingest hands every accepted batch to :meth:`LiveFeed.add` (cheap: a dict update per
reading); a flusher thread pushes what changed every ``interval_s`` — the latest value per series, at
most ``max_series`` per push (the rest wait for the next), so a burst of 200,000 readings per second
becomes a bounded stream a browser can follow. Everything is in the historian anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gridmesh.api.ports import ReadingsView
from gridmesh.services.historian.base import ReadingRows

NS_PER_S = 1e9


class LiveFeed:
    """Coalesces accepted readings and pushes them as :class:`ReadingsView` every ``interval_s``."""

    def __init__(
        self, push: Callable[[ReadingsView], None], *, interval_s: float = 0.02, max_series: int = 2_000
    ) -> None:
        self._push = push
        self.interval_s, self.max_series = interval_s, max_series
        self._pending: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
        self.pushed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def add(self, rows: ReadingRows) -> None:
        keys = zip(rows.device, rows.quantity, rows.phase, strict=True)
        values = zip(rows.value.tolist(), rows.ts_ns.tolist(), strict=True)
        with self._lock:
            self._pending.update(zip(keys, values, strict=True))

    def flush(self) -> int:
        """Push what is pending (up to ``max_series``); returns how many series went out."""
        with self._lock:
            if not self._pending:
                return 0
            if len(self._pending) <= self.max_series:
                batch, self._pending = self._pending, {}
            else:
                keys = list(self._pending)[: self.max_series]
                batch = {k: self._pending.pop(k) for k in keys}
        devices, quantities, phases = (list(column) for column in zip(*batch, strict=True))
        values, stamps = zip(*batch.values(), strict=True)
        view = ReadingsView.model_construct(
            device=devices,
            quantity=quantities,
            phase=phases,
            value=list(values),
            t=[ts / NS_PER_S for ts in stamps],
        )
        self._push(view)
        self.pushed += len(batch)
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()
