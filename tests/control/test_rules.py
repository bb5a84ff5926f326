"""Rule-based controllers on frozen windows with hand-checked requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmesh.control.controller import Window
from gridmesh.control.rules import PeakShaving, TimeOfUseArbitrage
from gridmesh.devices.battery import BatteryFleet
from gridmesh.model.network import Network
from gridmesh.model.sites import resolve_sites


def window(net: Network, load: list[float], start: str = "2016-01-01") -> Window:
    steps = len(load)
    return Window(
        net,
        resolve_sites(net),
        pd.date_range(start, periods=steps, freq="15min"),
        0.25,
        np.array(load)[:, None],
        np.zeros((steps, 0)),
        np.zeros((steps, 0)),
        BatteryFleet.of(list(net.batteries.values())),
    )


def test_peak_shaving_discharges_above_and_refills_below_the_threshold(microgrid: Network) -> None:
    rule = PeakShaving(fraction=0.5)
    requests = rule.plan(window(microgrid, [10.0, 20.0, 4.0])).setpoint_kw[:, 0]
    # first window: threshold 0.5 × its first-day peak (20) = 10
    assert requests == pytest.approx([0.0, 10.0, -6.0])
    later = rule.plan(window(microgrid, [30.0])).setpoint_kw[:, 0]
    assert later == pytest.approx([30.0 - 0.5 * 20.0])  # causal: the 30 kW peak was not seen before


def test_peak_shaving_fraction_checked() -> None:
    with pytest.raises(ValueError, match="fraction"):
        PeakShaving(fraction=0.0)


def test_tou_charges_off_peak_and_covers_load_at_peak(microgrid: Network) -> None:
    w = window(microgrid, [3.0] * 96)
    requests = TimeOfUseArbitrage().plan(w).setpoint_kw[:, 0]
    hours = w.times.hour
    assert np.all(requests[hours < 6] == -5.0)  # full charge power in the cheap band
    assert np.all(requests[(hours >= 17) & (hours < 21)] == 3.0)  # the site's own load, no export
    assert np.all(np.isnan(requests[(hours >= 6) & (hours < 17)]))
