"""The FastAPI application: REST under ``/api/v1``, the WebSocket stream, OpenAPI, and the dashboard.

``create_app`` wires a :class:`~gridmesh.api.ports.Centre` and a token store; on startup the hub binds to
the server's event loop and subscribes to the centre, so states and alarms are pushed as they happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from gridmesh.api import (
    routes_admin,
    routes_control,
    routes_coordination,
    routes_dr,
    routes_ev,
    routes_flisr,
    routes_grid,
    routes_ops,
)
from gridmesh.api.auth import websocket_principal
from gridmesh.api.errors import install_error_handlers
from gridmesh.api.ports import AlarmView, Centre, Pushed, ReadingsView
from gridmesh.api.stream import Hub
from gridmesh.security.tokens import TokenStore
from gridmesh.web import STATIC_DIR

API_VERSION = "1"


def _forward_to(hub: Hub) -> Callable[[Pushed], None]:
    def listener(message: Pushed) -> None:
        if isinstance(message, AlarmView):
            hub.publish("alarm", message)
        elif isinstance(message, ReadingsView):
            hub.publish("readings", message)
        else:
            hub.publish("state", message)

    return listener


def create_app(centre: Centre, tokens: TokenStore, *, hub: Hub | None = None) -> FastAPI:
    """The API over ``centre``; pass ``hub`` to publish to clients from outside (tests, extra feeds)."""
    hub = hub or Hub()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        unsubscribe = centre.subscribe(_forward_to(hub))
        try:
            yield
        finally:
            unsubscribe()
            await hub.close()

    app = FastAPI(
        title="gridmesh control centre",
        version=API_VERSION,
        description=(
            "Live grid state, devices, history, alarms and events of a gridmesh control centre. Every "
            "endpoint needs a bearer token (`gridmesh token create`); roles: viewer reads, operator also "
            "acknowledges alarms, sends commands, creates demand-response events and starts coordination "
            "runs, admin also manages tokens. Live updates: WebSocket `/api/v1/stream`. Errors are JSON `{error, fix}`."
        ),
        lifespan=lifespan,
    )
    app.state.centre = centre
    app.state.tokens = tokens
    app.state.hub = hub
    install_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    routers = (
        routes_grid,
        routes_ops,
        routes_flisr,
        routes_control,
        routes_ev,
        routes_dr,
        routes_coordination,
        routes_admin,
    )
    for router in (module.router for module in routers):
        app.include_router(router)

    @app.websocket("/api/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        """Pushed ``state``, ``alarm`` and ``readings`` messages (see :mod:`gridmesh.api.stream`)."""
        caller = await websocket_principal(websocket)
        if caller is not None:
            await hub.serve(websocket, caller)

    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app
