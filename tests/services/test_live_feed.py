"""The live feed coalesces readings per series and bounds what one push carries."""

from __future__ import annotations

import numpy as np

from gridmesh.api.ports import ReadingsView
from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.live_feed import LiveFeed


def _rows(devices: list[str], values: list[float], ts: list[int]) -> ReadingRows:
    n = len(devices)
    return ReadingRows(
        device=devices,
        seq=np.arange(n, dtype=np.int64),
        ts_ns=np.array(ts, dtype=np.int64),
        quantity=["TotW"] * n,
        phase=[""] * n,
        value=np.array(values, dtype=np.float64),
        quality=["good"] * n,
        received_ns=np.zeros(n, dtype=np.int64),
    )


def test_latest_value_per_series_is_pushed_once() -> None:
    pushed: list[ReadingsView] = []
    feed = LiveFeed(pushed.append)
    feed.add(_rows(["a", "b", "a"], [1.0, 2.0, 3.0], [1_000_000_000, 2_000_000_000, 3_000_000_000]))
    assert feed.flush() == 2
    assert feed.flush() == 0  # nothing new, nothing pushed
    (view,) = pushed
    got = dict(zip(view.device, zip(view.value, view.t, strict=True), strict=True))
    assert got == {"a": (3.0, 3.0), "b": (2.0, 2.0)}


def test_a_burst_is_spread_over_bounded_pushes() -> None:
    pushed: list[ReadingsView] = []
    feed = LiveFeed(pushed.append, max_series=3)
    feed.add(_rows([f"d{i}" for i in range(7)], [float(i) for i in range(7)], list(range(7))))
    assert [feed.flush(), feed.flush(), feed.flush(), feed.flush()] == [3, 3, 1, 0]
    assert sorted(d for view in pushed for d in view.device) == sorted(f"d{i}" for i in range(7))


def test_the_thread_pushes_without_being_asked() -> None:
    pushed: list[ReadingsView] = []
    feed = LiveFeed(pushed.append, interval_s=0.005)
    feed.start()
    try:
        feed.add(_rows(["a"], [1.0], [1]))
        for _ in range(400):
            if pushed:
                break
            feed._stop.wait(0.005)
    finally:
        feed.stop()
    assert pushed and pushed[0].device == ["a"]
