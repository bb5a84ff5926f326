"""The simulated station speaking OCPP 1.6: StartTransaction, MeterValues, StopTransaction.

1.6 transaction ids come from the centre, so a session started while offline is referred to by the
station's own reference until StartTransaction is answered; the queued MeterValues behind it are
worded when sent and then carry the centre's id (1.6 §4.8: queue transaction messages when offline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16 import datatypes as dt
from ocpp.v16 import enums as en
from websockets.asyncio.client import ClientConnection

from gridmesh.adapters.ocpp.charge_point import ConnectorSim, Outgoing, Sample, SimStation, StationSide, iso, utc_now
from gridmesh.adapters.ocpp.framing import on
from gridmesh.adapters.ocpp.handlers_v16 import SUBPROTOCOL, VERSION
from gridmesh.adapters.ocpp.profiles import parse_profile
from gridmesh.adapters.ocpp.sim_v201 import ENERGY, MODEL, POWER, VENDOR


class _StationSide(StationSide, ChargePoint):  # type: ignore[misc]
    """Answers the centre's calls by asking the simulated station."""

    station: SimStationV16

    @on(en.Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any) -> Any:
        try:
            profile = parse_profile(cs_charging_profiles, utc_now())
        except (ValueError, KeyError):
            return call_result.SetChargingProfile(status=en.ChargingProfileStatus.rejected)
        self.station.add_profile(profile)
        return call_result.SetChargingProfile(status=en.ChargingProfileStatus.accepted)

    @on(en.Action.clear_charging_profile)
    def on_clear_charging_profile(
        self, id: int | None = None, charging_profile_purpose: str | None = None, **_: Any
    ) -> Any:
        cleared = self.station.clear_profiles(profile_id=id, purpose=charging_profile_purpose)
        status = en.ClearChargingProfileStatus.accepted if cleared else en.ClearChargingProfileStatus.unknown
        return call_result.ClearChargingProfile(status=status)

    @on(en.Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        ok = self.station.remote_start(id_tag, connector_id)
        return call_result.RemoteStartTransaction(
            status=en.RemoteStartStopStatus.accepted if ok else en.RemoteStartStopStatus.rejected
        )

    @on(en.Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        ok = self.station.remote_stop_by_centre_id(transaction_id)
        return call_result.RemoteStopTransaction(
            status=en.RemoteStartStopStatus.accepted if ok else en.RemoteStartStopStatus.rejected
        )


class SimStationV16(SimStation):
    version = VERSION
    subprotocol = SUBPROTOCOL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.centre_ids: dict[str, int] = {}  # the station's transaction reference → the centre's id

    def remote_stop_by_centre_id(self, transaction_id: int) -> bool:
        local = next((ref for ref, tx in self.centre_ids.items() if tx == transaction_id), None)
        return local is not None and self.remote_stop(local)

    def _protocol(self, ws: ClientConnection) -> Any:
        return _StationSide(self, ws)

    def _boot(self) -> Any:
        return call.BootNotification(charge_point_model=MODEL, charge_point_vendor=VENDOR)

    def _heartbeat(self) -> Any:
        return call.Heartbeat()

    def _authorize(self, id_token: str) -> Any:
        return call.Authorize(id_tag=id_token)

    def _accepted(self, answer: Any) -> bool:
        return bool(answer.id_tag_info["status"] == en.AuthorizationStatus.accepted)

    def _status(self, connector: ConnectorSim, charging: bool, ts: datetime) -> Outgoing:
        payload = call.StatusNotification(
            connector_id=connector.number,
            error_code=en.ChargePointErrorCode.no_error,
            status=en.ChargePointStatus.charging if charging else en.ChargePointStatus.available,
            timestamp=iso(ts),
        )
        return Outgoing(lambda: payload)

    def _meter_values(self, connector: ConnectorSim, sample: Sample, context: str) -> Outgoing:
        values = [
            dt.SampledValue(value=f"{sample.register_wh:.6f}", measurand=ENERGY, unit="Wh", context=context),
            dt.SampledValue(value=f"{sample.power_w:.6f}", measurand=POWER, unit="W", context=context),
        ]
        meter = [dt.MeterValue(timestamp=iso(sample.ts), sampled_value=values)]
        ref, number = sample.transaction, connector.number
        return Outgoing(
            lambda: call.MeterValues(connector_id=number, meter_value=meter, transaction_id=self.centre_ids.get(ref)),
            samples=2,
        )

    def _started(self, connector: ConnectorSim, sample: Sample) -> list[Outgoing]:
        assert connector.session is not None
        payload = call.StartTransaction(
            connector_id=connector.number,
            id_tag=connector.session.id_token,
            meter_start=round(sample.register_wh),
            timestamp=iso(sample.ts),
        )
        ref = sample.transaction

        def bind(answer: Any) -> None:
            self.centre_ids[ref] = int(answer.transaction_id)

        return [
            Outgoing(lambda: payload, on_result=bind),
            self._meter_values(connector, sample, en.ReadingContext.transaction_begin),
        ]

    def _updated(self, connector: ConnectorSim, sample: Sample) -> Outgoing:
        return self._meter_values(connector, sample, en.ReadingContext.sample_periodic)

    def _ended(self, connector: ConnectorSim, sample: Sample, reason: str) -> list[Outgoing]:
        ref, stop_reason = sample.transaction, en.Reason.remote if reason == "Remote" else en.Reason.ev_disconnected
        ts, meter_stop = iso(sample.ts), round(sample.register_wh)
        return [
            self._meter_values(connector, sample, en.ReadingContext.transaction_end),
            Outgoing(
                lambda: call.StopTransaction(
                    meter_stop=meter_stop, timestamp=ts, transaction_id=self.centre_ids.get(ref, 0), reason=stop_reason
                )
            ),
        ]
