"""Unit conversion and pseudo-measurement filling."""

from __future__ import annotations

import numpy as np
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Generator, Load
from gridmesh.model.kinds import GeneratorKind
from gridmesh.model.network import Network
from gridmesh.physics.measurement_set import appliance_order, pseudo_measurements, v_pu_from_phase_volts


def _network() -> Network:
    return Network.from_elements(
        [
            Bus(id="b", vn_kv=0.4),
            ExternalGrid(id="g", bus="b"),
            Load(id="l1", bus="b", p_kw=2.0),
            Load(id="l2", bus="b", p_kw=3.0),
            Generator(id="pv", bus="b", kind=GeneratorKind.PV, p_kw=5.0),
        ]
    )


def test_phase_volts_to_pu() -> None:
    # 230.94 V phase-to-neutral is 400 V line-to-line: 1 pu on a 0.4 kV bus; 240 V is 1.0392 pu.
    np.testing.assert_allclose(
        v_pu_from_phase_volts(np.array([400 / np.sqrt(3), 240.0]), np.array([0.4, 0.4])), [1.0, 1.03923], rtol=1e-5
    )


def test_pseudo_measurements_fill_only_unmeasured_appliances() -> None:
    network = _network()
    terminal, element = appliance_order(network)
    assert list(element) == ["l1", "l2", "pv"] and list(terminal) == ["load", "load", "generator"]
    pseudo = pseudo_measurements(
        network,
        np.array([2.0, 0.0, 4.0]),
        np.array([0.5, 0.0, 0.0]),
        exclude={"l1"},
        sigma_fraction=0.5,
        sigma_floor_kw=0.1,
    )
    assert list(pseudo.element) == ["l2", "pv"] and pseudo.pseudo.all()
    np.testing.assert_allclose(pseudo.sigma_p_kw, [0.1, 2.0])  # floor for the idle load, half of 4 kW
    np.testing.assert_allclose(pseudo.sigma_q_kvar, [0.1, 0.1])


def test_pseudo_measurements_need_one_value_per_appliance() -> None:
    with pytest.raises(ValueError, match="appliance_order"):
        pseudo_measurements(_network(), np.zeros(2), np.zeros(2))
