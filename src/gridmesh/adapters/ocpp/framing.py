"""Answer frames the ``ocpp`` library cannot parse with a CALLERROR instead of silence.

The library's ``route_message`` logs an unparseable frame and drops it, so the sender waits for its
timeout. OCPP-J (2.0.1 part 4 §4.2.3) asks for a CALLERROR, with message id "-1" when the id cannot be
read. This mixin checks the frame with the library's own ``unpack`` first and answers its error (as a
library ``CallError``); frames that parse go on to the library unchanged, whose handlers already answer
unknown actions (NotImplemented / NotSupported) and schema violations (FormatViolation …).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ocpp.exceptions import FormationViolationError, FormatViolationError, OCPPError
from ocpp.messages import CallError, unpack
from ocpp.routing import on as _library_on

UNKNOWN_MESSAGE_ID = "-1"
F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The library's ``@on(action)`` with a type (it returns the handler with routing attributes set)."""
    return cast(Callable[[F], F], _library_on(action))


def _message_id(raw: str | bytes) -> str:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return UNKNOWN_MESSAGE_ID
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
        return frame[1]
    return UNKNOWN_MESSAGE_ID


def frame_error(raw: str | bytes, ocpp_version: str) -> str | None:
    """The CALLERROR frame answering ``raw`` when the library cannot parse it, else None."""
    try:
        unpack(raw)
    except OCPPError as error:
        if ocpp_version == "1.6" and isinstance(error, FormatViolationError):
            error = FormationViolationError()  # 1.6 names this code FormationViolation (its errata §5.2)
        cause = error.details.get("cause", "") if isinstance(error.details, dict) else ""
        return str(CallError(_message_id(raw), error.code, error.description, {"cause": cause}).to_json())
    return None


class FramingMixin:
    """Put before ``ocpp.v201.ChargePoint`` / ``ocpp.v16.ChargePoint`` in the bases."""

    _ocpp_version: str
    _send: Callable[[str], Awaitable[None]]

    async def route_message(self, raw_msg: str | bytes) -> None:
        answer = frame_error(raw_msg, self._ocpp_version)
        if answer is not None:
            await self._send(answer)
            return
        await super().route_message(raw_msg)  # type: ignore[misc]
