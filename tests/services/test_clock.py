"""The accelerated clock maps wall time to simulated time from a shared origin."""

from __future__ import annotations

import time

import pytest

from gridmesh.services.clock import NS_PER_S, SimClock, midnight_utc_ns


def test_speed_one_is_wall_time() -> None:
    before = time.time_ns()
    now = SimClock().now_ns()
    assert before <= now <= time.time_ns()


def test_accelerated_time_runs_speed_times_faster_from_the_origin() -> None:
    origin = time.time_ns() - 10 * NS_PER_S  # ten wall seconds ago
    clock = SimClock(speed=60, origin_ns=origin)
    elapsed = (clock.now_ns() - origin) / NS_PER_S
    assert 600 <= elapsed <= 660  # ten wall seconds → ten simulated minutes (plus the test's own time)
    assert clock.wall_seconds(60) == 1.0


def test_two_processes_agree_without_talking() -> None:
    a, b = SimClock(speed=60), SimClock(speed=60)
    assert a.origin_ns == b.origin_ns == midnight_utc_ns()
    assert abs(a.now_ns() - b.now_ns()) < 60 * NS_PER_S


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=0)
