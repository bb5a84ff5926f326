"""Reliability study: Monte Carlo years of failures, protection and FLISR, reported as IEEE 1366 indices.

``FeederModel.of(network, rates)`` computes once what every fault does (the FMEA table, with tie transfers
checked by power flow); :func:`run_reliability` samples years in independent chunks and merges them.

**Executors.** The chunks go through any :class:`concurrent.futures.Executor`: the default is a local
``ProcessPoolExecutor``; a ``ThreadPoolExecutor``, a Dask ``distributed.Client.get_executor()`` or a thin
adapter over Ray (``submit`` → ``ray.util.multiprocessing.Pool.apply_async``) plug in unchanged, since a
chunk is a pure function of plain arrays and its own ``numpy.random.SeedSequence`` child. Results depend on
``(seed, years, chunks)`` only, never on the executor or the number of workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gridmesh.errors import GridmeshError
from gridmesh.sim.reliability_indices import (
    Estimate,
    Indices,
    Timing,
    YearTotals,
    expected,
    sample_years,
    summarise,
    year_totals,
)
from gridmesh.sim.reliability_model import FeederModel, Restoration, Stage
from gridmesh.sim.reliability_rates import ReliabilityRates

FloatArray = npt.NDArray[np.float64]
VARIANTS = ("without_flisr", "with_flisr")
YEARS_PER_CHUNK = 50

__all__ = [
    "VARIANTS",
    "Failure",
    "FeederModel",
    "GroupResult",
    "ReliabilityRates",
    "ReliabilityResult",
    "evaluate_failures",
    "run_reliability",
    "timings",
]


@dataclass(frozen=True)
class Failure:
    """One given failure (for deterministic studies and tests): element ``(table, id)`` in ``year``."""

    year: int
    element: tuple[str, str]
    repair_h: float = 1.0
    temporary: bool = False


@dataclass(frozen=True)
class GroupResult:
    """Indices of one reporting group for both variants, and the FMEA expectation beside them."""

    name: str
    kind: str
    customers: float
    average_kw: float
    indices: dict[str, Indices]  # by variant
    expected: dict[str, dict[str, float]]  # by variant: saifi, saidi_min, maifi, ens_kwh


@dataclass(frozen=True)
class ReliabilityResult:
    """The outcome of a study; ``annual_saidi_min[variant]`` is ``(years, groups)`` for distributions."""

    network: str
    years: int
    seed: int | None
    chunks: int
    rates: ReliabilityRates
    groups: tuple[GroupResult, ...]
    annual_saidi_min: dict[str, FloatArray]
    restoration: tuple[Restoration, ...]
    capacity_checks: int

    def group(self, name: str) -> GroupResult:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no group {name!r}; groups are {', '.join(g.name for g in self.groups)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (NaN becomes null)."""
        return {
            "network": self.network,
            "years": self.years,
            "seed": self.seed,
            "chunks": self.chunks,
            "standard": "IEEE 1366-2022; momentary below "
            f"{self.rates.momentary_threshold_min:g} min; MAIFI counts events (MAIFI_E)",
            "variants": {
                "without_flisr": f"remote switches operated by a dispatcher after {self.rates.remote_switching_min:g} "
                f"min, manual switching after {self.rates.manual_switching_min:g} min",
                "with_flisr": f"remote switches operated by FLISR after {self.rates.flisr_min:g} min, manual "
                f"switching after {self.rates.manual_switching_min:g} min",
            },
            "rates": self.rates.model_dump(),
            "groups": [
                {
                    "name": g.name,
                    "kind": g.kind,
                    "customers": g.customers,
                    "average_kw": g.average_kw,
                    **{v: _indices_dict(g.indices[v]) for v in VARIANTS},
                    "expected": {v: {k: _num(x) for k, x in g.expected[v].items()} for v in VARIANTS},
                }
                for g in self.groups
            ],
            "restoration": [
                {
                    "section": r.section,
                    "failures_per_year": r.failures_per_year,
                    "protection": r.protection,
                    "sectionaliser": r.sectionaliser,
                    **{f"customers_{s.name.lower()}": r.customers[s] for s in Stage},
                }
                for r in self.restoration
            ],
            "capacity_checks": self.capacity_checks,
        }


def timings(rates: ReliabilityRates) -> tuple[Timing, Timing]:
    """Stage durations without and with FLISR (same order as :data:`VARIANTS`)."""
    threshold, manual = rates.momentary_threshold_min, rates.manual_switching_min
    return Timing(rates.remote_switching_min, manual, threshold), Timing(rates.flisr_min, manual, threshold)


def run_reliability(
    model: FeederModel,
    years: int,
    *,
    seed: int | None = 0,
    executor: Executor | None = None,
    chunks: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReliabilityResult:
    """Simulate ``years`` independent years in ``chunks`` (default: one per 50 years) through ``executor``.

    ``progress`` is called with the number of years of each finished chunk. Without an executor a local
    process pool with one worker per CPU runs the chunks and is shut down afterwards.
    """
    if years < 1:
        raise GridmeshError(f"years must be at least 1, got {years}; ask for the number of years to simulate")
    n_chunks = max(1, min(years, chunks if chunks is not None else math.ceil(years / YEARS_PER_CHUNK)))
    sizes = [years // n_chunks + (1 if k < years % n_chunks else 0) for k in range(n_chunks)]
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    variants = timings(model.rates)
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, n_chunks))
    try:
        futures: dict[Future[tuple[YearTotals, ...]], int] = {
            pool.submit(sample_years, model.table, size, s, variants): k
            for k, (size, s) in enumerate(zip(sizes, seeds, strict=True))
        }
        parts: list[tuple[YearTotals, ...] | None] = [None] * n_chunks
        for future in as_completed(futures):
            parts[futures[future]] = future.result()
            if progress is not None:
                progress(sizes[futures[future]])
    finally:
        if own:
            pool.shutdown()
    merged = [YearTotals.concat([p[v] for p in parts if p is not None]) for v in range(len(VARIANTS))]
    return _result(model, years, seed, n_chunks, merged)


def evaluate_failures(model: FeederModel, years: int, failures: Sequence[Failure]) -> ReliabilityResult:
    """Indices for a given list of failures over ``years`` years (no sampling): a deterministic study."""
    modes = len(model.table.permanent_per_year)
    permanent = np.zeros((years, modes), dtype=np.int64)
    temporary = np.zeros_like(permanent)
    events: list[tuple[int, int, float]] = []
    for f in failures:
        if f.element not in model.element_mode:
            raise GridmeshError(f"{f.element[0]} {f.element[1]!r} has no failure mode in this study; check its level")
        if not 0 <= f.year < years:
            raise GridmeshError(f"failure in year {f.year} lies outside the {years} simulated years")
        m = model.element_mode[f.element]
        if f.temporary:
            temporary[f.year, m] += 1
        else:
            permanent[f.year, m] += 1
            events.append((f.year, m, f.repair_h))
    events.sort()
    year_idx = np.array([e[0] for e in events], dtype=np.int64)
    mode_idx = np.array([e[1] for e in events], dtype=np.int64)
    repair = np.array([e[2] for e in events], dtype=np.float64)
    totals = [
        year_totals(model.table, permanent, temporary, year_idx, mode_idx, repair, t) for t in timings(model.rates)
    ]
    return _result(model, years, None, 1, totals)


def _result(
    model: FeederModel, years: int, seed: int | None, chunks: int, totals: list[YearTotals]
) -> ReliabilityResult:
    groups = model.groups
    indices = [summarise(t, groups.customers) for t in totals]
    expectations = [expected(model.table, groups.customers, t) for t in timings(model.rates)]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(groups.customers > 0, 1.0 / groups.customers, np.nan)
    return ReliabilityResult(
        network=model.name,
        years=years,
        seed=seed,
        chunks=chunks,
        rates=model.rates,
        groups=tuple(
            GroupResult(
                name=name,
                kind=groups.kinds[g],
                customers=float(groups.customers[g]),
                average_kw=float(groups.average_kw[g]),
                indices={v: indices[k][g] for k, v in enumerate(VARIANTS)},
                expected={v: {key: float(a[g]) for key, a in expectations[k].items()} for k, v in enumerate(VARIANTS)},
            )
            for g, name in enumerate(groups.names)
        ),
        annual_saidi_min={v: totals[k].cmi * per for k, v in enumerate(VARIANTS)},
        restoration=model.restoration,
        capacity_checks=model.capacity_checks,
    )


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _estimate(e: Estimate) -> dict[str, float | None]:
    return {"mean": _num(e.mean), "ci95": _num(e.ci95)}


def _indices_dict(i: Indices) -> dict[str, dict[str, float | None]]:
    return {
        "saifi": _estimate(i.saifi),
        "saidi_min": _estimate(i.saidi_min),
        "caidi_min": _estimate(i.caidi_min),
        "asai": _estimate(i.asai),
        "maifi": _estimate(i.maifi),
        "ens_kwh": _estimate(i.ens_kwh),
    }
