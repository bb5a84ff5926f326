"""Authentication and roles: every data endpoint and the WebSocket need a token.

HTTP: ``Authorization: Bearer gm_…``. WebSocket: ``?token=gm_…`` in the URL, or, so that the token stays
out of URLs and logs, a first text message ``{"token": "gm_…"}`` within :data:`WS_AUTH_TIMEOUT_S`.
A missing or unknown token is 401 (WebSocket close code 4401), a role too low for the action 403 (4403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Annotated, cast

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.websockets import WebSocketDisconnect

from gridmesh.api.errors import ApiError
from gridmesh.api.ports import Centre
from gridmesh.security.tokens import Principal, Role, TokenStore

WS_AUTH_TIMEOUT_S = 5.0
WS_UNAUTHORIZED = 4401
_CREATE_FIX = "create a token with `gridmesh token create --role viewer --name NAME` and send it as "
_HEADER_FIX = _CREATE_FIX + "`Authorization: Bearer <token>`"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="an API token (`gm_…`) from `gridmesh token create`",
)


def tokens_of(request: Request | WebSocket) -> TokenStore:
    return cast(TokenStore, request.app.state.tokens)


def centre(request: Request) -> Centre:
    return cast(Centre, request.app.state.centre)


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller behind the bearer token, or a 401."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "missing bearer token", _HEADER_FIX, headers=challenge)
    found = tokens_of(request).verify(credentials.credentials)
    if found is None:
        raise ApiError(401, "invalid or revoked token", _HEADER_FIX, headers=challenge)
    return found


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers whose role includes ``role``; 403 for the others."""

    def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if not caller.role.includes(role):
            raise ApiError(
                403,
                f"this needs the {role.value} role; token {caller.name!r} has {caller.role.value}",
                f"ask an admin for a token with `gridmesh token create --role {role.value} --name NAME`",
            )
        return caller

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
CentreDep = Annotated[Centre, Depends(centre)]


async def _first_message_token(websocket: WebSocket) -> str | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), WS_AUTH_TIMEOUT_S)
        message = json.loads(text)
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        return None
    token = message.get("token") if isinstance(message, dict) else None
    return token if isinstance(token, str) else None


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """Accept the socket and authenticate it; on failure close with 4401 and a reason, and return None.

    The socket is accepted before refusing so that a browser sees the close code and reason (a refused
    handshake reaches scripts only as a bare error).
    """
    await websocket.accept()
    token = websocket.query_params.get("token") or await _first_message_token(websocket)
    found = tokens_of(websocket).verify(token) if token else None
    if found is None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the peer may already have gone
            await websocket.close(WS_UNAUTHORIZED, 'invalid or missing token: pass ?token= or send {"token": ...}')
    return found
