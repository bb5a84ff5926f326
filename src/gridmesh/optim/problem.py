"""The dispatch problem: forecasts, tariffs and device limits over one horizon, checked on construction.

Shapes use T steps, B batteries, S sites (microgrid PCCs), G curtailable generators and F flexible loads. Powers are kW,
energies kWh, prices €/kWh, demand charges €/kW, SOC a fraction of the usable capacity. Loads and imports
are positive in load convention; battery and generator injections in generator convention.

Malformed input (a wrong shape, a NaN, a negative capacity) raises ``ValueError`` naming every bad field.
Limits that merely contradict each other (``soc_min > soc_max``, a terminal SOC out of reach) are not
malformed: :func:`gridmesh.optim.dispatch.solve_dispatch` answers them with an explained infeasible plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from gridmesh.physics.sensitivity import Sensitivity

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _empty() -> FloatArray:
    return np.zeros(0)


def _empty_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class DispatchProblem:
    """One optimisation horizon. Optional groups (sites, generators, flexible loads) are left out for none.

    An empty array for ``degradation_eur_per_kwh``, ``site_of_battery``, ``site_peak_so_far_kw`` or the
    flexible loads' backlogs and sites stands for its default (zero cost, no site, zero peak, nothing owed).
    Arrays are copied and made read-only.
    """

    dt_h: float
    # batteries (B,)
    e_kwh: FloatArray
    p_max_kw: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    soc0: FloatArray
    degradation_eur_per_kwh: FloatArray = field(default_factory=_empty)  # per kWh charged or discharged
    soc_terminal: FloatArray | None = None  # minimum SOC at the end; NaN entries: no target for that battery
    # substation (T,)
    net_load_kw: FloatArray  # grid import without batteries or curtailment (negative: export)
    import_price: FloatArray
    export_price: FloatArray
    demand_charge_eur_per_kw: float = 0.0  # on the peak import of the billing period
    peak_so_far_kw: float = 0.0  # the billing peak already reached
    # sites (S): microgrid PCCs
    site_net_load_kw: FloatArray = field(default_factory=_empty)  # (T, S) PCC import without dispatch
    site_of_battery: IntArray = field(default_factory=_empty_int)  # (B,) site index or -1
    site_demand_charge_eur_per_kw: FloatArray = field(default_factory=_empty)  # (S,)
    site_peak_so_far_kw: FloatArray = field(default_factory=_empty)  # (S,)
    # curtailable generation (G)
    gen_available_kw: FloatArray = field(default_factory=_empty)  # (T, G) forecast output, already in net loads
    site_of_gen: IntArray = field(default_factory=_empty_int)  # (G,) site index or -1
    curtailment_penalty_eur_per_kwh: float = 0.0
    # flexible loads (F): deferrable consumption, already in the net loads (see devices.flexible_load)
    flex_defer_max_kw: FloatArray = field(default_factory=_empty)  # (T, F) most that may be deferred per step
    flex_catch_up_kw: FloatArray = field(default_factory=_empty)  # (F,) fastest catch-up of deferred energy
    flex_backlog_max_kwh: FloatArray = field(default_factory=_empty)  # (F,) most energy owed at any time
    flex_backlog0_kwh: FloatArray = field(default_factory=_empty)  # (F,) energy owed at the start
    site_of_flex: IntArray = field(default_factory=_empty_int)  # (F,) site index or -1
    flex_penalty_eur_per_kwh: float = 0.0  # discomfort per kWh deferred
    # network (optional)
    sensitivity: Sensitivity | None = None

    def __post_init__(self) -> None:
        t, b = np.size(self.net_load_kw), np.size(self.e_kwh)
        s, g = np.size(self.site_demand_charge_eur_per_kw), np.size(self.site_of_gen)
        nf = np.size(self.flex_catch_up_kw)
        defaults = {
            "degradation_eur_per_kwh": np.zeros(b),
            "site_of_battery": np.full(b, -1),
            "site_peak_so_far_kw": np.zeros(s),
            "site_net_load_kw": np.zeros((t, 0)),
            "gen_available_kw": np.zeros((t, 0)),
            "flex_defer_max_kw": np.zeros((t, 0)),
            "flex_backlog_max_kwh": np.zeros(nf),
            "flex_backlog0_kwh": np.zeros(nf),
            "site_of_flex": np.full(nf, -1),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("dt_h", "sensitivity") or value is None or np.isscalar(value):
                continue
            kind = np.int64 if f.name.startswith("site_of_") else np.float64
            array = np.array(value, dtype=kind)
            if array.size == 0 and f.name in defaults:
                array = np.array(defaults[f.name], dtype=kind)
            array.flags.writeable = False
            object.__setattr__(self, f.name, array)
        problems = [p for check in _checks(t, b, s, g, nf) if (p := check(self))]
        if problems:
            raise ValueError("invalid dispatch problem: " + "; ".join(problems))

    @property
    def steps(self) -> int:
        return int(self.net_load_kw.shape[0])

    @property
    def n_batteries(self) -> int:
        return int(self.e_kwh.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.site_demand_charge_eur_per_kw.shape[0])

    @property
    def n_generators(self) -> int:
        return int(self.site_of_gen.shape[0])

    @property
    def n_flexible(self) -> int:
        return int(self.flex_catch_up_kw.shape[0])


Check = Callable[[DispatchProblem], str | None]

_NONNEG = (0.0, np.inf, "non-negative")
_FRACTION = (0.0, 1.0, "a fraction in [0, 1]")
_ANY = (-np.inf, np.inf, "finite")


def _array_check(name: str, shape: tuple[int, ...], what: str, rng: tuple[float, float, str]) -> Check:
    lo, hi, words = rng

    def check(p: DispatchProblem) -> str | None:
        value = np.asarray(getattr(p, name))
        if value.shape != shape:
            return f"{name} must have shape {shape} ({what}), got {value.shape}"
        if not np.isfinite(value).all():
            return f"{name} must be finite"
        if (value < lo).any() or (value > hi).any():
            return f"{name} must be {words}"
        return None

    return check


def _scalar_check(name: str, rng: tuple[float, float, str], *, positive: bool = False) -> Check:
    lo, hi, words = rng

    def check(p: DispatchProblem) -> str | None:
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            return f"{name} must be a finite number, got {value!r}"
        number = float(value)
        if not np.isfinite(number):
            return f"{name} must be a finite number, got {value!r}"
        if number < lo or number > hi or (positive and number <= 0):
            return f"{name} must be {'positive' if positive else words}, got {value}"
        return None

    return check


def _site_index(name: str, shape: tuple[int, ...], sites: int) -> Check:
    def check(p: DispatchProblem) -> str | None:
        value = getattr(p, name)
        if value.shape != shape:
            return f"{name} must have shape {shape}, got {value.shape}"
        if value.size and (value.min() < -1 or value.max() >= sites):
            return f"{name} must be site indices in [0, {sites}) or -1 for none, got {value.tolist()}"
        return None

    return check


def _check_terminal(p: DispatchProblem) -> str | None:
    if p.soc_terminal is None:
        return None
    value = p.soc_terminal
    if value.shape != (p.n_batteries,):
        return f"soc_terminal must have shape ({p.n_batteries},) (one per battery), got {value.shape}"
    given = value[~np.isnan(value)]
    if not np.isfinite(given).all() or (given < 0).any() or (given > 1).any():
        return "soc_terminal must be fractions in [0, 1] (NaN for no target)"
    return None


def _check_efficiency(p: DispatchProblem) -> str | None:
    for name in ("eta_charge", "eta_discharge"):
        value = getattr(p, name)
        if value.shape == (p.n_batteries,) and ((value <= 0) | (value > 1)).any():
            return f"{name} must lie in (0, 1]"
    return None


def _check_sensitivity(p: DispatchProblem) -> str | None:
    sens = p.sensitivity
    if sens is None:
        return None
    inputs = p.n_batteries + p.n_generators + p.n_flexible
    if sens.steps != p.steps or sens.inputs != inputs:
        return (
            f"sensitivity must cover {p.steps} steps and {inputs} injections (batteries, generators, flexible loads), "
            f"got base {sens.base.shape} and d_dp {sens.d_dp.shape}"
        )
    return None


def _check_backlog(p: DispatchProblem) -> str | None:
    if p.flex_backlog0_kwh.shape == p.flex_backlog_max_kwh.shape and (
        p.flex_backlog0_kwh > p.flex_backlog_max_kwh + 1e-9
    ).any():
        return "flex_backlog0_kwh must not exceed flex_backlog_max_kwh"
    return None


def _checks(t: int, b: int, s: int, g: int, f: int) -> list[Check]:
    return [
        _scalar_check("dt_h", _NONNEG, positive=True),
        _array_check("e_kwh", (b,), "one per battery", _NONNEG),
        lambda p: "e_kwh must be positive" if p.e_kwh.shape == (b,) and (p.e_kwh <= 0).any() else None,
        _array_check("p_max_kw", (b,), "one per battery", _NONNEG),
        _array_check("eta_charge", (b,), "one per battery", _NONNEG),
        _array_check("eta_discharge", (b,), "one per battery", _NONNEG),
        _check_efficiency,
        _array_check("soc_min", (b,), "one per battery", _FRACTION),
        _array_check("soc_max", (b,), "one per battery", _FRACTION),
        _array_check("soc0", (b,), "one per battery", _FRACTION),
        _array_check("degradation_eur_per_kwh", (b,), "one per battery", _NONNEG),
        _check_terminal,
        _array_check("net_load_kw", (t,), "one per step", _ANY),
        _array_check("import_price", (t,), "one per step", _ANY),
        _array_check("export_price", (t,), "one per step", _ANY),
        _scalar_check("demand_charge_eur_per_kw", _NONNEG),
        _scalar_check("peak_so_far_kw", _NONNEG),
        _array_check("site_net_load_kw", (t, s), "steps × sites", _ANY),
        _site_index("site_of_battery", (b,), s),
        _array_check("site_demand_charge_eur_per_kw", (s,), "one per site", _NONNEG),
        _array_check("site_peak_so_far_kw", (s,), "one per site", _NONNEG),
        _array_check("gen_available_kw", (t, g), "steps × generators", _NONNEG),
        _site_index("site_of_gen", (g,), s),
        _scalar_check("curtailment_penalty_eur_per_kwh", _NONNEG),
        _array_check("flex_defer_max_kw", (t, f), "steps × flexible loads", _NONNEG),
        _array_check("flex_catch_up_kw", (f,), "one per flexible load", _NONNEG),
        _array_check("flex_backlog_max_kwh", (f,), "one per flexible load", _NONNEG),
        _array_check("flex_backlog0_kwh", (f,), "one per flexible load", _NONNEG),
        _check_backlog,
        _site_index("site_of_flex", (f,), s),
        _scalar_check("flex_penalty_eur_per_kwh", _NONNEG),
        _check_sensitivity,
    ]
