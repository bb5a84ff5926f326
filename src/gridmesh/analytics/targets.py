"""The series worth forecasting in a scenario: load per customer class and per zone, PV and wind.

Each is an aggregate in kW on the profile grid, built with one gather per group of elements (elements
that share a profile are summed first: a year of thousands of loads is a few dozen columns).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import numpy as np
import pandas as pd

from gridmesh.model.kinds import GeneratorKind, LoadClass
from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario


class TargetKind(StrEnum):
    """Load (consumption, normalised by its peak) or generation (normalised by installed capacity)."""

    LOAD = "load"
    GENERATION = "generation"


@dataclass(frozen=True)
class Target:
    """One series to forecast.

    ``norm_kw`` normalises errors (nMAE, nRMSE): the installed capacity for generation, the series'
    peak over the whole profile period for load (a fixed scale shared by every method, not a model input).
    """

    name: str
    kind: TargetKind
    series: pd.Series  # kW on the profile grid
    norm_kw: float

    @property
    def seasons(self) -> tuple[timedelta, ...]:
        """Seasonal-naive periods worth trying: a day, and for load also a week (weekdays differ)."""
        day = timedelta(days=1)
        return (day, timedelta(days=7)) if self.kind is TargetKind.LOAD else (day,)


def forecast_targets(scenario: Scenario, *, zones: int = 3, min_zone_loads: int = 10) -> list[Target]:
    """Load per class, load of the ``zones`` largest zones, PV and wind; empty series are left out.

    Zones (a bus's ``zone``: the SimBench subnet) stand for feeders and areas. They are ranked by annual
    energy among those with at least ``min_zone_loads`` loads (an area, not a single large customer);
    a zone whose series repeats one already chosen is skipped (SimBench replicates LV grids), and zone
    targets are only made when there are several zones.
    """
    network, profiles = scenario.network, scenario.profiles
    loads = [load for load in network.loads.values() if load.in_service]
    targets: list[Target] = []
    for load_class in LoadClass:
        members = [(load.p_profile, load.p_kw) for load in loads if load.load_class is load_class]
        targets += _load_target(f"load/{load_class}", members, profiles)
    by_zone: dict[str, list[tuple[str | None, float]]] = defaultdict(list)
    for load in loads:
        by_zone[network.buses[load.bus].zone or "(no zone)"].append((load.p_profile, load.p_kw))
    if len(by_zone) > 1:
        candidates = [
            t
            for zone, m in by_zone.items()
            if len(m) >= min_zone_loads
            for t in _load_target(f"load/zone/{zone}", m, profiles)
        ]
        chosen: list[Target] = []
        for candidate in sorted(candidates, key=lambda t: -float(t.series.sum())):
            if len(chosen) < zones and not any(np.array_equal(candidate.series, c.series) for c in chosen):
                chosen.append(candidate)
        targets += chosen
    for kind in (GeneratorKind.PV, GeneratorKind.WIND):
        gens = [(g.profile, g.p_kw) for g in network.generators.values() if g.in_service and g.kind is kind]
        capacity = sum(p for _, p in gens)
        if capacity > 0:
            targets.append(Target(str(kind), TargetKind.GENERATION, _aggregate(gens, profiles), capacity))
    return targets


def location(network: Network) -> tuple[float, float] | None:
    """Mean (latitude, longitude) of the buses, when their coordinates look like WGS84 (y = lat, x = lon)."""
    points = np.array([(b.y, b.x) for b in network.buses.values() if b.x is not None and b.y is not None])
    if points.size == 0 or np.any(np.abs(points[:, 0]) > 90) or np.any(np.abs(points[:, 1]) > 180):
        return None
    lat, lon = points.mean(axis=0)
    return float(lat), float(lon)


def _load_target(name: str, members: list[tuple[str | None, float]], profiles: Profiles) -> list[Target]:
    if not members:
        return []
    series = _aggregate(members, profiles)
    peak = float(series.max())
    return [Target(name, TargetKind.LOAD, series, peak)] if peak > 0 else []


def _aggregate(members: Iterable[tuple[str | None, float]], profiles: Profiles) -> pd.Series:
    """Sum of ``p_kw × profile``: ratings summed per profile, then one gather and one matrix product."""
    scale: dict[str | None, float] = defaultdict(float)
    for profile, p_kw in members:
        scale[profile] += p_kw
    names = list(scale)
    values = profiles.selector(names).scaled(np.array([scale[n] for n in names]), 0, profiles.steps).sum(axis=1)
    index = pd.date_range(profiles.start, periods=profiles.steps, freq=profiles.resolution)
    return pd.Series(values, index=index, name="p_kw")
