"""The smart-charging push API: per-charger results, a charger that never answers is a timeout (the centre
stays up and keeps serving the others), and calls to absent chargers fail with a clear error."""

from __future__ import annotations

import pytest

from gridmesh.adapters.ocpp import OcppCallError, PushOutcome, StationConfig, make_station
from support.brokers import wait_for

SILENT = frozenset({"SetChargingProfile", "ClearChargingProfile"})


def test_push_reports_each_charger_and_survives_a_silent_one(centre, fleet, credentials):
    system, _ = centre(response_timeout_s=2.0)  # ample for the talker on a loaded machine
    talker = make_station("2.0.1", StationConfig("cp-201", system.url, password=credentials.passwords["cp-201"]))
    silent = make_station(
        "1.6", StationConfig("cp-16", system.url, password=credentials.passwords["cp-16"], ignore_actions=SILENT)
    )
    runner = fleet([talker, silent])
    wait_for(lambda: talker.booted and silent.booted, 10, "both stations to boot")

    report = system.push_profiles({"cp-201": [(0, 7.4), (900, 3.7)], "cp-16": 5.0, "cp-spare": 2.0, "nowhere": -1})
    outcome = {c: r.outcome for c, r in report.results.items()}
    assert outcome == {
        "cp-201": PushOutcome.ACCEPTED,
        "cp-16": PushOutcome.TIMEOUT,
        "cp-spare": PushOutcome.NOT_CONNECTED,
        "nowhere": PushOutcome.ERROR,
    }
    assert "nowhere" in report.results["nowhere"].detail and "≥ 0 kW" in report.results["nowhere"].detail
    assert report.count(PushOutcome.ACCEPTED) == 1
    assert report.wall_s >= 2.0  # it waited for the silent one; the others did not wait for it

    # The talker holds the schedule as sent: 7.4 kW now, 3.7 kW after 15 minutes (in watts on the wire).
    (profile,) = runner.call(lambda: list(talker.profiles))
    assert profile.purpose == "ChargingStationMaxProfile" and profile.periods_w == ((0.0, 7400.0), (900.0, 3700.0))

    with pytest.raises(OcppCallError, match=r"cp-16 did not answer ClearChargingProfile within 2 s"):
        system.clear_charging_profile("cp-16")
    # The centre is still up: the talker still answers, and so does the silent one to what it does answer.
    assert system.clear_charging_profile("cp-201") == "Accepted"
    assert runner.call(lambda: list(talker.profiles)) == []
    assert system.remote_start("cp-16", "tok") == "Accepted"
    with pytest.raises(OcppCallError, match="cp-16: a remote stop not sent: invalid literal"):
        system.remote_stop("cp-16", "not-a-1.6-id")  # 1.6 transaction ids are integers
    with pytest.raises(OcppCallError, match="cp-spare is not connected"):
        system.remote_start("cp-spare", "tok")
