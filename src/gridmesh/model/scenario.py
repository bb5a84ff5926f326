"""A scenario: a network, its profiles and the time range to study."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles


@dataclass(frozen=True)
class TimeRange:
    """Study period on the profile grid."""

    start: datetime
    days: float

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Scenario:
    """What a study or the live platform runs on."""

    name: str
    network: Network
    profiles: Profiles = field(default_factory=Profiles.empty)
    time: TimeRange = field(default_factory=lambda: TimeRange(datetime(2016, 1, 1), 7.0))
    description: str = ""

    @property
    def steps(self) -> int:
        """Number of profile steps in the study period."""
        return round(timedelta(days=self.time.days) / self.profiles.resolution)

    def with_time(self, *, start: datetime | None = None, days: float | None = None) -> Scenario:
        return replace(
            self,
            time=TimeRange(start=start or self.time.start, days=self.time.days if days is None else days),
        )
