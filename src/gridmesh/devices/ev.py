"""EV plug-in sessions and uncontrolled charging.

Sessions are drawn once per study from a seeded generator (reproducible): arrivals follow the charger's
usage pattern (home: evening, work: morning, public: daytime), dwell times and energies are drawn around
typical values, and an uncontrolled charger draws full power from arrival until the energy is delivered
or the car leaves. Patterns follow the shape of German mobility surveys (MiD 2017): home charging
arrivals peak around 18:00, workplace arrivals around 08:00.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.elements import EvCharger

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# usage → (mean arrival hour, spread h, mean dwell h, spread h)
PATTERNS: dict[str, tuple[float, float, float, float]] = {
    "home": (18.0, 2.0, 12.0, 2.5),
    "work": (8.0, 1.0, 8.5, 1.0),
    "public": (13.0, 3.5, 1.5, 0.75),
}


@dataclass(frozen=True)
class Sessions:
    """Plug-in sessions over a study, sorted by arrival; steps are on the study's time grid."""

    charger: IntArray  # index into the charger list
    arrival: IntArray  # first step plugged in
    departure: IntArray  # first step unplugged
    energy_kwh: FloatArray  # requested energy

    def __len__(self) -> int:
        return int(self.charger.size)


def draw_sessions(chargers: Sequence[EvCharger], *, steps: int, dt_h: float, seed: int = 7) -> Sessions:
    """Sessions for every connector of every charger over ``steps`` time steps."""
    rng = np.random.default_rng(seed)
    days = int(np.ceil(steps * dt_h / 24.0))
    parts: list[tuple[IntArray, FloatArray, FloatArray, FloatArray]] = []
    for k, charger in enumerate(chargers):
        if not charger.in_service:
            continue
        mean_h, spread_h, dwell_h, dwell_spread = PATTERNS[charger.usage]
        counts = rng.poisson(charger.sessions_per_day, size=(days, charger.connectors)).sum(axis=1)
        day = np.repeat(np.arange(days), counts)
        n = day.size
        arrival_h = day * 24.0 + np.clip(rng.normal(mean_h, spread_h, n), 0.0, 23.75)
        dwell = np.clip(rng.normal(dwell_h, dwell_spread, n), 0.25, 20.0)
        energy: FloatArray = np.minimum(rng.gamma(4.0, charger.energy_kwh / 4.0, n), charger.p_kw * dwell)
        parts.append((np.full(n, k, dtype=np.int64), arrival_h.astype(np.float64), dwell.astype(np.float64), energy))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Sessions(empty, empty, empty, np.zeros(0))
    charger_idx, arrival_h, dwell, energy = (np.concatenate(p) for p in zip(*parts, strict=True))
    arrival = np.floor(arrival_h / dt_h).astype(np.int64)
    departure = arrival + np.maximum(np.round(dwell / dt_h).astype(np.int64), 1)
    keep = arrival < steps
    order = np.argsort(arrival[keep], kind="stable")
    return Sessions(
        charger_idx[keep][order], arrival[keep][order], np.minimum(departure[keep][order], steps), energy[keep][order]
    )


def uncontrolled_power(
    sessions: Sessions, chargers: Sequence[EvCharger], *, first: int, steps: int, dt_h: float
) -> FloatArray:
    """Charging power ``(steps, n_chargers)`` in kW for steps ``first … first+steps-1``.

    Each session charges at full power from arrival until its energy is in or the car leaves; the last
    step carries the remainder. Sessions on one charger add up (one per connector).
    """
    p_max = np.array([c.p_kw for c in chargers], dtype=np.float64)
    out = np.zeros((steps, len(chargers)))
    if not len(sessions):
        return out
    rate = p_max[sessions.charger]
    full_steps = np.floor(sessions.energy_kwh / (rate * dt_h)).astype(np.int64)
    remainder_kw = (sessions.energy_kwh - full_steps * rate * dt_h) / dt_h
    end_full = np.minimum(sessions.arrival + full_steps, sessions.departure)
    live = (sessions.arrival < first + steps) & (sessions.departure > first)
    # Expand the window-visible full-power steps of the live sessions into (step, charger) pairs.
    lo = np.clip(sessions.arrival[live], first, first + steps) - first
    hi = np.clip(end_full[live], first, first + steps) - first
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    np.add.at(out, (rows, np.repeat(sessions.charger[live], counts)), np.repeat(rate[live], counts))
    tail = end_full[live]
    has_tail = (tail < sessions.departure[live]) & (tail >= first) & (tail < first + steps) & (remainder_kw[live] > 0)
    np.add.at(out, (tail[has_tail] - first, sessions.charger[live][has_tail]), remainder_kw[live][has_tail])
    return out
