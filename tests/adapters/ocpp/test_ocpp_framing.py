"""Malformed frames, unknown actions and wrong payloads get the library's CALLERROR, the connection and the
server keep serving; a call repeated with the same message id (after a lost answer) is stored once."""

from __future__ import annotations

import contextlib
import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_authorization_basic
from websockets.sync.client import ClientConnection, connect

from gridmesh.adapters.ocpp.framing import frame_error

NOW = "2026-01-01T12:00:00Z"
KILO_WATT = {"unit": "W", "multiplier": 3}


def _open(system, charger, password, subprotocol) -> ClientConnection:
    return connect(
        system.url + charger,
        subprotocols=[subprotocol],
        additional_headers={"Authorization": build_authorization_basic(charger, password)},
    )


def _ask(ws: ClientConnection, frame: str) -> list:
    ws.send(frame)
    return json.loads(ws.recv(timeout=5))


@pytest.fixture
def raw(centre, credentials):
    system, sink = centre()
    with contextlib.ExitStack() as stack:

        def open_(charger, subprotocol):
            return stack.enter_context(_open(system, charger, credentials.passwords[charger], subprotocol))

        yield system, sink, open_


def test_bad_frames_get_callerrors_and_the_server_keeps_serving(raw):
    system, _, open_ = raw
    ws, other = open_("cp-201", "ocpp2.0.1"), open_("cp-16", "ocpp1.6")
    assert ws.subprotocol == "ocpp2.0.1" and other.subprotocol == "ocpp1.6"
    cases = [
        ("this is not json", "-1", "FormatViolation"),
        ('{"not": "a list"}', "-1", "ProtocolError"),
        ('[9, "m0", "Heartbeat", {}]', "m0", "PropertyConstraintViolation"),
        ('[2, "m1", "FooBar", {}]', "m1", "NotSupported"),
        ('[2, "m2", "DataTransfer", {"vendorId": "x"}]', "m2", "NotImplemented"),
        ('[2, "m3", "Heartbeat", {"bogus": 1}]', "m3", "FormatViolation"),
        ('[2, "m4", "BootNotification", {"reason": "PowerUp"}]', "m4", "ProtocolError"),
        (
            '[2, "m5", "StatusNotification", {"timestamp": "yesterday", "connectorStatus": "Available", '
            '"evseId": 1, "connectorId": 1}]',
            "m5",
            "PropertyConstraintViolation",
        ),
    ]
    for frame, message_id, code in cases:
        answer = _ask(ws, frame)
        assert answer[:3] == [4, message_id, code], frame
    # The same connection still works, and so does another station's.
    ok = _ask(ws, '[2, "ok", "Heartbeat", {}]')
    assert ok[:2] == [3, "ok"] and "currentTime" in ok[2]
    assert _ask(other, "garbage")[:3] == [4, "-1", "FormationViolation"]  # OCPP 1.6's name for the code
    assert _ask(other, '[2, "hb", "Heartbeat", {}]')[:2] == [3, "hb"]
    assert system.connected() == ["cp-16", "cp-201"]


def test_frame_error_leaves_good_frames_to_the_library():
    assert frame_error('[2, "x", "Heartbeat", {}]', "2.0.1") is None
    assert json.loads(frame_error("[", "1.6"))[:3] == [4, "-1", "FormationViolation"]


def test_repeated_message_ids_are_answered_but_stored_once(raw):
    system, sink, open_ = raw
    ws = open_("cp-16", "ocpp1.6")
    start = '[2, "s1", "StartTransaction", {"connectorId": 1, "idTag": "t", "meterStart": 100, "timestamp": "%s"}]'
    first, again = _ask(ws, start % NOW), _ask(ws, start % NOW)
    assert first == again and first[0] == 3  # the same transaction id both times
    tx = first[2]["transactionId"]
    meter = json.dumps(
        [
            2,
            "mv1",
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1350.5"}]}],
            },
        ]
    )
    assert _ask(ws, meter) == [3, "mv1", {}]
    assert _ask(ws, meter) == [3, "mv1", {}]
    assert [(r.value, r.unit, r.transaction_id) for r in sink.rows] == [(1350.5, "Wh", str(tx))]
    stop = json.dumps([2, "st", "StopTransaction", {"meterStop": 1400, "timestamp": NOW, "transactionId": tx}])
    assert _ask(ws, stop)[0] == 3
    (done,) = system.state.transactions()
    assert done.energy_kwh == pytest.approx((1400 - 100) / 1000)
    assert system.state.repeats_dropped == 2


def test_meter_values_v201_scaled_by_the_multiplier(raw):
    _, sink, open_ = raw
    ws = open_("cp-201", "ocpp2.0.1")
    frame = [
        2,
        "mv",
        "MeterValues",
        {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": NOW,
                    "sampledValue": [
                        {"value": 12.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 0}},
                        {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": KILO_WATT},
                    ],
                }
            ],
        },
    ]
    assert _ask(ws, json.dumps(frame)) == [3, "mv", {}]
    rows = sink.rows
    assert [(r.measurand, r.value, r.unit) for r in rows] == [
        ("Energy.Active.Import.Register", 12.5, "kWh"),
        ("Power.Active.Import", 7200.0, "W"),
    ]
    assert rows[0].ts.isoformat() == "2026-01-01T12:00:00+00:00"


def test_a_new_connection_replaces_the_old_one(raw):
    system, _, open_ = raw
    old = open_("cp-201", "ocpp2.0.1")
    new = open_("cp-201", "ocpp2.0.1")
    with pytest.raises(ConnectionClosed) as closed:
        old.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert _ask(new, '[2, "hb", "Heartbeat", {}]')[:2] == [3, "hb"]
    assert system.connected() == ["cp-201"]
