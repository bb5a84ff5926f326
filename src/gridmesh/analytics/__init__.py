"""Forecasting: day-ahead and intraday forecasts of load, PV and wind, with baselines and held-out scores.

The public names live here; ``features``, ``forecast``, ``targets`` and ``evaluation`` hold the code.
"""

from gridmesh.analytics.evaluation import Method, Score, TargetScores, evaluate_target, held_out_weeks, methods_for
from gridmesh.analytics.forecast import (
    DAY_AHEAD,
    HORIZONS,
    INTRADAY,
    Forecaster,
    GradientBoosting,
    Horizon,
    Persistence,
    SeasonalNaive,
    nmae,
    nrmse,
)
from gridmesh.analytics.targets import Target, TargetKind, forecast_targets, location

__all__ = [
    "DAY_AHEAD",
    "HORIZONS",
    "INTRADAY",
    "Forecaster",
    "GradientBoosting",
    "Horizon",
    "Method",
    "Persistence",
    "Score",
    "SeasonalNaive",
    "Target",
    "TargetKind",
    "TargetScores",
    "evaluate_target",
    "forecast_targets",
    "held_out_weeks",
    "location",
    "methods_for",
    "nmae",
    "nrmse",
]
