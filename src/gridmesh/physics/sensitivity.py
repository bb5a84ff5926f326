"""Linearised power-flow sensitivities: how monitored voltages and branch loadings move per kW injected.

The dispatch optimiser cannot run a power flow inside a linear programme; it uses these instead. A
:class:`Sensitivity` holds, for M monitored quantities, their value at every step without any dispatch
(``base``), the change per kW of extra injection of each controllable element (``d_dp``) and their limits.
:func:`voltage_sensitivity` computes one by finite differences in a single power-grid-model batch. The
linearisation is local: plans made with it are to be checked afterwards by the full power flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gridmesh.model.network import Network
from gridmesh.physics.powerflow import FloatArray, Injections, PowerFlow


@dataclass(frozen=True)
class Sensitivity:
    """Monitored quantities (voltages in pu, loadings as a fraction of rating) around an operating point.

    Attributes:
        base: ``(steps, M)`` value of each quantity at each step with batteries idle and nothing curtailed.
        d_dp: ``(M, K)`` change of each quantity per kW of extra injection of each controllable element
            (batteries first, then generators; generator convention: discharging or producing is positive).
        lower: ``(M,)`` lower limits (``-inf`` for none).
        upper: ``(M,)`` upper limits (``inf`` for none).
        names: ``M`` labels such as ``"v LV1.101 Bus 7"`` for messages.
    """

    base: FloatArray
    d_dp: FloatArray
    lower: FloatArray
    upper: FloatArray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("base", "d_dp", "lower", "upper"):
            value = np.array(getattr(self, name), dtype=np.float64)
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "names", tuple(self.names))
        m = len(self.names)
        problems = []
        if self.base.ndim != 2 or self.base.shape[1] != m:
            problems.append(f"base must have shape (steps, {m}) (one column per name), got {self.base.shape}")
        if self.d_dp.ndim != 2 or self.d_dp.shape[0] != m:
            problems.append(f"d_dp must have shape ({m}, inputs) (one row per name), got {self.d_dp.shape}")
        for name in ("lower", "upper"):
            if getattr(self, name).shape != (m,):
                problems.append(f"{name} must have shape ({m},) (one per name), got {getattr(self, name).shape}")
        for name in ("base", "d_dp"):
            if not np.isfinite(getattr(self, name)).all():
                problems.append(f"{name} must be finite")
        if np.isnan(self.lower).any() or np.isnan(self.upper).any():
            problems.append("lower and upper must not be NaN (use -inf or inf for no limit)")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def steps(self) -> int:
        return int(self.base.shape[0])

    @property
    def size(self) -> int:
        """Number of monitored quantities (M)."""
        return len(self.names)

    @property
    def inputs(self) -> int:
        """Number of controllable injections (K)."""
        return int(self.d_dp.shape[1])

    def predict(self, injection_kw: FloatArray) -> FloatArray:
        """Linear estimate ``(steps, M)`` of the monitored quantities for extra injections ``(steps, K)`` in kW."""
        predicted: FloatArray = self.base + np.asarray(injection_kw, dtype=np.float64) @ self.d_dp.T
        return predicted


def _operating_point(injections: Injections, at_step: int | None) -> Injections:
    if at_step is None:
        return Injections(*(np.asarray(a).mean(axis=0, keepdims=True) for a in _arrays(injections)))
    if not 0 <= at_step < injections.steps:
        raise ValueError(f"at_step must lie in [0, {injections.steps}), got {at_step}")
    return injections.rows(np.array([at_step], dtype=np.int64))


def _arrays(injections: Injections) -> tuple[FloatArray, ...]:
    return (
        injections.load_p_kw,
        injections.load_q_kvar,
        injections.gen_p_kw,
        injections.gen_q_kvar,
        injections.ev_p_kw,
        injections.battery_p_kw,
    )


def _indices(name: str, values: Sequence[int] | None, count: int) -> npt.NDArray[np.int64]:
    index = np.arange(count, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= count):
        raise ValueError(f"{name} must be positions in [0, {count}) of the power-flow model, got {index.tolist()}")
    return index


def voltage_sensitivity(
    engine: PowerFlow,
    network: Network,
    injections: Injections,
    *,
    buses: Sequence[int],
    lines: Sequence[int] = (),
    batteries: Sequence[int] | None = None,
    generators: Sequence[int] | None = None,
    delta_kw: float = 10.0,
    at_step: int | None = None,
    line_quantity: Literal["p_kw", "loading"] = "p_kw",
    max_loading: float = 1.0,
    generator_groups: FloatArray | None = None,
    load_groups: FloatArray | None = None,
) -> Sensitivity:
    """Voltage (and optionally line loading) sensitivities by finite differences in one batch.

    The batch holds every step of ``injections`` (the ``base``), the operating point, and one copy of the
    operating point per controllable element with that element's injection raised by ``delta_kw``.

    Args:
        engine: a power-flow model of ``network`` (voltages and line loadings among its outputs).
        network: gives the voltage limits (each bus's ``v_min_pu``/``v_max_pu``).
        injections: the forecast without dispatch, ``(steps, n)`` per kind.
        buses: positions in ``engine.index.buses`` whose voltage is monitored.
        lines: positions in ``engine.index.lines`` whose flow is monitored, as ``line_quantity`` says.
        batteries: positions in ``engine.index.batteries`` that are controllable (default: all).
        generators: positions in ``engine.index.generators`` that can be curtailed (default: all).
        delta_kw: the finite-difference step, kW.
        at_step: linearise around this step; ``None``: around the mean injection of the window.
        line_quantity: ``"p_kw"`` (default): the active power entering the line at its from end, kW,
            within ``±max_loading·√3·vn·i_max`` (reactive flow neglected: keep a margin in ``max_loading``).
            It is nearly linear in the injections, in both directions. ``"loading"``: current over rating,
            upper limit ``max_loading``; a magnitude, so its linearisation is poor on lightly loaded lines
            and wrong across a reversal of the flow.
        max_loading: the fraction of the thermal rating allowed on monitored lines.
        generator_groups: ``(K, generators)`` weights: one more input per row, the generators raised together
            by ``weights·delta_kw`` (a group a planner dispatches as one, e.g. a microgrid's PV).
        load_groups: ``(K, loads)`` weights: one more input per row, the loads *reduced* together (injection
            convention: less consumption is positive injection).

    The inputs (columns of ``d_dp``) are the batteries, the generators, the generator groups, then the
    load groups.

    Raises:
        ValueError: a position out of range, a non-positive ``delta_kw`` or a monitored bus not energized.
        NotConverged: the power flow failed for a scenario of the batch.
    """
    if not delta_kw > 0:
        raise ValueError(f"delta_kw must be positive, got {delta_kw}")
    if line_quantity not in ("p_kw", "loading"):
        raise ValueError(f"line_quantity must be 'p_kw' or 'loading', got {line_quantity!r}")
    index = engine.index
    bus_pos = _indices("buses", buses, len(index.buses))
    line_pos = _indices("lines", lines, len(index.lines))
    bat_pos = _indices("batteries", batteries, len(index.batteries))
    gen_pos = _indices("generators", generators, len(index.generators))
    gen_groups = np.zeros((0, len(index.generators))) if generator_groups is None else np.asarray(generator_groups)
    load_weights = np.zeros((0, len(index.loads))) if load_groups is None else np.asarray(load_groups)
    if gen_groups.shape[1:] != (len(index.generators),) or load_weights.shape[1:] != (len(index.loads),):
        raise ValueError(
            f"generator_groups must have shape (K, {len(index.generators)}) and load_groups (K, {len(index.loads)}),"
            f" got {gen_groups.shape} and {load_weights.shape}"
        )
    steps, nb, ng = injections.steps, bat_pos.size, gen_pos.size
    k = nb + ng + len(gen_groups) + len(load_weights)

    point = _operating_point(injections, at_step)
    stacked = [
        np.vstack([np.asarray(a, dtype=np.float64), np.repeat(p, k + 1, axis=0)])
        for a, p in zip(_arrays(injections), _arrays(point), strict=True)
    ]
    load_p, load_q, gen_p, gen_q, ev_p, bat_p = stacked
    first = steps + 1  # row of the first perturbed scenario
    bat_p[first + np.arange(nb), bat_pos] += delta_kw
    gen_p[first + nb + np.arange(ng), gen_pos] += delta_kw
    grouped = first + nb + ng
    gen_p[grouped : grouped + len(gen_groups)] += delta_kw * gen_groups
    grouped += len(gen_groups)
    load_p[grouped : grouped + len(load_weights)] -= delta_kw * load_weights
    result = engine.run(Injections(load_p, load_q, gen_p, gen_q, ev_p, bat_p)).raise_on_failure()

    flows = result.line_p_from_kw if line_quantity == "p_kw" else result.line_loading
    values = np.hstack([result.v_pu[:, bus_pos], flows[:, line_pos]])
    if np.isnan(result.v_pu[:, bus_pos]).any():
        dead = [index.buses[b] for b in bus_pos[np.isnan(result.v_pu[:, bus_pos]).any(axis=0)]]
        raise ValueError(f"buses must be energized to be monitored; not energized: {', '.join(dead)}")
    d_dp = ((values[first:] - values[steps]) / delta_kw).T
    bus_ids = [index.buses[b] for b in bus_pos]
    line_ids = [index.lines[x] for x in line_pos]
    if line_quantity == "p_kw":
        rating = max_loading * np.array([_rating_kw(network, x) for x in line_ids])
        line_lower, line_upper = -rating, rating
    else:
        line_lower, line_upper = np.full(line_pos.size, -np.inf), np.full(line_pos.size, max_loading)
    lower = np.concatenate([[network.buses[b].v_min_pu for b in bus_ids], line_lower])
    upper = np.concatenate([[network.buses[b].v_max_pu for b in bus_ids], line_upper])
    label = "p" if line_quantity == "p_kw" else "loading"
    names = tuple(f"v {b}" for b in bus_ids) + tuple(f"{label} {x}" for x in line_ids)
    return Sensitivity(base=values[:steps], d_dp=d_dp, lower=lower, upper=upper, names=names)


def _rating_kw(network: Network, line_id: str) -> float:
    """Thermal rating of a line as apparent power at nominal voltage, kVA (= kW at unity power factor)."""
    line = network.lines[line_id]
    return float(np.sqrt(3.0) * network.buses[line.from_bus].vn_kv * line.max_i_a * line.parallel)
