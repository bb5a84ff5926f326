"""Flexible loads: consumption that may be deferred and caught up later, vectorised over loads.

A flexible load (a process line, a pumping station with a reservoir, heating with thermal inertia) can
reduce its consumption by up to ``flexible_share`` of what it draws now; the energy it did not draw is a
*backlog* that must be consumed later, within ``max_delay_h`` at the load's nominal power. This is the
usual "virtual storage" model of shiftable demand::

    shift p > 0: consumption reduced (deferred), backlog grows by p·dt
    shift p < 0: backlog consumed on top of the load, backlog shrinks by |p|·dt

The backlog stays within ``[0, share·|p_nominal|·max_delay_h]`` and catch-up runs at most at
``share·|p_nominal|``. When nobody asks for anything (NaN) a load with a backlog catches up by itself,
as real processes do: deferred energy never disappears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.elements import Load

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class FlexibleLoads:
    """The loads with a flexible share (``columns``: their positions among the network's loads) and their backlog."""

    ids: tuple[str, ...]
    columns: IntArray
    share: FloatArray
    catch_up_kw: FloatArray  # fastest catch-up: share of the nominal power
    backlog_max_kwh: FloatArray
    backlog_kwh: FloatArray
    q_per_p: FloatArray  # reactive power moved with each kW shifted: the load's nominal power factor

    @classmethod
    def of(cls, loads: Sequence[Load]) -> FlexibleLoads:
        """The flexible ones among ``loads`` (in the network's table order)."""
        chosen = [i for i, x in enumerate(loads) if x.flexible_share > 0 and x.in_service and x.p_kw > 0]
        share = np.array([loads[i].flexible_share for i in chosen], dtype=np.float64)
        nominal = np.array([loads[i].p_kw for i in chosen], dtype=np.float64)
        delay = np.array([loads[i].max_delay_h for i in chosen], dtype=np.float64)
        return cls(
            ids=tuple(loads[i].id for i in chosen),
            columns=np.array(chosen, dtype=np.int64),
            share=share,
            catch_up_kw=share * nominal,
            backlog_max_kwh=share * nominal * delay,
            backlog_kwh=np.zeros(len(chosen)),
            q_per_p=np.array([loads[i].q_kvar / loads[i].p_kw for i in chosen], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def defer_max_kw(self, load_kw: FloatArray) -> FloatArray:
        """Most each load may defer at consumption ``load_kw`` (``(..., n)``), ignoring the backlog."""
        return self.share * np.maximum(load_kw, 0.0)

    def limits_kw(self, load_kw: FloatArray, dt_h: float) -> tuple[FloatArray, FloatArray]:
        """(max deferral, max catch-up) in this step, both ≥ 0, from the share and the backlog window."""
        room = np.maximum(self.backlog_max_kwh - self.backlog_kwh, 0.0) / dt_h
        defer = np.minimum(self.defer_max_kw(load_kw), room)
        catch_up = np.minimum(self.catch_up_kw, self.backlog_kwh / dt_h)
        return defer, catch_up

    def step(self, request_kw: FloatArray, load_kw: FloatArray, dt_h: float) -> FloatArray:
        """Apply one step of requested shift (NaN: catch up what is owed); returns the shift applied."""
        defer, catch_up = self.limits_kw(load_kw, dt_h)
        wanted = np.where(np.isnan(request_kw), -np.inf, request_kw)
        p = np.clip(wanted, -catch_up, defer)
        self.backlog_kwh = np.clip(self.backlog_kwh + p * dt_h, 0.0, self.backlog_max_kwh)
        return p
