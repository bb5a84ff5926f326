"""The centre's side of one OCPP 1.6 connection: answers the station's calls, sends the centre's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16 import datatypes as dt
from ocpp.v16 import enums as en

from gridmesh.adapters.ocpp.framing import FramingMixin, on
from gridmesh.adapters.ocpp.handlers_v201 import now_iso
from gridmesh.adapters.ocpp.meter import rows_v16
from gridmesh.adapters.ocpp.profiles import station_profile_v16
from gridmesh.adapters.ocpp.state import CentreState

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"


def _bad_payload(exc: Exception) -> PropertyConstraintViolationError:
    return PropertyConstraintViolationError(details={"cause": f"unreadable value: {exc}"})


def _ts(timestamp: str | None) -> datetime:
    try:
        return datetime.fromisoformat(timestamp) if timestamp else datetime.now(UTC)
    except ValueError as exc:
        raise _bad_payload(exc) from exc


class CentreV16(FramingMixin, ChargePoint):  # type: ignore[misc]
    """One connected OCPP 1.6 charge point; ``state`` is shared by all connections of the centre."""

    def __init__(
        self, charger_id: str, connection: Any, state: CentreState, *, response_timeout: float, heartbeat_s: int
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=response_timeout)
        self.state = state
        self.heartbeat_s = heartbeat_s

    def _tag_info(self, id_tag: str) -> dt.IdTagInfo:
        ok = self.state.authorize(self.id, id_tag)
        return dt.IdTagInfo(status=en.AuthorizationStatus.accepted if ok else en.AuthorizationStatus.invalid)

    # ---- calls from the charge point -----------------------------------------------------------------
    @on(en.Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        self.state.booted(self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(
            current_time=now_iso(), interval=self.heartbeat_s, status=en.RegistrationStatus.accepted
        )

    @on(en.Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        self.state.seen(self.id)
        return call_result.Heartbeat(current_time=now_iso())

    @on(en.Action.status_notification)
    def on_status_notification(self, connector_id: int, status: str, timestamp: str | None = None, **_: Any) -> Any:
        self.state.status(self.id, connector_id, status, _ts(timestamp))
        return call_result.StatusNotification()

    @on(en.Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        return call_result.Authorize(id_tag_info=self._tag_info(id_tag))

    @on(en.Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, call_unique_id: str, **_: Any
    ) -> Any:
        repeat = self.state.answered(self.id, call_unique_id)
        if repeat is not None:
            return repeat
        ts = _ts(timestamp)
        tx_id = self.state.new_v16_transaction_id()
        self.state.start_transaction(
            self.id, str(tx_id), connector=connector_id, id_token=id_tag, ts=ts, meter_start_wh=float(meter_start)
        )
        answer = call_result.StartTransaction(transaction_id=tx_id, id_tag_info=self._tag_info(id_tag))
        self.state.remember(self.id, call_unique_id, answer)
        return answer

    @on(en.Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        call_unique_id: str,
        transaction_id: int | None = None,
        **_: Any,
    ) -> Any:
        if self.state.answered(self.id, call_unique_id) is None:
            tx = None if transaction_id is None else str(transaction_id)
            try:
                rows = rows_v16(self.id, connector_id, tx, meter_value)
            except (ValueError, KeyError) as exc:
                raise _bad_payload(exc) from exc
            self.state.meter_values(self.id, tx, rows)
            self.state.remember(self.id, call_unique_id, call_result.MeterValues())
        return call_result.MeterValues()

    @on(en.Action.stop_transaction)
    def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        call_unique_id: str,
        id_tag: str | None = None,
        reason: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        repeat = self.state.answered(self.id, call_unique_id)
        if repeat is not None:
            return repeat
        ts, tx = _ts(timestamp), str(transaction_id)
        known = self.state.transaction(self.id, tx)
        if transaction_data:
            try:
                rows = rows_v16(self.id, known.connector if known else 0, tx, transaction_data)
            except (ValueError, KeyError) as exc:
                raise _bad_payload(exc) from exc
            self.state.meter_values(self.id, tx, rows)
        # meterStop is whole Wh: keep the last register reading when it is that same value, unrounded.
        current = self.state.transaction(self.id, tx)
        last = None if current is None else current.meter_last_wh
        stop_wh = last if last is not None and abs(last - meter_stop) <= 0.5 else float(meter_stop)
        self.state.stop_transaction(self.id, tx, ts=ts, meter_stop_wh=stop_wh, reason=reason)
        answer = call_result.StopTransaction(id_tag_info=None if id_tag is None else self._tag_info(id_tag))
        self.state.remember(self.id, call_unique_id, answer)
        return answer

    # ---- calls from the centre -----------------------------------------------------------------------
    # Requests are built from the library's dataclasses (the simulated stations check them against the
    # schemas in the tests) and only an answer's ``status`` is read: anything but "Accepted" counts as a
    # refusal. Skipping the library's validation here halves the centre's cost of a fleet-wide push.
    async def set_station_plan(self, periods_w: Sequence[tuple[int, float]], start: datetime) -> str:
        profile = station_profile_v16(periods_w, start)
        result = await self.call(
            call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile),
            suppress=False,
            skip_schema_validation=True,
        )
        return str(result.status)

    async def clear_station_plan(self) -> str:
        result = await self.call(
            call.ClearChargingProfile(
                connector_id=0, charging_profile_purpose=en.ChargingProfilePurposeType.charge_point_max_profile
            ),
            suppress=False,
            skip_schema_validation=True,
        )
        return str(result.status)

    async def remote_start(self, id_token: str, connector: int) -> str:
        result = await self.call(
            call.RemoteStartTransaction(id_tag=id_token, connector_id=connector),
            suppress=False,
            skip_schema_validation=True,
        )
        return str(result.status)

    async def remote_stop(self, transaction_id: str) -> str:
        result = await self.call(
            call.RemoteStopTransaction(transaction_id=int(transaction_id)), suppress=False, skip_schema_validation=True
        )
        return str(result.status)
