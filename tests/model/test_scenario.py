"""Scenario time range and step count."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles
from gridmesh.model.scenario import Scenario, TimeRange


def test_time_range_end() -> None:
    assert TimeRange(datetime(2016, 3, 1), 1.5).end == datetime(2016, 3, 2, 12)


def test_steps_follow_the_profile_resolution() -> None:
    hourly = Profiles(datetime(2016, 1, 1), timedelta(hours=1), ("a",), np.ones((48, 1), dtype=np.float32))
    scenario = Scenario("s", Network(), hourly, TimeRange(datetime(2016, 1, 1), 2.0))
    assert scenario.steps == 48
    assert Scenario("s", Network()).steps == 7 * 96  # default: a week of 15-minute steps


def test_with_time_changes_only_what_is_given() -> None:
    scenario = Scenario("s", Network(), time=TimeRange(datetime(2016, 1, 1), 7.0))
    later = scenario.with_time(start=datetime(2016, 6, 1))
    assert later.time == TimeRange(datetime(2016, 6, 1), 7.0)
    assert scenario.with_time(days=1).time == TimeRange(datetime(2016, 1, 1), 1.0)
    assert scenario.time.days == 7.0
