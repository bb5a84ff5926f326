"""The platform clock: wall time, or accelerated simulated time that separate processes agree on.

``gridmesh run --speed 60`` runs the grid sixty times faster than the wall clock. The field simulator
stamps telemetry with this simulated time and the centre checks timestamps against the same clock, so
an accelerated run is not rejected as "from the future". Processes started separately (``gridmesh
field`` and ``gridmesh centre``) agree without talking to each other because the origin is a fixed
instant (by default midnight UTC of the day) rather than each process's start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

NS_PER_S = 1_000_000_000


def midnight_utc_ns(now_ns: int | None = None) -> int:
    now = now_ns if now_ns is not None else time.time_ns()
    return now - now % (86_400 * NS_PER_S)


class Clock(Protocol):
    """What the centre needs of a clock (tests substitute one that follows a stepped simulator)."""

    def now_ns(self) -> int: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class SimClock:
    """``now = origin + speed × (wall − origin)``; at speed 1 simulated time is wall time."""

    speed: float = 1.0
    origin_ns: int = field(default_factory=midnight_utc_ns)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")

    def now_ns(self) -> int:
        wall = time.time_ns()
        return self.origin_ns + int((wall - self.origin_ns) * self.speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns() / NS_PER_S, tz=UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take on the wall clock."""
        return sim_seconds / self.speed
