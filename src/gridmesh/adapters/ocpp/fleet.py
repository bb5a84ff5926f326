"""Many simulated stations on one asyncio loop: for the field simulator, tests and the benchmark.

:class:`Fleet` runs stations on the caller's loop; :class:`FleetThread` runs them on a loop of its own
so that blocking calls to the central system (which waits for the stations to answer) can be made from
the calling thread. Sessions can be drawn with gridmesh's seeded EV model (:func:`sessions_from_ev`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gridmesh.adapters.ocpp.charge_point import SessionPlan, SimStation, StationConfig
from gridmesh.adapters.ocpp.sim_v16 import SimStationV16
from gridmesh.adapters.ocpp.sim_v201 import SimStationV201
from gridmesh.devices.ev import draw_sessions
from gridmesh.model.elements import EvCharger

T = TypeVar("T")
STEP_H = 0.25  # the EV model's time grid
VERSIONS: Mapping[str, type[SimStation]] = {"2.0.1": SimStationV201, "1.6": SimStationV16}


def make_station(version: str, config: StationConfig, sessions: Sequence[SessionPlan] = ()) -> SimStation:
    """A simulated station speaking ``version`` ("2.0.1" or "1.6")."""
    if version not in VERSIONS:
        raise ValueError(f"{config.charger_id}: OCPP version {version!r} not simulated; use one of {list(VERSIONS)}")
    return VERSIONS[version](config, sessions)


def sessions_from_ev(chargers: Sequence[EvCharger], *, hours: float, seed: int = 7) -> dict[str, list[SessionPlan]]:
    """Plug-in sessions over ``hours`` from :func:`gridmesh.devices.ev.draw_sessions`, in simulated seconds."""
    drawn = draw_sessions(chargers, steps=max(round(hours / STEP_H), 1), dt_h=STEP_H, seed=seed)
    out: dict[str, list[SessionPlan]] = {c.id: [] for c in chargers}
    step_s = STEP_H * 3600.0
    columns = (drawn.charger.tolist(), drawn.arrival.tolist(), drawn.departure.tolist(), drawn.energy_kwh.tolist())
    for k, (charger, arrival, departure, energy) in enumerate(zip(*columns, strict=True)):
        charger_id = chargers[charger].id
        out[charger_id].append(SessionPlan(arrival * step_s, departure * step_s, energy, f"{charger_id}-{k}"))
    return out


@dataclass(frozen=True, slots=True)
class FleetStats:
    stations: int
    online: int
    values_generated: int
    values_acknowledged: int
    pending_messages: int


class Fleet:
    """Stations sharing the running loop."""

    def __init__(self, stations: Sequence[SimStation]) -> None:
        self.stations = list(stations)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every station (call on the loop that is to run them)."""
        self._tasks = [asyncio.create_task(s.run(), name=f"station-{s.config.charger_id}") for s in self.stations]

    async def stop(self, *, drain_timeout_s: float = 30.0) -> None:
        """Stop simulating, give the stations ``drain_timeout_s`` to deliver their outboxes, then cancel."""
        for station in self.stations:
            station.stop()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=drain_timeout_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def stats(self) -> FleetStats:
        return FleetStats(
            len(self.stations),
            sum(s.online for s in self.stations),
            sum(s.values_generated for s in self.stations),
            sum(s.values_acknowledged for s in self.stations),
            sum(s.pending for s in self.stations),
        )


class FleetThread:
    """A :class:`Fleet` on its own thread and loop."""

    def __init__(self, stations: Sequence[SimStation]) -> None:
        self.fleet = Fleet(stations)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ocpp-fleet", daemon=True)

    @property
    def stations(self) -> list[SimStation]:
        return self.fleet.stations

    def start(self) -> FleetThread:
        self._thread.start()
        self.call(self.fleet.start)
        return self

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the fleet's loop (station methods are not thread-safe) and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result()

    def stop(self, *, drain_timeout_s: float = 30.0) -> None:
        asyncio.run_coroutine_threadsafe(self.fleet.stop(drain_timeout_s=drain_timeout_s), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
