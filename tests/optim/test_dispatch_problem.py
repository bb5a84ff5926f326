"""Dispatch problems are checked on construction: every malformed field is named in one ValueError."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from gridmesh.optim import DispatchProblem
from gridmesh.physics.sensitivity import Sensitivity


def fields(**overrides: Any) -> dict[str, Any]:
    """Two batteries, three steps, one site, one generator: a valid problem unless overridden."""
    base: dict[str, Any] = {
        "dt_h": 0.25,
        "e_kwh": np.array([100.0, 50.0]),
        "p_max_kw": np.array([50.0, 25.0]),
        "eta_charge": np.array([0.95, 0.95]),
        "eta_discharge": np.array([0.95, 0.95]),
        "soc_min": np.array([0.1, 0.1]),
        "soc_max": np.array([0.9, 0.9]),
        "soc0": np.array([0.5, 0.5]),
        "net_load_kw": np.array([10.0, 20.0, 30.0]),
        "import_price": np.array([0.2, 0.3, 0.2]),
        "export_price": np.array([0.05, 0.05, 0.05]),
        "site_net_load_kw": np.array([[1.0], [2.0], [3.0]]),
        "site_of_battery": np.array([0, -1]),
        "site_demand_charge_eur_per_kw": np.array([5.0]),
        "gen_available_kw": np.array([[0.0], [5.0], [1.0]]),
        "site_of_gen": np.array([0]),
    }
    base.update(overrides)
    return base


def test_valid_problem_fills_defaults_and_freezes_arrays() -> None:
    p = DispatchProblem(**fields())
    assert (p.steps, p.n_batteries, p.n_sites, p.n_generators) == (3, 2, 1, 1)
    np.testing.assert_array_equal(p.degradation_eur_per_kwh, [0.0, 0.0])
    np.testing.assert_array_equal(p.site_peak_so_far_kw, [0.0])
    with pytest.raises(ValueError, match="read-only"):
        p.soc0[0] = 0.7


def test_optional_groups_may_be_left_out() -> None:
    f = fields()
    for name in (
        "site_net_load_kw",
        "site_of_battery",
        "site_demand_charge_eur_per_kw",
        "gen_available_kw",
        "site_of_gen",
    ):
        del f[name]
    p = DispatchProblem(**f)
    assert (p.n_sites, p.n_generators) == (0, 0)
    assert p.site_net_load_kw.shape == (3, 0) and p.gen_available_kw.shape == (3, 0)
    np.testing.assert_array_equal(p.site_of_battery, [-1, -1])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"p_max_kw": np.array([50.0, 25.0, 10.0])}, "p_max_kw must have shape (2,) (one per battery), got (3,)"),
        ({"import_price": np.array([0.2, 0.3])}, "import_price must have shape (3,) (one per step), got (2,)"),
        ({"site_net_load_kw": np.zeros((3, 2))}, "site_net_load_kw must have shape (3, 1) (steps × sites), got (3, 2)"),
        ({"gen_available_kw": np.zeros((2, 1))}, "gen_available_kw must have shape (3, 1)"),
        ({"export_price": np.array([0.05, np.nan, 0.05])}, "export_price must be finite"),
        ({"e_kwh": np.array([100.0, 0.0])}, "e_kwh must be positive"),
        ({"eta_charge": np.array([0.95, 1.2])}, "eta_charge must lie in (0, 1]"),
        ({"soc0": np.array([0.5, 1.5])}, "soc0 must be a fraction in [0, 1]"),
        ({"dt_h": 0.0}, "dt_h must be positive, got 0.0"),
        ({"demand_charge_eur_per_kw": -1.0}, "demand_charge_eur_per_kw must be non-negative, got -1.0"),
        ({"site_of_battery": np.array([0, 3])}, "site_of_battery must be site indices in [0, 1) or -1 for none"),
        ({"soc_terminal": np.array([0.5])}, "soc_terminal must have shape (2,) (one per battery), got (1,)"),
        ({"gen_available_kw": np.array([[0.0], [-5.0], [1.0]])}, "gen_available_kw must be non-negative"),
    ],
)
def test_malformed_fields_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DispatchProblem(**fields(**overrides))


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        DispatchProblem(
            **fields(p_max_kw=np.array([1.0]), import_price=np.array([0.1]), curtailment_penalty_eur_per_kwh=-2.0)
        )
    text = str(info.value)
    assert "p_max_kw" in text and "import_price" in text and "curtailment_penalty_eur_per_kwh" in text


def test_sensitivity_must_match_the_problem() -> None:
    sens = Sensitivity(np.ones((3, 1)), np.zeros((1, 2)), np.array([0.9]), np.array([1.1]), ("v bus 1",))
    with pytest.raises(ValueError, match=re.escape("sensitivity must cover 3 steps and 3 injections")):
        DispatchProblem(**fields(sensitivity=sens))


def test_contradicting_limits_are_not_malformed() -> None:
    # soc_min > soc_max is a request that cannot be met, answered by solve_dispatch, not a malformed input.
    p = DispatchProblem(**fields(soc_min=np.array([0.8, 0.1]), soc_max=np.array([0.2, 0.9])))
    assert p.soc_min[0] > p.soc_max[0]
