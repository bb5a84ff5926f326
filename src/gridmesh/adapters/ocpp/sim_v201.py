"""The simulated station speaking OCPP 2.0.1: sessions as TransactionEvents, meter samples inside them.

Events queued while the station was offline carry ``offline=true`` and keep their ``seqNo`` order, so
the centre sees the transaction resumed rather than restarted (OCPP 2.0.1 E12 / F04).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201 import datatypes as dt
from ocpp.v201 import enums as en
from websockets.asyncio.client import ClientConnection

from gridmesh.adapters.ocpp.charge_point import ConnectorSim, Outgoing, Sample, SimStation, StationSide, iso, utc_now
from gridmesh.adapters.ocpp.framing import on
from gridmesh.adapters.ocpp.handlers_v201 import SUBPROTOCOL, VERSION
from gridmesh.adapters.ocpp.profiles import parse_profile

VENDOR, MODEL = "gridmesh", "sim-ac"
ENERGY, POWER = "Energy.Active.Import.Register", "Power.Active.Import"


def _meter(sample: Sample, context: str) -> dt.MeterValueType:
    return dt.MeterValueType(
        timestamp=iso(sample.ts),
        sampled_value=[
            dt.SampledValueType(
                value=sample.register_wh,
                measurand=ENERGY,
                context=context,
                unit_of_measure=dt.UnitOfMeasureType(unit="Wh"),
            ),
            dt.SampledValueType(
                value=sample.power_w, measurand=POWER, context=context, unit_of_measure=dt.UnitOfMeasureType(unit="W")
            ),
        ],
    )


class _StationSide(StationSide, ChargePoint):  # type: ignore[misc]
    """Answers the centre's calls by asking the simulated station."""

    station: SimStationV201

    @on(en.Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        try:
            profile = parse_profile(charging_profile, utc_now())
        except (ValueError, KeyError):
            return call_result.SetChargingProfile(status=en.ChargingProfileStatusEnumType.rejected)
        self.station.add_profile(profile)
        return call_result.SetChargingProfile(status=en.ChargingProfileStatusEnumType.accepted)

    @on(en.Action.clear_charging_profile)
    def on_clear_charging_profile(
        self, charging_profile_id: int | None = None, charging_profile_criteria: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        purpose = (charging_profile_criteria or {}).get("charging_profile_purpose")
        cleared = self.station.clear_profiles(profile_id=charging_profile_id, purpose=purpose)
        status = en.ClearChargingProfileStatusEnumType
        return call_result.ClearChargingProfile(status=status.accepted if cleared else status.unknown)

    @on(en.Action.request_start_transaction)
    def on_request_start_transaction(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        ok = self.station.remote_start(id_token["id_token"], evse_id)
        status = en.RequestStartStopStatusEnumType.accepted if ok else en.RequestStartStopStatusEnumType.rejected
        return call_result.RequestStartTransaction(status=status)

    @on(en.Action.request_stop_transaction)
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        ok = self.station.remote_stop(transaction_id)
        status = en.RequestStartStopStatusEnumType.accepted if ok else en.RequestStartStopStatusEnumType.rejected
        return call_result.RequestStopTransaction(status=status)


class SimStationV201(SimStation):
    version = VERSION
    subprotocol = SUBPROTOCOL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seq: dict[str, int] = {}

    def _protocol(self, ws: ClientConnection) -> Any:
        return _StationSide(self, ws)

    def _boot(self) -> Any:
        return call.BootNotification(
            charging_station=dt.ChargingStationType(vendor_name=VENDOR, model=MODEL),
            reason=en.BootReasonEnumType.power_up,
        )

    def _heartbeat(self) -> Any:
        return call.Heartbeat()

    def _authorize(self, id_token: str) -> Any:
        return call.Authorize(id_token=dt.IdTokenType(id_token=id_token, type=en.IdTokenEnumType.central))

    def _accepted(self, answer: Any) -> bool:
        return bool(answer.id_token_info["status"] == en.AuthorizationStatusEnumType.accepted)

    def _status(self, connector: ConnectorSim, charging: bool, ts: datetime) -> Outgoing:
        status = en.ConnectorStatusEnumType.occupied if charging else en.ConnectorStatusEnumType.available
        payload = call.StatusNotification(
            timestamp=iso(ts), connector_status=status, evse_id=connector.number, connector_id=1
        )
        return Outgoing(lambda: payload)

    def _event(self, kind: str, trigger: str, c: ConnectorSim, sample: Sample, context: str, **extra: Any) -> Outgoing:
        seq = self._seq.get(sample.transaction, 0)
        self._seq[sample.transaction] = seq + 1
        info = dt.TransactionType(
            transaction_id=sample.transaction,
            charging_state=extra.pop("charging_state", None),
            stopped_reason=extra.pop("stopped_reason", None),
        )
        payload = call.TransactionEvent(
            event_type=kind,
            timestamp=iso(sample.ts),
            trigger_reason=trigger,
            seq_no=seq,
            transaction_info=info,
            meter_value=[_meter(sample, context)],
            offline=True if not self.online else None,
            evse=dt.EVSEType(id=c.number, connector_id=1),
            **extra,
        )
        return Outgoing(lambda: payload, samples=2)

    def _started(self, connector: ConnectorSim, sample: Sample) -> list[Outgoing]:
        assert connector.session is not None
        token = dt.IdTokenType(id_token=connector.session.id_token, type=en.IdTokenEnumType.central)
        return [
            self._event(
                en.TransactionEventEnumType.started,
                en.TriggerReasonEnumType.authorized,
                connector,
                sample,
                en.ReadingContextEnumType.transaction_begin,
                id_token=token,
                charging_state=en.ChargingStateEnumType.charging,
            )
        ]

    def _updated(self, connector: ConnectorSim, sample: Sample) -> Outgoing:
        state = en.ChargingStateEnumType.charging if sample.power_w > 0 else en.ChargingStateEnumType.suspended_evse
        return self._event(
            en.TransactionEventEnumType.updated,
            en.TriggerReasonEnumType.meter_value_periodic,
            connector,
            sample,
            en.ReadingContextEnumType.sample_periodic,
            charging_state=state,
        )

    def _ended(self, connector: ConnectorSim, sample: Sample, reason: str) -> list[Outgoing]:
        remote = reason == "Remote"
        return [
            self._event(
                en.TransactionEventEnumType.ended,
                en.TriggerReasonEnumType.remote_stop if remote else en.TriggerReasonEnumType.ev_departed,
                connector,
                sample,
                en.ReadingContextEnumType.transaction_end,
                charging_state=en.ChargingStateEnumType.idle,
                stopped_reason=en.ReasonEnumType.remote if remote else en.ReasonEnumType.ev_disconnected,
            )
        ]
