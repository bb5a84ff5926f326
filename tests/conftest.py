"""Shared fixtures: SimBench grids are read once per session (2–3 s each) and handed out as copies."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pandapower as pp
import pytest
import simbench as sb

from support.brokers import PrivateBroker


@cache
def _simbench(code: str) -> pp.pandapowerNet:
    return sb.get_simbench_net(code)


@pytest.fixture(scope="session")
def simbench_net() -> Callable[[str], pp.pandapowerNet]:
    """``simbench_net(code)``: a fresh deep copy of a SimBench grid (tests may run power flows on it)."""

    def load(code: str) -> pp.pandapowerNet:
        return copy.deepcopy(_simbench(code))

    return load


SMALL_MICROGRID = """
name: small-microgrid
base: {simbench: 1-LV-rural1--0-sw}
profiles: {simbench: 1-LV-rural1--0-sw}
time: {start: 2016-06-01, days: 2}
elements:
  generators:
    - {id: extra-pv, bus: LV1.101 Bus 7, kind: pv, p_kw: 60, profile: PV5}
  batteries:
    - {id: bess, bus: LV1.101 Bus 4, e_kwh: 80, p_kw: 40, eta_charge: 0.95, eta_discharge: 0.93}
  ev_chargers:
    - {id: ev, bus: LV1.101 Bus 11, p_kw: 11, connectors: 2}
  sites:
    - {id: mg, pcc: LV1.101 Switch 9, owner: coop}
    - {id: vpp, level: 3, members: [mg], assets: [extra-pv]}
"""


@pytest.fixture(scope="session")
def small_scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL_MICROGRID)
    return path


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A Mosquitto of the test's own (persistence on), which the test may stop and restart."""
    directory = tmp_path / "broker"
    directory.mkdir()
    broker = PrivateBroker(directory)
    broker.start()
    yield broker
    broker.stop()
