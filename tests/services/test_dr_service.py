"""Demand response in the live platform: the centre's VTN and the field's VENs over real HTTPS (mutual TLS) on
localhost: an operator event reaches the microgrid's VEN, is opted in, lowers the site's reported load and is
measured against the modelled baseline; refusals and cancellation through the centre's port; the peak
trigger from the profile forecast."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridmesh.adapters.openadr import Opt, VenFleet
from gridmesh.api.ports import DrEventRequest
from gridmesh.errors import CommandRefused, NotFound
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.services.dr_service import DrService, DrSettings, SiteDemand, SiteModel, start_vens
from support.brokers import wait_for
from support.live import FieldAndCentre

SECOND = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


class Rig(FieldAndCentre):
    """A stepped field (its loads hold still between steps) and the centre with its VTN; the field's VENs."""

    def __init__(self, scenario: Scenario, folder: Path) -> None:
        super().__init__(scenario, folder, start=dt.datetime(2016, 6, 1, 12))
        settings = DrSettings(port=0, poll_s=1.0, interval=SECOND)
        self.dr = DrService(scenario, folder / "keys", clock=self.clock, settings=settings).start()
        self.centre.dr = self.dr
        self.vens: VenFleet
        self.demand: SiteDemand
        self.vens, self.demand = start_vens(scenario, self.field, self.dr.url, folder / "keys", report_interval=SECOND)

    def close(self) -> None:
        self.vens.stop()
        self.dr.stop()
        super().close()


@pytest.fixture(scope="module")
def rig(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(scenario, tmp_path_factory.mktemp("dr"))
    yield rig
    rig.close()


def _soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1 + seconds)


@pytest.mark.slow  # the VTN, the VEN's registration and a 3 s event in real time: about 20 s
def test_an_event_is_opted_in_sheds_and_is_measured(rig: Rig, scenario: Scenario) -> None:
    assert set(rig.dr.vtn.registrations()) == {"mg"}  # one VEN per microgrid; the VPP has none
    base_kw = rig.demand.consumption_kw("mg")
    assert base_kw > 0
    start, seconds = _soon(5), 3
    request = DrEventRequest(sites=["mg"], level=2.0, start=start, duration_minutes=seconds / 60)
    view = rig.centre.create_dr_event(request, "night-shift")
    assert (view.status, view.levels, view.opts) == ("scheduled", {"mg": 2.0}, {"mg": "pending"})

    wait_for(lambda: rig.centre.dr_events()[0].opts["mg"] == "optIn", 15, "the VEN's opt-in")
    end = start + seconds * SECOND
    covered = pd.date_range(start, periods=seconds, freq="s")
    shed_in_grid: list[float] = []

    def stepped() -> bool:  # the field re-solves its present instant: only the shed can change its loads
        solved_after = dt.datetime.now(dt.UTC)  # the step reads the shed at this instant or later
        rig.field.step(0.0)
        assert rig.field.last_state is not None
        shed_in_grid.append(base_kw - rig.demand.consumption_kw("mg"))
        return bool(covered.isin(rig.dr.vtn.readings("mg").index).all() and solved_after >= end)

    wait_for(stepped, 20, "telemetry over the whole event")
    readings = rig.dr.vtn.readings("mg")
    assert readings[covered].tolist() == pytest.approx([base_kw - 2.0] * seconds)  # shed while active
    assert max(shed_in_grid) == pytest.approx(2.0)  # the site's loads in the field's power flow answered
    assert shed_in_grid[-1] == pytest.approx(0.0, abs=1e-9)  # and came back after the event
    assert readings[readings.index < start].to_numpy() == pytest.approx(base_kw)  # untouched before

    # The modelled "10 of 10" baseline by hand: the site's profile load at the same grid instant on the ten
    # most recent weekdays before the event's (wall-clock) day.
    model = SiteModel(scenario)
    grid_now = rig.clock.now()
    back = [d for d in range(1, 21) if (start - dt.timedelta(days=d)).weekday() < 5][:10]
    baseline = float(np.mean([model.kw(grid_now - dt.timedelta(days=d))["mg"] for d in back]))
    (result,) = rig.centre.dr_results()
    assert (result.event_id, result.opted_in, result.requested_kw) == (view.id, ["mg"], 2.0)
    (ven,) = result.vens
    expected_kwh = (baseline - (base_kw - 2.0)) * seconds / 3600
    assert ven.delivered_kwh == pytest.approx(expected_kwh, rel=1e-3, abs=1e-6)
    assert result.delivered_kwh == pytest.approx(expected_kwh, rel=1e-3, abs=1e-6)
    assert rig.centre.dr_events()[0].status == "completed"
    kinds = list(rig.historian.events(kind="dr.event-created")["message"])
    assert kinds == [f"night-shift created DR event {view.id} (LOAD_DISPATCH) for mg"]


def test_bad_events_are_refused_with_the_reason(rig: Rig) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with pytest.raises(CommandRefused, match="in the past"):
        rig.centre.create_dr_event(DrEventRequest(sites=["mg"], level=1.0, start=past, duration_minutes=5), "op")
    with pytest.raises(CommandRefused, match="unknown VEN"):
        rig.centre.create_dr_event(DrEventRequest(levels={"vpp": 1.0}, start=_soon(60), duration_minutes=5), "op")
    with pytest.raises(CommandRefused, match="no sites and level"):
        rig.centre.create_dr_event(DrEventRequest(sites=["mg"], start=_soon(60), duration_minutes=5), "op")
    with pytest.raises(NotFound):
        rig.centre.cancel_dr_event("dr-nothing", "op")


def test_cancelling_reaches_the_site(rig: Rig) -> None:
    start = _soon(3600)  # far enough not to shed during the other tests
    created = rig.centre.create_dr_event(
        DrEventRequest(sites=["mg"], level=1.5, start=start, duration_minutes=10), "op"
    )
    wait_for(
        lambda: any(e.id == created.id and e.opts["mg"] == Opt.IN.value for e in rig.centre.dr_events()),
        15,
        "the opt-in",
    )
    cancelled = rig.centre.cancel_dr_event(created.id, "op")
    assert cancelled.status == "cancelled"

    def told() -> bool:
        live = rig.demand._instructions["mg"]
        return any(i.cancelled and i.event_id.startswith(created.id) for i in live.values())

    wait_for(told, 15, "the cancellation at the VEN")
    assert rig.demand.shed_kw("mg", start + SECOND) == 0.0
    with pytest.raises(CommandRefused, match="already cancelled"):
        rig.centre.cancel_dr_event(created.id, "op")


def test_the_peak_trigger_covers_the_forecast_run_above_the_threshold(rig: Rig) -> None:
    now = rig.clock.now()
    first = pd.Timestamp(now).ceil("15min").to_pydatetime()
    forecast = rig.dr.forecast(first)
    peak = int(np.argmax(forecast.to_numpy()))
    threshold = float(forecast.iloc[peak]) - 1.0
    above = forecast.to_numpy() > threshold
    lo, hi = peak, peak + 1  # the run of intervals above the threshold around the peak
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < above.size and above[hi]:
        hi += 1
    rig.dr.settings = DrSettings(port=0, poll_s=1.0, interval=SECOND, threshold_kw=threshold)
    created = [e for e in rig.dr.check_peaks() if e.event_id == f"peak-{forecast.index[lo]:%Y%m%dT%H%M}"]
    (event,) = created
    assert sum(event.levels.values()) == pytest.approx(1.0)  # the run's largest excess over the threshold
    assert event.duration.total_seconds() == pytest.approx(900.0 * (hi - lo), abs=1.0)  # speed 1
    assert rig.dr.check_peaks() == []  # each run once


def test_events_are_moved_to_whole_vtn_intervals(rig: Rig) -> None:
    start = dt.datetime(2030, 1, 1, 10, 0, 0, 300_000, tzinfo=dt.UTC)
    begin, length = rig.dr.aligned(start, dt.timedelta(seconds=2.5))  # the rig's VTN averages per second
    assert (begin, length) == (dt.datetime(2030, 1, 1, 10, 0, 1, tzinfo=dt.UTC), dt.timedelta(seconds=2))
    assert rig.dr.aligned(begin, length) == (begin, length)  # already aligned: unchanged
