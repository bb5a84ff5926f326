"""A virtual power plant's flexible assets as arrays, and the network limits between them.

A VPP pools batteries (charge and discharge within their SOC window) and curtailable generators (down only:
less injection) of several sites and owners. Its *flexibility* is measured against the baseline: batteries
idle and nothing curtailed. An aggregate dispatch ``p`` (kW, generator convention: ``p > 0`` is more
injection, "up") is ``Σ battery power − Σ curtailment``.

Network limits are linear (:class:`~gridmesh.physics.sensitivity.Sensitivity`, batteries then generators),
relaxed step by step to never be tighter than the baseline ("no new violations": the VPP cannot be asked to
fix a violation it did not cause), and limited to the rows some dispatch within the assets' ratings can
reach: the others cannot bind. The envelope (:mod:`gridmesh.optim.vpp_envelope`) and the disaggregation
(:mod:`gridmesh.optim.vpp_disaggregate`) see the same :class:`NetworkRows`, so what the one promises the
other can deliver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gridmesh.physics.sensitivity import Sensitivity

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_BATTERY_FIELDS = ("e_kwh", "p_max_kw", "eta_charge", "eta_discharge", "soc_min", "soc_max", "soc0")
_ARRAY_FIELDS = (*_BATTERY_FIELDS, "degradation_eur_per_kwh", "gen_available_kw")


def _empty() -> FloatArray:
    return np.zeros(0)


@dataclass(frozen=True, kw_only=True)
class VppFleet:
    """The VPP's B batteries and G curtailable generators over T steps of ``dt_h`` hours.

    Battery arrays are ``(B,)`` (energies kWh, powers kW, SOC fractions); ``gen_available_kw`` is the
    forecast output ``(T, G)``; costs are €/kWh of battery throughput (charge or discharge) and €/kWh of
    curtailed energy. ``sensitivity`` covers the T steps and B + G injections (batteries first).
    """

    dt_h: float
    battery_ids: tuple[str, ...]
    e_kwh: FloatArray
    p_max_kw: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    soc0: FloatArray
    degradation_eur_per_kwh: FloatArray = field(default_factory=_empty)
    generator_ids: tuple[str, ...] = ()
    gen_available_kw: FloatArray  # (T, G); (T, 0) for none: it also fixes the horizon T
    curtailment_eur_per_kwh: float = 0.08
    sensitivity: Sensitivity | None = None

    def __post_init__(self) -> None:
        for name in _ARRAY_FIELDS:
            array = np.array(getattr(self, name), dtype=np.float64)
            if name == "degradation_eur_per_kwh" and array.size == 0:
                array = np.zeros(len(self.battery_ids))
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        object.__setattr__(self, "battery_ids", tuple(self.battery_ids))
        object.__setattr__(self, "generator_ids", tuple(self.generator_ids))
        problems = self._problems()
        if problems:
            raise ValueError("invalid VPP fleet: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        b, g = len(self.battery_ids), len(self.generator_ids)
        problems = [
            f"{name} must have shape ({b},) (one per battery), got {getattr(self, name).shape}"
            for name in (*_BATTERY_FIELDS, "degradation_eur_per_kwh")
            if getattr(self, name).shape != (b,)
        ]
        if self.gen_available_kw.ndim != 2 or self.gen_available_kw.shape[1] != g:
            problems.append(f"gen_available_kw must have shape (steps, {g}), got {self.gen_available_kw.shape}")
        if not self.dt_h > 0:
            problems.append(f"dt_h must be positive, got {self.dt_h}")
        for name in (*_BATTERY_FIELDS, "degradation_eur_per_kwh", "gen_available_kw"):
            value = getattr(self, name)
            if not np.isfinite(value).all() or (value < 0).any():
                problems.append(f"{name} must be finite and non-negative")
        if problems:
            return problems
        if (self.e_kwh <= 0).any() or ((self.eta_charge <= 0) | (self.eta_charge > 1)).any():
            problems.append("e_kwh must be positive and eta_charge in (0, 1]")
        if ((self.eta_discharge <= 0) | (self.eta_discharge > 1)).any():
            problems.append("eta_discharge must lie in (0, 1]")
        if ((self.soc_min > self.soc0) | (self.soc0 > self.soc_max) | (self.soc_max > 1)).any():
            bad = [i for i, ok in zip(self.battery_ids, self._soc_ok(), strict=True) if not ok]
            problems.append(f"soc_min ≤ soc0 ≤ soc_max ≤ 1 must hold; not for {', '.join(bad)}")
        if not self.curtailment_eur_per_kwh >= 0:
            problems.append(f"curtailment_eur_per_kwh must be non-negative, got {self.curtailment_eur_per_kwh}")
        sens = self.sensitivity
        if sens is not None and (sens.steps != self.steps or sens.inputs != b + g):
            problems.append(
                f"sensitivity must cover {self.steps} steps and {b + g} injections (batteries then generators), "
                f"got base {sens.base.shape} and d_dp {sens.d_dp.shape}"
            )
        return problems

    def _soc_ok(self) -> npt.NDArray[np.bool_]:
        return (self.soc_min <= self.soc0) & (self.soc0 <= self.soc_max) & (self.soc_max <= 1)

    @property
    def steps(self) -> int:
        return int(self.gen_available_kw.shape[0])

    @property
    def n_batteries(self) -> int:
        return len(self.battery_ids)

    @property
    def n_generators(self) -> int:
        return len(self.generator_ids)


@dataclass(frozen=True)
class NetworkRows:
    """The network limits that can bind, as ``lower ≤ d_dp · injection ≤ upper`` per step.

    ``lower``/``upper`` are ``(T, M)`` headroom around the baseline (``lower ≤ 0 ≤ upper``), ``d_dp`` is
    ``(M, B + G)``; ``names`` label the M rows.
    """

    lower: FloatArray
    upper: FloatArray
    d_dp: FloatArray
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.names)


def network_rows(fleet: VppFleet) -> NetworkRows:
    """The fleet's network limits, relaxed to the baseline step by step and pruned to those that can bind."""
    sens = fleet.sensitivity
    inputs = fleet.n_batteries + fleet.n_generators
    if sens is None or sens.size == 0:
        return NetworkRows(np.zeros((fleet.steps, 0)), np.zeros((fleet.steps, 0)), np.zeros((0, inputs)), ())
    lower = np.minimum(sens.lower, sens.base) - sens.base
    upper = np.maximum(sens.upper, sens.base) - sens.base
    largest = np.concatenate([fleet.p_max_kw, fleet.gen_available_kw.max(axis=0, initial=0.0)])
    reach = np.abs(sens.d_dp) @ largest  # the most any dispatch within ratings moves each quantity
    can_bind = ((reach[None, :] > upper) | (-reach[None, :] < lower)).any(axis=0)
    return NetworkRows(
        lower=lower[:, can_bind],
        upper=upper[:, can_bind],
        d_dp=sens.d_dp[can_bind],
        names=tuple(n for n, keep in zip(sens.names, can_bind, strict=True) if keep),
    )


def participation(fleet: VppFleet) -> FloatArray:
    """Each battery's share of the VPP's storage dispatch in the feasibility proof: its usable energy
    window over the fleet's (batteries without power get none). Sums to 1 (or all zero for no storage)."""
    usable = fleet.e_kwh * (fleet.soc_max - fleet.soc_min) * (fleet.p_max_kw > 0)
    total = usable.sum()
    return usable / total if total > 0 else np.zeros_like(usable)
