"""Both protocol versions end to end over real sockets: boot → authorize → transaction → meter values →
charging profile obeyed → remote stop; and a station that drops its connection mid-transaction loses no
meter value. The numbers are checked against the station's own record and against P·Δt by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from gridmesh.adapters.ocpp import (
    CentralConfig,
    CentralSystem,
    EventKind,
    MemorySink,
    PushOutcome,
    SessionPlan,
    StationConfig,
    make_station,
)
from support.brokers import wait_for

PERIOD_S = 0.03
P_MAX_KW = 11.0
LIMIT_KW = 3.7
SPEED = 60.0  # a wall second is a simulated minute: energy moves visibly
VERSIONS = {"2.0.1": "cp-201", "1.6": "cp-16"}
LONG_VISIT = SessionPlan(0.0, 1e9, 1e6, "tok-ok")


def _stored_samples(sink, charger):  # (ts, register Wh, power W) per sample, in arrival order
    rows = [r for r in sink.rows if r.charger_id == charger]
    energy = [(r.ts, r.value) for r in rows if r.measurand == "Energy.Active.Import.Register"]
    power = [r.value for r in rows if r.measurand == "Power.Active.Import"]
    assert len(energy) == len(power)
    return [(ts, e, p) for (ts, e), p in zip(energy, power, strict=True)]


def _station_samples(station):
    return [(s.ts, s.register_wh, s.power_w) for s in station.samples]


def _assert_same(stored, generated):
    assert [s[0] for s in stored] == [g[0] for g in generated]  # every sample, once, in order
    for (_, e1, p1), (_, e2, p2) in zip(stored, generated, strict=True):
        assert e1 == pytest.approx(e2, abs=1e-5)  # 1.6 sends text with 6 decimals
        assert p1 == pytest.approx(p2, abs=1e-5)


def _assert_energy_follows_power(samples):
    """ΔE between samples = P·Δt (by hand: W × s × speed / 3600 = Wh); where P changed between two samples
    (a profile arrived in between), ΔE lies between the two powers' energies."""
    for (t1, e1, p1), (t2, e2, p2) in itertools.pairwise(samples):
        dt_h = (t2 - t1).total_seconds() * SPEED / 3600.0
        lo, hi = min(p1, p2) * dt_h, max(p1, p2) * dt_h
        assert lo - 1e-4 <= e2 - e1 <= hi + 1e-4
        if p1 == p2:
            assert e2 - e1 == pytest.approx(p1 * dt_h, abs=1e-4)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_session_end_to_end(version, centre, fleet, credentials):
    charger = VERSIONS[version]
    system, sink = centre(accepted_tokens=frozenset({"tok-ok"}))
    config = StationConfig(
        charger, system.url, password=credentials.passwords[charger], meter_period_s=PERIOD_S, speed=SPEED
    )
    station = make_station(version, config, [LONG_VISIT])
    fleet([station])

    wait_for(lambda: system.state.open_transaction(charger) is not None, 10, "the transaction to start")
    wait_for(lambda: len(_stored_samples(sink, charger)) >= 4, 10, "meter values at full power")
    sent_at = datetime.now(UTC)
    report = system.push_profiles({charger: LIMIT_KW})
    pushed_at = datetime.now(UTC)
    assert report.results[charger].outcome is PushOutcome.ACCEPTED
    wait_for(lambda: sum(s[0] > pushed_at for s in _stored_samples(sink, charger)) >= 4, 10, "limited samples")
    tx = system.state.open_transaction(charger)
    assert tx is not None
    assert system.remote_stop(charger, tx.transaction_id) == "Accepted"
    wait_for(lambda: system.state.open_transaction(charger) is None, 10, "the transaction to end")
    wait_for(lambda: station.pending == 0, 10, "the station's outbox to empty")

    # Boot, authorization and connector status reached the centre.
    events = sink.events
    boot = next(e for e in events if e.kind is EventKind.BOOT)
    assert (boot.detail["vendor"], boot.detail["model"]) == ("gridmesh", "sim-ac")
    assert any(e.kind is EventKind.AUTHORIZE and e.detail == {"id_token": "tok-ok", "accepted": True} for e in events)
    statuses = [e.detail["status"] for e in events if e.kind is EventKind.STATUS]
    assert statuses[-1] == "Available"  # after the stop
    assert ("Occupied" if version == "2.0.1" else "Charging") in statuses

    # Every sample stored once, in order, with the values the station measured.
    stored, generated = _stored_samples(sink, charger), _station_samples(station)
    _assert_same(stored, generated)
    assert sink.row_count() == station.values_generated == station.values_acknowledged
    assert station.refused == []  # the centre found every message the station sent valid against the schemas

    # The profile was obeyed: full power before the push, at most the limit after it was acknowledged.
    before = [p for ts, _, p in stored if ts < sent_at]
    after = [p for ts, _, p in stored if ts > pushed_at]
    assert before and all(p == pytest.approx(P_MAX_KW * 1000) for p in before[1:])
    assert after[:-1] and all(p == pytest.approx(LIMIT_KW * 1000) for p in after[:-1])
    assert after[-1] == 0.0  # the transaction's last sample, after the stop
    _assert_energy_follows_power(stored)

    # The centre's transaction agrees with the energy the station delivered.
    (done,) = [t for t in system.state.transactions() if t.charger_id == charger]
    assert done.stop_reason == "Remote" and done.id_token == "tok-ok" and done.stopped is not None
    (delivered,) = station.finished.values()
    assert done.energy_kwh == pytest.approx(delivered, abs=1e-8)
    assert delivered == pytest.approx((stored[-1][1] - stored[0][1]) / 1000.0, abs=1e-8)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_rejected_token_starts_nothing(version, centre, fleet, credentials):
    charger = VERSIONS[version]
    system, sink = centre(accepted_tokens=frozenset({"tok-ok"}))
    config = StationConfig(charger, system.url, password=credentials.passwords[charger], meter_period_s=PERIOD_S)
    station = make_station(version, config, [SessionPlan(0.0, 1e9, 1e6, "stolen-card")])
    fleet([station])
    wait_for(lambda: station.rejected_tokens == ["stolen-card"], 10, "the token to be refused")
    assert system.state.transactions() == []
    assert sink.row_count() == 0


@pytest.mark.parametrize("version", list(VERSIONS))
def test_reconnect_mid_transaction_loses_no_meter_value(version, centre, fleet, credentials):
    charger = VERSIONS[version]
    system, sink = centre()
    config = StationConfig(
        charger,
        system.url,
        password=credentials.passwords[charger],
        meter_period_s=PERIOD_S,
        speed=SPEED,
        reconnect_min_s=0.05,
    )
    station = make_station(version, config, [LONG_VISIT])
    runner = fleet([station])
    wait_for(lambda: len(_stored_samples(sink, charger)) >= 3, 10, "meter values before the drop")
    dropped_at = datetime.now(UTC)
    runner.call(lambda: station.go_offline(0.4))
    wait_for(lambda: station.connections >= 2, 10, "the station to reconnect")
    back_at = datetime.now(UTC)
    stored_at_return = len(_stored_samples(sink, charger))
    wait_for(lambda: len(_stored_samples(sink, charger)) >= stored_at_return + 5, 10, "meter values after it")
    tx = system.state.open_transaction(charger)
    assert tx is not None
    assert system.remote_stop(charger, tx.transaction_id) == "Accepted"
    wait_for(lambda: system.state.open_transaction(charger) is None and station.pending == 0, 10, "the stop")

    stored = _stored_samples(sink, charger)
    _assert_same(stored, _station_samples(station))
    _assert_energy_follows_power(stored)
    assert sum(dropped_at < ts < back_at for ts, _, _ in stored) >= 5  # queued while offline, delivered later
    # One transaction, resumed rather than restarted, holds every row.
    (only,) = system.state.transactions()
    assert {r.transaction_id for r in sink.rows} == {only.transaction_id}
    assert only.energy_kwh == pytest.approx(next(iter(station.finished.values())), abs=1e-8)
    if version == "2.0.1":
        assert only.offline_updates >= 1  # TransactionEvent Updated with offline=true


class FailingSink(MemorySink):
    """A historian that is down for its first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def meter_values(self, rows):
        if self.failures > 0:
            self.failures -= 1
            raise OSError("historian unavailable")
        super().meter_values(rows)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_a_failing_sink_loses_nothing(version, registry, credentials, fleet):
    """The centre answers InternalError when it cannot store; the station offers the reading again."""
    charger = VERSIONS[version]
    sink = FailingSink(failures=3)
    system = CentralSystem(registry, sink, CentralConfig(passwords=credentials.store)).start()
    try:
        config = StationConfig(charger, system.url, password=credentials.passwords[charger], meter_period_s=PERIOD_S)
        station = make_station(version, config, [LONG_VISIT])
        runner = fleet([station])
        wait_for(lambda: sink.row_count() >= 20, 10, "meter values after the sink recovered")
        runner.call(station.stop)
        wait_for(lambda: station.pending == 0 and not station.online, 10, "the station to drain and stop")
    finally:
        system.stop()
    assert sink.failures == 0 and station.refused == []
    _assert_same(_stored_samples(sink, charger), _station_samples(station))
