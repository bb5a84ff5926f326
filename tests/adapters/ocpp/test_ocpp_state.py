"""The centre's records: running transactions per connector, energy from the register (by hand), bounded
memory of ended transactions, and the energy register read in Wh whatever unit it came in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridmesh.adapters.ocpp import EventKind, MemorySink, MeterRow
from gridmesh.adapters.ocpp import state as state_module
from gridmesh.adapters.ocpp.state import CentreState, register_wh

T = datetime(2026, 1, 1, tzinfo=UTC)


def _row(value: float, unit: str = "Wh", measurand: str = "Energy.Active.Import.Register") -> MeterRow:
    return MeterRow("cp", 1, "t1", T, measurand, value, unit)


def test_register_in_wh():
    assert register_wh([_row(5.0, "kWh"), _row(7000.0, "W", "Power.Active.Import")]) == 5000.0
    assert register_wh([_row(120.0), _row(130.5)]) == 130.5  # the latest
    assert register_wh([_row(1.0, "W", "Power.Active.Import")]) is None


def test_transactions_per_connector_and_energy(monkeypatch):
    monkeypatch.setattr(state_module, "KEEP_CLOSED", 2)
    sink = MemorySink()
    state = CentreState(sink)
    state.start_transaction("cp", "t1", connector=1, id_token="a", ts=T, meter_start_wh=1000.0)
    state.start_transaction("cp", "t2", connector=2, id_token="b", ts=T, meter_start_wh=None)
    assert state.open_transaction("cp", 2).transaction_id == "t2"
    state.meter_values("cp", "t1", [_row(1500.0), _row(2750.0)])
    state.meter_values("cp", "t2", [MeterRow("cp", 2, "t2", T, "Energy.Active.Import.Register", 3.0, "kWh")])
    state.meter_values("cp", "t2", [MeterRow("cp", 2, "t2", T, "Energy.Active.Import.Register", 3.5, "kWh")])
    assert state.transaction("cp", "t1").energy_kwh == pytest.approx(1.75)  # (2750 − 1000) Wh
    assert state.transaction("cp", "t2").energy_kwh == pytest.approx(0.5)  # first reading is the start
    done = state.stop_transaction("cp", "t1", ts=T, meter_stop_wh=3000.0, reason="Local")
    assert done.energy_kwh == pytest.approx(2.0) and state.open_transaction("cp", 1) is None
    assert state.stop_transaction("cp", "t1", ts=T, meter_stop_wh=9999.0, reason="again") == done  # no change
    ended = [e for e in sink.events if e.kind is EventKind.TRANSACTION_ENDED]
    assert [e.detail["energy_kwh"] for e in ended] == [pytest.approx(2.0)]
    for k in range(3, 6):
        state.start_transaction("cp", f"t{k}", connector=3, id_token=None, ts=T, meter_start_wh=0.0)
        state.stop_transaction("cp", f"t{k}", ts=T, meter_stop_wh=1.0, reason=None)
    assert sorted(t.transaction_id for t in state.transactions()) == ["t2", "t4", "t5"]  # 2 ended kept
    assert state.rows_stored == 4 == sink.row_count()


def test_token_policy():
    state = CentreState(MemorySink(), accepted_tokens={"good"})
    assert state.authorize("cp", "good") and not state.authorize("cp", "bad") and not state.authorize("cp", "")
    assert CentreState(MemorySink()).authorize("cp", "anything")
