"""Failure rates, repair and switching times of a reliability study, with the sources of the defaults.

Rates are per km and year for lines and per unit and year for transformers and switches. The defaults are
the textbook values most distribution reliability studies start from; replace them with the utility's own
outage statistics when those exist (``ReliabilityRates.model_validate_json`` or keyword arguments).

Sources of the defaults:

* **RBTS** — R. N. Allan, R. Billinton, I. Sjarief, L. Goel, K. S. So, "A reliability test system for
  educational purposes — basic distribution system data and results", IEEE Trans. Power Systems 6(2),
  1991: feeder sections 0.065 f/(km·yr) with 5 h repair, 11/0.415 kV transformers 0.015 f/yr (10 h to
  replace from a spare), breakers 0.006 f/yr with 4 h repair, manual switching 1 h.
* **Cable statistics** — European DSO outage statistics (e.g. the German FNN *Störungs- und
  Verfügbarkeitsstatistik*) report a few MV cable failures per 100 km and year, with longer repairs than
  overhead lines (excavation and jointing): 0.03 f/(km·yr) and 8 h are used here.
* **Temporary faults** — 70–90 % of overhead-line faults are temporary and cleared by automatic reclosing
  (IEEE Std C37.104, guide for automatic reclosing); cable faults are permanent.
* **IEEE 1366-2022** — an interruption shorter than 5 minutes is momentary (counted by MAIFI, not SAIFI).

Values marked *assumption* have no single source; they are typical figures and should be set per utility.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0)]
Hours = Annotated[float, Field(gt=0)]
Minutes = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]

__all__ = ["ReliabilityRates"]


class ReliabilityRates(BaseModel):
    """Failure statistics and operating times; every field has a unit in its name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    overhead_per_km_year: Rate = Field(0.065, description="MV overhead line failures per km·year (RBTS)")
    cable_per_km_year: Rate = Field(0.03, description="MV cable failures per km·year (DSO cable statistics)")
    lv_line_per_km_year: Rate = Field(
        0.05, description="LV line failures per km·year (assumption; only with the LV option)"
    )
    transformer_per_year: Rate = Field(0.015, description="MV/LV transformer failures per unit·year (RBTS)")
    switch_per_year: Rate = Field(0.006, description="MV switch and breaker failures per unit·year (RBTS breakers)")
    lv_switch_per_year: Rate = Field(
        0.001, description="LV switch failures per unit·year (assumption; only with the LV option)"
    )

    overhead_repair_h: Hours = Field(5.0, description="mean repair time of an overhead line (RBTS)")
    cable_repair_h: Hours = Field(8.0, description="mean repair time of a cable (DSO cable statistics)")
    lv_line_repair_h: Hours = Field(4.0, description="mean repair time of an LV line (assumption)")
    transformer_repair_h: Hours = Field(10.0, description="mean time to replace a transformer from a spare (RBTS)")
    switch_repair_h: Hours = Field(4.0, description="mean repair time of a switch (RBTS breakers)")
    repair_cv: Annotated[float, Field(gt=0, le=2)] = Field(
        0.5, description="coefficient of variation of repair times, gamma distributed (assumption)"
    )

    overhead_temporary_share: Share = Field(
        0.75, description="share of overhead-line faults that are temporary (IEEE C37.104: 70–90 %)"
    )
    cable_temporary_share: Share = Field(0.0, description="share of cable faults that are temporary")
    reclose_success: Share = Field(
        0.9, description="probability that auto-reclosing clears a temporary fault (assumption)"
    )

    manual_switching_min: Minutes = Field(60.0, description="crew travel and manual switching (RBTS: 1 h)")
    remote_switching_min: Minutes = Field(
        10.0, description="dispatcher locates the fault and operates SCADA switches, without FLISR (assumption)"
    )
    flisr_min: Minutes = Field(2.0, description="automatic FLISR: locate, isolate and restore (typical 1–3 min)")
    momentary_threshold_min: Minutes = Field(5.0, description="IEEE 1366-2022: shorter interruptions are momentary")
    cable_min_c_nf_per_km: Annotated[float, Field(gt=0)] = Field(
        100.0,
        description="a line with at least this capacitance is a cable (cables ≈ 150–400 nF/km, overhead ≈ 10 nF/km)",
    )
