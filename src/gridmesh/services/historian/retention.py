"""The retention policy the centre applies now and then: keep readings for ``keep``, prune every ``every``.

Pruning is a bulk delete, so it runs on a schedule rather than on every write; the schedule is driven by
the caller's clock (wall or simulated), which keeps it testable without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gridmesh.services.historian.base import Historian


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep readings whose device timestamp is within ``keep`` of now; prune at most once per ``every``."""

    keep: timedelta
    every: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.keep <= timedelta(0) or self.every <= timedelta(0):
            raise ValueError(f"retention needs positive durations, got keep={self.keep}, every={self.every}")


@dataclass(slots=True)
class RetentionSchedule:
    """Applies a :class:`RetentionPolicy` to a historian when it is due (the first call always is)."""

    policy: RetentionPolicy
    last_run: datetime | None = field(default=None)

    def due(self, now: datetime) -> bool:
        """Whether ``every`` has passed since the last pruning (or none has run yet)."""
        return self.last_run is None or now - self.last_run >= self.policy.every

    def run_if_due(self, historian: Historian, now: datetime) -> int | None:
        """Prune if due; returns how many readings went, or ``None`` when it was not yet time."""
        if not self.due(now):
            return None
        deleted = historian.apply_retention(keep=self.policy.keep, now=now)
        self.last_run = now
        return deleted
