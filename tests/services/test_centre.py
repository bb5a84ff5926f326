"""The control centre end to end on the in-process bus: field telemetry → ingest → historian → state
estimation → alarms → API views, and commands back to the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridmesh.errors import CommandRefused, NotFound
from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.model.scenario import Scenario
from gridmesh.physics.measurement_set import v_pu_from_phase_volts
from gridmesh.security.keys import CentreKeyring, FieldKeyring, provision_keyrings
from gridmesh.services.bus import InProcessBus
from gridmesh.services.centre import ControlCentre
from gridmesh.services.field import FieldSimulator
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.telemetry.catalogue import DeviceKind, catalogue_of, device_id
from gridmesh.telemetry.envelope import topic
from support.live import FieldClock

PCC = device_id(DeviceKind.SWITCH, "LV1.101 Switch 9")
BATTERY = device_id(DeviceKind.BATTERY, "bess")
EVERY_MINUTE = dict.fromkeys(DeviceKind, 60.0)


@pytest.fixture(scope="module")
def scenario(small_scenario_file: Path) -> Scenario:
    return read_scenario(small_scenario_file)


@pytest.fixture(scope="module")
def keyrings(scenario: Scenario) -> tuple[FieldKeyring, CentreKeyring]:
    return provision_keyrings(catalogue_of(scenario.network).devices)


class Rig:
    def __init__(self, scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], folder: Path) -> None:
        self.bus = InProcessBus()
        self.historian = EmbeddedHistorian(folder / "historian.duckdb")
        noon = datetime(2016, 6, 1, 12)
        self.field = FieldSimulator(
            scenario, self.bus, keyrings[0], noise=0.0, periods=EVERY_MINUTE, data_dir=folder, start=noon
        )
        clock = FieldClock(self.field)
        self.centre = ControlCentre(scenario, self.historian, self.bus, keyrings[1], clock=clock)

    def step(self, seconds: float = 60.0) -> None:
        assert self.bus.drain()  # commands just sent reach the field before its tick
        self.field.step(seconds)
        assert self.bus.drain()
        self.centre.cycle()
        assert self.bus.drain()

    def close(self) -> None:
        self.bus.close()
        self.historian.close()


@pytest.fixture
def rig(scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(scenario, keyrings, tmp_path)
    yield rig
    rig.close()


def test_the_estimate_reproduces_noise_free_field_physics(rig: Rig, scenario: Scenario) -> None:
    rig.step()
    state = rig.centre.state()
    assert state is not None and state.estimator is not None
    assert state.estimator.observable and state.estimator.j < 1e-3 and not state.estimator.suspects
    # The field's power flow is the truth: the substation meter and every meter's voltage.
    substation = rig.centre.image.series(DeviceKind.SUBSTATION, "TotW")
    assert state.substation_p_kw == pytest.approx(substation.value[0] / 1e3, abs=0.05)
    meters = rig.centre.image.series(DeviceKind.METER, "PhV")
    order = {b.id: i for i, b in enumerate(rig.centre.network().buses)}
    vn = np.array([scenario.network.buses[b].vn_kv for b in meters.buses])
    expected = v_pu_from_phase_volts(meters.value, vn)
    estimated = np.array([state.v_pu[order[b]] for b in meters.buses], dtype=float)
    np.testing.assert_allclose(estimated, expected, atol=2e-4)
    assert rig.centre.alarms(active_only=True) == []
    stored = rig.centre.counters()
    assert stored["accepted_messages"] == len(catalogue_of(scenario.network)) and stored["rejected"] == 0
    assert rig.historian.count() == stored["accepted_readings"]


def test_bad_messages_are_dead_lettered_with_their_reason(rig: Rig) -> None:
    rig.step()
    rig.bus.publish(topic("mg", BATTERY, "telemetry"), b'{"device": "' + BATTERY.encode() + b'", "seq": 1')
    rig.bus.publish(topic("mg", "meter-nobody", "telemetry"), b"\xff" * 10)
    rig.step()
    letters = rig.centre.dead_letters(limit=10, reason=None)
    assert {letter.reason for letter in letters} == {"malformed"}
    assert {letter.topic.split("/")[3] for letter in letters} == {BATTERY, "meter-nobody"}
    assert rig.centre.counters()["rejected:malformed"] == 2


def test_a_command_is_checked_signed_executed_and_acknowledged(rig: Rig) -> None:
    rig.step()
    with pytest.raises(CommandRefused, match="outside its limits"):
        rig.centre.command(BATTERY, "set-power", -90_000.0, "op")
    sent = rig.centre.command(BATTERY, "set-power", -20_000.0, "op")
    assert sent.status == "sent"
    rig.step(30)  # within the command's one-minute lifetime
    record = rig.centre.commands.recent()[0]
    assert (record.seq, record.status, record.reason) == (sent.seq, "done", "")
    rig.step()  # the battery's next report
    assert rig.centre.image.series(DeviceKind.BATTERY, "TotW").value[0] == pytest.approx(-20_000.0)
    kinds = {e.kind for e in rig.centre.events(since=None, kind=None, limit=50)}
    assert {"command-sent", "command-ack"} <= kinds


def test_opening_the_pcc_raises_an_outage_and_islands_the_site_until_it_closes(rig: Rig) -> None:
    rig.step()
    rig.centre.command(PCC, "open", 0.0, "op")
    rig.step()
    rig.step()  # the reported position reaches the estimator's topology on the next cycle
    outages = [a for a in rig.centre.alarms(active_only=True) if a.kind == "outage"]
    assert len(outages) == 1 and "LV1.101" in outages[0].message
    site = {s.site: s for s in rig.centre.state().sites}["mg"]  # type: ignore[union-attr]
    assert site.islanded
    assert site.frequency_hz is None  # no grid-forming battery: the island is dark, nothing measures a frequency
    acknowledged = rig.centre.acknowledge(outages[0].id, "op")
    assert acknowledged.acknowledged_by == "op"
    with pytest.raises(NotFound):
        rig.centre.acknowledge("no-such-alarm", "op")
    rig.centre.command(PCC, "close", 0.0, "op")
    rig.step()
    rig.step()
    assert not [a for a in rig.centre.alarms(active_only=True) if a.kind == "outage"]
    back = {s.site: s for s in rig.centre.state().sites}["mg"]  # type: ignore[union-attr]
    assert not back.islanded and back.frequency_hz == 50.0


def test_history_and_buckets_come_from_the_historian(rig: Rig) -> None:
    for _ in range(5):
        rig.step()
    end = rig.centre.clock.now() + timedelta(seconds=1)
    raw = rig.centre.history(BATTERY, "SocPct", end - timedelta(hours=1), end, None)
    assert len(raw.t) == 5 and raw.unit == "%"
    buckets = rig.centre.substation_history(end - timedelta(hours=1), end, timedelta(minutes=10))
    assert buckets.unit == "kW" and sum(1 for _ in buckets.t) >= 1
    assert all(lo <= v <= hi for lo, v, hi in zip(buckets.min or [], buckets.value, buckets.max or [], strict=True))
    with pytest.raises(NotFound):
        rig.centre.history("meter-nobody", "TotW", end - timedelta(hours=1), end, None)


def test_a_restarted_centre_keeps_alarms_and_stores_nothing_twice(
    scenario: Scenario, keyrings: tuple[FieldKeyring, CentreKeyring], tmp_path: Path
) -> None:
    rig = Rig(scenario, keyrings, tmp_path)
    rig.step()
    rig.centre.command(PCC, "open", 0.0, "op")
    rig.step()
    outage = next(a for a in rig.centre.alarms(active_only=True) if a.kind == "outage")
    rig.centre.acknowledge(outage.id, "op")
    stored = rig.historian.count()
    rig.close()
    again = Rig(scenario, keyrings, tmp_path)
    try:
        restored = {a.id: a for a in again.centre.alarms(active_only=True)}
        assert restored[outage.id].acknowledged_by == "op"
        assert again.historian.count() == stored
    finally:
        again.close()


def test_the_gateway_will_takes_its_devices_offline(rig: Rig) -> None:
    rig.step()
    assert all(d.online for d in rig.centre.devices(None, "battery"))
    will_topic, will = rig.field.will()
    rig.bus.publish(will_topic, will, retain=True)
    assert rig.bus.drain()
    assert not any(d.online for d in rig.centre.devices(None, None))
    logged = rig.centre.events(since=None, kind="presence", limit=10)
    assert [e.source for e in logged] == ["field-gateway"] and "connection lost" in logged[0].message
