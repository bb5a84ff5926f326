"""SimBench reference grids and their yearly 15-minute profiles, read from the ``simbench`` package
(which ships them offline)."""

from __future__ import annotations

import difflib
from datetime import datetime, timedelta
from functools import cache

import pandapower as pp
import pandas as pd
import simbench as sb

from gridmesh.errors import Issue, ScenarioError
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario, TimeRange

PROFILE_TABLES = ("load", "renewables", "powerplants", "storage")


@cache
def simbench_codes() -> tuple[str, ...]:
    return tuple(sb.collect_all_simbench_codes())


def check_code(code: str, *, where: str = "base", field: str = "simbench") -> list[Issue]:
    """An issue naming the closest valid codes when ``code`` is not a SimBench grid code."""
    if code in simbench_codes():
        return []
    close = difflib.get_close_matches(code, simbench_codes(), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "list codes with `gridmesh scenario simbench-codes`"
    return [Issue(where, field, f"unknown SimBench code {code!r}", hint)]


def simbench_net(code: str) -> pp.pandapowerNet:
    """The pandapower network of a SimBench code, with a clear error for an unknown code."""
    issues = check_code(code)
    if issues:
        raise ScenarioError(issues)
    return sb.get_simbench_net(code)


def profiles_of(net: pp.pandapowerNet) -> Profiles:
    """SimBench's normalised profiles (``H0-A_pload``, ``PV3``, …) on their own time grid."""
    frames = []
    stored = net.get("profiles") if isinstance(net.get("profiles"), dict) else {}
    for table in PROFILE_TABLES:
        frame = stored.get(table)
        if frame is None or frame.empty or len(frame.columns) <= 1:
            continue
        # SimBench labels steps in local time with DST jumps, but the table is a regular 15-minute grid of
        # 366 days (35,136 steps); re-label it as such so that every day has 96 steps.
        start = pd.to_datetime(frame["time"].iloc[0], format="%d.%m.%Y %H:%M")
        index = pd.date_range(start, periods=len(frame), freq="15min")
        frames.append(frame.drop(columns="time").set_index(index))
    if not frames:
        return Profiles.empty()
    return Profiles.from_frame(pd.concat(frames, axis=1))


def from_simbench(code: str, *, days: float = 7.0, start: datetime | None = None) -> Scenario:
    """A scenario of the SimBench grid ``code`` with its yearly profiles."""
    net = simbench_net(code)
    profiles = profiles_of(net)
    begin = start or profiles.start
    return Scenario(
        name=code,
        network=from_pandapower(net, name=code),
        profiles=profiles,
        time=TimeRange(begin, days),
        description=f"SimBench grid {code} with its 15-minute yearly profiles",
    )


def year_days(profiles: Profiles) -> float:
    """Length of the profile table in days (366 for SimBench's 2016)."""
    return profiles.steps * profiles.resolution / timedelta(days=1)
