"""The live measurement image: the latest accepted value of every series the catalogue expects.

Ingest hands over accepted batches (up to hundreds of thousands of readings per second); the state
estimator reads a consistent copy every cycle. Updates are vectorised: a batch is mapped to slots with
one hash lookup per reading (pandas' C hash table) and written with numpy, so the hot path never loops
over readings in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.services.historian.base import ReadingRows
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind

_SEP = "\x1f"  # unit separator: cannot occur in device ids or quantity names


@dataclass(frozen=True)
class SeriesValues:
    """The latest values of one quantity for the devices of one kind (NaN where nothing arrived yet)."""

    devices: tuple[str, ...]
    elements: tuple[str, ...]
    buses: tuple[str, ...]
    value: npt.NDArray[np.float64]
    ts_ns: npt.NDArray[np.int64]


class LiveImage:
    """Latest value and device timestamp of every (device, quantity) with phase total."""

    def __init__(self, catalogue: Catalogue) -> None:
        keys: list[str] = []
        self._slots: dict[tuple[DeviceKind, str], npt.NDArray[np.int64]] = {}
        self._devices: dict[DeviceKind, list[str]] = {}
        for kind in DeviceKind:
            devices = [d for d in catalogue.devices.values() if d.kind is kind]
            self._devices[kind] = [d.id for d in devices]
            for quantity in sorted({q for d in devices for q in d.reports}):
                slots = []
                for d in devices:
                    if quantity in d.reports:
                        slots.append(len(keys))
                        keys.append(f"{d.id}{_SEP}{quantity}")
                    else:
                        slots.append(-1)
                self._slots[(kind, quantity)] = np.asarray(slots, dtype=np.int64)
        self.catalogue = catalogue
        self._labels = {
            kind: (
                tuple(ids),
                tuple(catalogue.devices[i].element for i in ids),
                tuple(catalogue.devices[i].bus for i in ids),
            )
            for kind, ids in self._devices.items()
        }
        self._index = pd.Index(keys)
        self._value = np.full(len(keys), np.nan)
        self._ts = np.zeros(len(keys), dtype=np.int64)
        self._lock = threading.Lock()

    def update(self, rows: ReadingRows) -> int:
        """Take the newer readings of a batch (older than what is held are ignored); returns how many."""
        if len(rows) == 0:
            return 0
        keys = [f"{d}{_SEP}{q}" for d, q, p in zip(rows.device, rows.quantity, rows.phase, strict=True) if not p]
        mask = np.fromiter((not p for p in rows.phase), dtype=bool, count=len(rows))
        slots = self._index.get_indexer(pd.Index(keys))
        known = slots >= 0
        slots, value, ts = slots[known], rows.value[mask][known], rows.ts_ns[mask][known]
        if not len(slots):
            return 0
        # Within one batch the last reading of a slot wins when sorted by time.
        order = np.lexsort((ts, slots))
        slots, value, ts = slots[order], value[order], ts[order]
        last = np.r_[slots[1:] != slots[:-1], True]
        slots, value, ts = slots[last], value[last], ts[last]
        with self._lock:
            newer = ts >= self._ts[slots]
            self._value[slots[newer]] = value[newer]
            self._ts[slots[newer]] = ts[newer]
        return int(newer.sum())

    def overlay(
        self,
        kind: DeviceKind,
        quantity: str,
        elements: Sequence[str],
        fallback: npt.NDArray[np.float64],
        *,
        scale: float = 1.0,
        fresh_after_ns: int | None = None,
    ) -> tuple[npt.NDArray[np.float64], int]:
        """``fallback`` (one value per element of ``elements``) with the latest readings put in, times
        ``scale``; a reading older than ``fresh_after_ns`` (device time) is ignored. Returns the values and
        how many elements kept their fallback. Whoever needs "the measured value, else the model's" (the
        live control cycle, FLISR's loads) uses this one vectorised lookup."""
        series = self.series(kind, quantity)
        ok = np.isfinite(series.value)
        if fresh_after_ns is not None:
            ok &= series.ts_ns >= fresh_after_ns
        position = pd.Index(elements).get_indexer(pd.Index(series.elements))
        ok &= position >= 0
        out = np.asarray(fallback, dtype=np.float64).copy()
        out[position[ok]] = series.value[ok] * scale
        return out, len(out) - int(np.unique(position[ok]).size)

    def series(self, kind: DeviceKind, quantity: str) -> SeriesValues:
        """A copy of the latest ``quantity`` of every device of ``kind`` (NaN / 0 where none)."""
        ids = self._devices[kind]
        slots = self._slots.get((kind, quantity), np.full(len(ids), -1, dtype=np.int64))
        with self._lock:
            value = np.where(slots >= 0, self._value[slots], np.nan)
            ts = np.where(slots >= 0, self._ts[slots], 0)
        devices, elements, buses = self._labels[kind]
        return SeriesValues(devices, elements, buses, value, ts.astype(np.int64))

    def reported_with(self, kind: DeviceKind, quantity: str, beside: str = "TotW") -> SeriesValues:
        """Like :meth:`series`, NaN where the device's latest report (the one that carried ``beside``) left
        ``quantity`` out: a device that reports a quantity only while it can measure it (a battery's
        frequency without supply) must not keep its older value."""
        latest, along = self.series(kind, quantity), self.series(kind, beside)
        return replace(latest, value=np.where(latest.ts_ns >= along.ts_ns, latest.value, np.nan))
