"""The live image keeps the newest value per (device, quantity), whatever the order readings arrive in."""

from __future__ import annotations

import numpy as np

from gridmesh.model.elements import Battery, Bus, ExternalGrid, Generator, Line, Load
from gridmesh.model.kinds import GeneratorKind
from gridmesh.model.network import Network
from gridmesh.services.historian.base import ReadingRows
from gridmesh.services.live_image import LiveImage
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of, device_id


def _network() -> Network:
    return Network.from_elements(
        [
            Bus(id="b0", vn_kv=0.4),
            Bus(id="b1", vn_kv=0.4),
            Line(id="l", from_bus="b0", to_bus="b1", length_km=0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.1, max_i_a=200),
            ExternalGrid(id="g", bus="b0"),
            Load(id="house 1", bus="b1", p_kw=3),
            Load(id="house 2", bus="b1", p_kw=4),
            Generator(id="pv", bus="b1", kind=GeneratorKind.PV, p_kw=5),
        ]
    )


def _rows(entries: list[tuple[str, str, str, float, int]]) -> ReadingRows:
    n = len(entries)
    return ReadingRows(
        device=[e[0] for e in entries],
        seq=np.arange(n, dtype=np.int64),
        ts_ns=np.array([e[4] for e in entries], dtype=np.int64),
        quantity=[e[1] for e in entries],
        phase=[e[2] for e in entries],
        value=np.array([e[3] for e in entries]),
        quality=["good"] * n,
        received_ns=np.zeros(n, dtype=np.int64),
    )


def test_newest_value_wins_within_and_across_batches() -> None:
    image = LiveImage(catalogue_of(_network()))
    m1, m2 = device_id(DeviceKind.METER, "house 1"), device_id(DeviceKind.METER, "house 2")
    taken = image.update(_rows([(m1, "TotW", "", 100.0, 20), (m1, "TotW", "", 50.0, 10), (m2, "TotW", "", 7.0, 5)]))
    assert taken == 2
    meters = image.series(DeviceKind.METER, "TotW")
    assert meters.elements == ("house 1", "house 2")
    np.testing.assert_array_equal(meters.value, [100.0, 7.0])
    np.testing.assert_array_equal(meters.ts_ns, [20, 5])
    # An older reading arriving late does not overwrite; a newer one does.
    assert image.update(_rows([(m1, "TotW", "", 1.0, 15), (m2, "TotW", "", 8.0, 6)])) == 1
    np.testing.assert_array_equal(image.series(DeviceKind.METER, "TotW").value, [100.0, 8.0])


def test_unknown_series_and_phase_readings_are_ignored() -> None:
    image = LiveImage(catalogue_of(_network()))
    pv = device_id(DeviceKind.INVERTER, "pv")
    taken = image.update(
        _rows([("meter-nobody", "TotW", "", 1.0, 1), (pv, "Hz", "", 50.0, 1), (pv, "TotW", "A", 2.0, 1)])
    )
    assert taken == 0
    assert np.isnan(image.series(DeviceKind.INVERTER, "TotW").value).all()
    # A quantity no device of the kind reports gives NaN for all, not an error.
    assert np.isnan(image.series(DeviceKind.METER, "SocPct").value).all()


def test_overlay_puts_fresh_readings_over_the_fallback() -> None:
    image = LiveImage(catalogue_of(_network()))
    m1, m2 = device_id(DeviceKind.METER, "house 1"), device_id(DeviceKind.METER, "house 2")
    image.update(_rows([(m1, "TotW", "", 3000.0, 100), (m2, "TotW", "", 4500.0, 10)]))
    order = ["house 2", "nobody", "house 1"]  # any element order; unknown elements keep their fallback
    kw, kept = image.overlay(DeviceKind.METER, "TotW", order, np.array([1.0, 2.0, 3.0]), scale=1e-3)
    np.testing.assert_array_equal(kw, [4.5, 2.0, 3.0])
    assert kept == 1
    fresh_only, kept = image.overlay(
        DeviceKind.METER, "TotW", order, np.array([1.0, 2.0, 9.0]), scale=1e-3, fresh_after_ns=50
    )
    np.testing.assert_array_equal(fresh_only, [1.0, 2.0, 3.0])  # house 2's reading (ts 10) is too old
    assert kept == 2


def test_a_quantity_left_out_of_the_latest_report_no_longer_counts() -> None:
    network = Network.from_elements(
        [*_network().elements(), Battery(id="bess", bus="b1", p_kw=10, e_kwh=20, grid_forming=True)]
    )
    image = LiveImage(catalogue_of(network))
    bess = device_id(DeviceKind.BATTERY, "bess")
    image.update(_rows([(bess, "TotW", "", 4000.0, 10), (bess, "Hz", "", 49.8, 10)]))
    np.testing.assert_array_equal(image.reported_with(DeviceKind.BATTERY, "Hz").value, [49.8])
    image.update(_rows([(bess, "TotW", "", 0.0, 20)]))  # without supply: no frequency in the report
    assert np.isnan(image.reported_with(DeviceKind.BATTERY, "Hz").value).all()
    assert image.series(DeviceKind.BATTERY, "Hz").value[0] == 49.8  # the plain series keeps the last value
