"""Sampling failures and turning them into IEEE 1366-2022 indices.

Per simulated year and reporting group the sampler sums customer interruptions (CI), customer minutes
interrupted (CMI), momentary customer interruptions and energy not supplied; the indices follow IEEE 1366:

* SAIFI = Σ CI / N (sustained interruptions, ≥ 5 min, per customer and year)
* SAIDI = Σ CMI / N (minutes per customer and year, sustained interruptions only)
* CAIDI = SAIDI / SAIFI (minutes per sustained interruption)
* ASAI = 1 − SAIDI / 525,600 (share of the 8,760 hours of a year with supply)
* MAIFI = momentary interruptions (< 5 min) per customer and year, one per event (MAIFI_E): a reclosing
  sequence that ends in supply counts once
* ENS = Σ average load × sustained interruption duration (kWh per year)

Everything is vectorised: failure counts are Poisson per (year, mode), repair times gamma per event, and
the fixed-duration stages are a matrix product with the mode table; only repairs need per-event sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from gridmesh.sim.reliability_model import ModeTable, Stage

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Counts = npt.NDArray[np.int64] | npt.NDArray[np.float64]  # sampled counts, or expected counts (rates)
MINUTES_PER_YEAR = 8760 * 60
Z95 = 1.959963984540054

__all__ = ["Estimate", "Indices", "Timing", "YearTotals", "expected", "sample_years", "summarise", "year_totals"]


@dataclass(frozen=True)
class Timing:
    """Stage durations of one variant (with or without FLISR), minutes."""

    remote_min: float
    manual_min: float
    threshold_min: float


@dataclass(frozen=True)
class YearTotals:
    """Per year (rows) and group (columns): CI, CMI (min), momentary interruptions, ENS (kWh)."""

    ci: FloatArray
    cmi: FloatArray
    momentary: FloatArray
    ens_kwh: FloatArray

    @staticmethod
    def concat(parts: list[YearTotals]) -> YearTotals:
        return YearTotals(*(np.vstack([getattr(p, f) for p in parts]) for f in ("ci", "cmi", "momentary", "ens_kwh")))


@dataclass(frozen=True)
class Estimate:
    """A mean over simulated years and the half-width of its 95 % confidence interval."""

    mean: float
    ci95: float


@dataclass(frozen=True)
class Indices:
    """IEEE 1366 indices of one group and variant."""

    saifi: Estimate
    saidi_min: Estimate
    caidi_min: Estimate
    asai: Estimate
    maifi: Estimate
    ens_kwh: Estimate


def year_totals(
    table: ModeTable,
    permanent: Counts,
    temporary: Counts,
    event_year: IntArray,
    event_mode: IntArray,
    repair_h: FloatArray,
    timing: Timing,
) -> YearTotals:
    """Totals from failure counts ``(years, modes)`` and the repair time (h) of each permanent failure."""
    groups = table.customers.shape[2]
    cust, kw = table.customers, table.kw
    sustained = [False, timing.remote_min >= timing.threshold_min, timing.manual_min >= timing.threshold_min]
    minutes = [0.0, timing.remote_min, timing.manual_min]
    fixed_ci = np.zeros((cust.shape[0], groups))
    fixed_cmi, fixed_mom, fixed_ens = (np.zeros_like(fixed_ci) for _ in range(3))
    for stage in (Stage.PROTECTION, Stage.REMOTE, Stage.MANUAL):
        if sustained[stage]:
            fixed_ci += cust[:, stage]
            fixed_cmi += cust[:, stage] * minutes[stage]
            fixed_ens += kw[:, stage] * minutes[stage] / 60
        else:
            fixed_mom += cust[:, stage]
    counts = permanent.astype(np.float64)
    ci, cmi, ens = counts @ fixed_ci, counts @ fixed_cmi, counts @ fixed_ens
    mom = counts @ fixed_mom + temporary.astype(np.float64) @ table.temporary_customers
    long = (repair_h * 60 >= timing.threshold_min)[:, None]
    waiting, waiting_kw = cust[event_mode, Stage.REPAIR], kw[event_mode, Stage.REPAIR]
    np.add.at(ci, event_year, waiting * long)
    np.add.at(cmi, event_year, waiting * (repair_h * 60)[:, None] * long)
    np.add.at(mom, event_year, waiting * ~long)
    np.add.at(ens, event_year, waiting_kw * repair_h[:, None] * long)
    return YearTotals(ci, cmi, mom, ens)


def sample_years(
    table: ModeTable, years: int, seed: np.random.SeedSequence, timings: tuple[Timing, ...]
) -> tuple[YearTotals, ...]:
    """Draw ``years`` independent years and total them for each timing from the same draws.

    Sharing the draws (common random numbers) makes the difference between variants exact per year:
    FLISR changes when customers come back, never which failures happened.
    """
    rng = np.random.default_rng(seed)
    modes = len(table.permanent_per_year)
    permanent = rng.poisson(table.permanent_per_year, size=(years, modes))
    temporary = rng.poisson(table.temporary_per_year, size=(years, modes))
    flat = permanent.ravel()
    event_mode = np.repeat(np.tile(np.arange(modes, dtype=np.int64), years), flat)
    event_year = np.repeat(np.repeat(np.arange(years, dtype=np.int64), modes), flat)
    shape = 1.0 / table.repair_cv**2
    repair_h = rng.gamma(shape, table.repair_mean_h[event_mode] / shape)
    return tuple(year_totals(table, permanent, temporary, event_year, event_mode, repair_h, t) for t in timings)


def summarise(totals: YearTotals, customers: FloatArray) -> list[Indices]:
    """Indices per group with 95 % confidence intervals over the simulated years."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_customer = np.where(customers > 0, 1.0 / customers, np.nan)
        saifi, saidi, maifi = totals.ci * per_customer, totals.cmi * per_customer, totals.momentary * per_customer
    out = []
    for g in range(len(customers)):
        s, d = _estimate(saifi[:, g]), _estimate(saidi[:, g])
        out.append(
            Indices(
                saifi=s,
                saidi_min=d,
                caidi_min=_ratio(totals.cmi[:, g], totals.ci[:, g]),
                asai=Estimate(1.0 - d.mean / MINUTES_PER_YEAR, d.ci95 / MINUTES_PER_YEAR),
                maifi=_estimate(maifi[:, g]),
                ens_kwh=_estimate(totals.ens_kwh[:, g]),
            )
        )
    return out


def _estimate(values: FloatArray) -> Estimate:
    if not np.all(np.isfinite(values)):
        return Estimate(math.nan, math.nan)
    spread = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return Estimate(float(values.mean()), Z95 * spread / math.sqrt(len(values)))


def _ratio(numerator: FloatArray, denominator: FloatArray) -> Estimate:
    """Ratio of means with a delta-method interval (CAIDI is a ratio of two annual sums)."""
    mean_d = float(denominator.mean())
    if mean_d <= 0:
        return Estimate(math.nan, math.nan)
    ratio = float(numerator.mean()) / mean_d
    if len(numerator) < 2:
        return Estimate(ratio, math.nan)
    residual = numerator - ratio * denominator
    return Estimate(ratio, Z95 * float(residual.std(ddof=1)) / (math.sqrt(len(numerator)) * mean_d))


def expected(table: ModeTable, customers: FloatArray, timing: Timing) -> dict[str, FloatArray]:
    """The analytical (FMEA) expectation of SAIFI, SAIDI, MAIFI and ENS per group: rate × effect, summed.

    A repair shorter than the momentary threshold counts as momentary; with gamma repair times that share is
    taken from the gamma distribution, so this is exact for the model the Monte Carlo samples.
    """
    shape = 1.0 / table.repair_cv**2
    scale_min = table.repair_mean_h * 60 / shape
    t = timing.threshold_min
    p_long = np.asarray(stats.gamma.sf(t, shape, scale=scale_min), dtype=np.float64)
    mean_long_min = (
        table.repair_mean_h * 60 * np.asarray(stats.gamma.sf(t, shape + 1, scale=scale_min), dtype=np.float64)
    )
    fixed = year_totals(  # expected counts in place of sampled ones, no repair events
        table,
        table.permanent_per_year[None, :],
        table.temporary_per_year[None, :],
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        timing,
    )
    waiting, waiting_kw = table.customers[:, Stage.REPAIR], table.kw[:, Stage.REPAIR]
    lam = table.permanent_per_year[:, None]
    ci = fixed.ci[0] + (lam * waiting * p_long[:, None]).sum(0)
    cmi = fixed.cmi[0] + (lam * waiting * mean_long_min[:, None]).sum(0)
    mom = fixed.momentary[0] + (lam * waiting * (1 - p_long)[:, None]).sum(0)
    ens = fixed.ens_kwh[0] + (lam * waiting_kw * mean_long_min[:, None] / 60).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(customers > 0, 1.0 / customers, np.nan)
    return {"saifi": ci * per, "saidi_min": cmi * per, "maifi": mom * per, "ens_kwh": ens}
