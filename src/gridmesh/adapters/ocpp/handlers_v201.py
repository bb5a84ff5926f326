"""The centre's side of one OCPP 2.0.1 connection: answers the station's calls, sends the centre's."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201 import datatypes as dt
from ocpp.v201 import enums as en

from gridmesh.adapters.ocpp.framing import FramingMixin, on
from gridmesh.adapters.ocpp.meter import rows_v201
from gridmesh.adapters.ocpp.profiles import station_profile_v201
from gridmesh.adapters.ocpp.state import CentreState, register_wh

VERSION = "2.0.1"
SUBPROTOCOL = "ocpp2.0.1"
_remote_ids = itertools.count(1)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad_payload(exc: Exception) -> PropertyConstraintViolationError:
    return PropertyConstraintViolationError(details={"cause": f"unreadable value: {exc}"})


class CentreV201(FramingMixin, ChargePoint):  # type: ignore[misc]
    """One connected station; ``state`` is shared by all connections of the centre."""

    def __init__(
        self, charger_id: str, connection: Any, state: CentreState, *, response_timeout: float, heartbeat_s: int
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=response_timeout)
        self.state = state
        self.heartbeat_s = heartbeat_s

    # ---- calls from the station ----------------------------------------------------------------------
    @on(en.Action.boot_notification)
    def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.state.booted(self.id, charging_station["vendor_name"], charging_station["model"])
        return call_result.BootNotification(
            current_time=now_iso(), interval=self.heartbeat_s, status=en.RegistrationStatusEnumType.accepted
        )

    @on(en.Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        self.state.seen(self.id)
        return call_result.Heartbeat(current_time=now_iso())

    @on(en.Action.status_notification)
    def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> Any:
        try:
            ts = datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise _bad_payload(exc) from exc
        self.state.status(self.id, evse_id, connector_status, ts)
        return call_result.StatusNotification()

    @on(en.Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        ok = self.state.authorize(self.id, id_token["id_token"])
        status = en.AuthorizationStatusEnumType.accepted if ok else en.AuthorizationStatusEnumType.invalid
        return call_result.Authorize(id_token_info=dt.IdTokenInfoType(status=status))

    @on(en.Action.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], call_unique_id: str, **_: Any) -> Any:
        if self.state.answered(self.id, call_unique_id) is None:
            try:
                rows = rows_v201(self.id, evse_id, None, meter_value)
            except (ValueError, KeyError) as exc:
                raise _bad_payload(exc) from exc
            tx = self.state.open_transaction(self.id, evse_id)
            self.state.meter_values(self.id, None if tx is None else tx.transaction_id, rows)
            self.state.remember(self.id, call_unique_id, call_result.MeterValues())
        return call_result.MeterValues()

    @on(en.Action.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        call_unique_id: str,
        meter_value: list[dict[str, Any]] | None = None,
        offline: bool = False,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        repeat = self.state.answered(self.id, call_unique_id)
        if repeat is not None:
            return repeat
        tx_id = transaction_info["transaction_id"]
        token = None if id_token is None else id_token["id_token"]
        try:
            ts = datetime.fromisoformat(timestamp)
            known = self.state.transaction(self.id, tx_id)
            evse_id = evse["id"] if evse else (known.connector if known else 1)
            rows = rows_v201(self.id, evse_id, tx_id, meter_value or ())
        except (ValueError, KeyError) as exc:
            raise _bad_payload(exc) from exc
        if known is None:  # "Started", or the first event of a transaction begun while offline
            self.state.start_transaction(
                self.id, tx_id, connector=evse_id, id_token=token, ts=ts, meter_start_wh=register_wh(rows)
            )
        else:
            self.state.update_transaction(self.id, tx_id, id_token=token, offline=offline)
        self.state.meter_values(self.id, tx_id, rows)
        if event_type == en.TransactionEventEnumType.ended:
            self.state.stop_transaction(
                self.id, tx_id, ts=ts, meter_stop_wh=register_wh(rows), reason=transaction_info.get("stopped_reason")
            )
        answer = call_result.TransactionEvent()
        if token is not None:
            ok = self.state.authorize(self.id, token)
            status = en.AuthorizationStatusEnumType.accepted if ok else en.AuthorizationStatusEnumType.invalid
            answer = call_result.TransactionEvent(id_token_info=dt.IdTokenInfoType(status=status))
        self.state.remember(self.id, call_unique_id, answer)
        return answer

    # ---- calls from the centre -----------------------------------------------------------------------
    # Requests are built from the library's dataclasses (the simulated stations check them against the
    # schemas in the tests) and only an answer's ``status`` is read: anything but "Accepted" counts as a
    # refusal. Skipping the library's validation here halves the centre's cost of a fleet-wide push.
    async def set_station_plan(self, periods_w: Sequence[tuple[int, float]], start: datetime) -> str:
        result = await self.call(
            call.SetChargingProfile(evse_id=0, charging_profile=station_profile_v201(periods_w, start)),
            suppress=False,
            skip_schema_validation=True,
        )
        return str(result.status)

    async def clear_station_plan(self) -> str:
        criteria = dt.ClearChargingProfileType(
            evse_id=0, charging_profile_purpose=en.ChargingProfilePurposeEnumType.charging_station_max_profile
        )
        result = await self.call(
            call.ClearChargingProfile(charging_profile_criteria=criteria), suppress=False, skip_schema_validation=True
        )
        return str(result.status)

    async def remote_start(self, id_token: str, connector: int) -> str:
        token = dt.IdTokenType(id_token=id_token, type=en.IdTokenEnumType.central)
        result = await self.call(
            call.RequestStartTransaction(id_token=token, remote_start_id=next(_remote_ids), evse_id=connector),
            suppress=False,
            skip_schema_validation=True,
        )
        return str(result.status)

    async def remote_stop(self, transaction_id: str) -> str:
        result = await self.call(
            call.RequestStopTransaction(transaction_id=transaction_id), suppress=False, skip_schema_validation=True
        )
        return str(result.status)
