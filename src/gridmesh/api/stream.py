"""The WebSocket hub: pushes state and alarm messages to every connected client as they happen.

The centre's threads call :meth:`Hub.publish`; the message is serialised once, in the caller's thread, and
handed to the event loop with ``loop.call_soon_threadsafe``, which wakes the loop at once (no polling
anywhere on the path). Each client has a bounded queue drained by its own task; a client whose queue is
full is too slow to keep up and is disconnected (code 1013, "try again later") instead of slowing the
others or growing memory. A newly connected client first gets a ``hello`` and the latest state.

Message shapes (JSON text frames)::

    {"type": "hello", "role": "viewer", "user": "control-room"}
    {"type": "state", "data": <StateView>}
    {"type": "alarm", "data": <AlarmView>}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gridmesh.security.tokens import Principal

QUEUE_SIZE = 64
TRY_AGAIN_LATER = 1013  # RFC 6455: server overloaded / client too slow


def frame(kind: str, payload: BaseModel | Mapping[str, Any]) -> str:
    """One JSON text frame ``{"type": kind, "data": payload}``; a model is dumped by pydantic (fast path)."""
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload, default=str)
    return f'{{"type":{json.dumps(kind)},"data":{data}}}'


@dataclass(eq=False)
class _Client:
    websocket: WebSocket
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    too_slow: bool = False
    sender: asyncio.Task[None] | None = None


class Hub:
    """Fan-out of pushed messages to WebSocket clients; ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[_Client] = set()
        self._latest_state: str | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped_clients = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (at startup); messages published before are not queued."""
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, kind: str, payload: BaseModel | Mapping[str, Any]) -> None:
        """Queue a message for every client. Thread-safe and non-blocking."""
        text = frame(kind, payload)
        if kind == "state":
            with self._lock:
                self._latest_state = text
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, text)
        except RuntimeError:  # the loop closed between the check and the call: the server is stopping
            return

    def _fan_out(self, text: str) -> None:
        for client in list(self._clients):
            if client.too_slow:
                continue
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                client.too_slow = True
                self.dropped_clients += 1
                if client.sender is not None:
                    client.sender.cancel()

    async def serve(self, websocket: WebSocket, principal: Principal) -> None:
        """Stream to an accepted, authenticated WebSocket until it disconnects or falls behind."""
        client = _Client(websocket)
        await websocket.send_text(frame("hello", {"role": principal.role.value, "user": principal.name}))
        with self._lock:
            latest = self._latest_state
        if latest is not None:
            client.queue.put_nowait(latest)
        self._clients.add(client)
        client.sender = asyncio.create_task(self._send(client))
        receiver = asyncio.create_task(self._drain_incoming(websocket))
        try:
            await asyncio.wait({client.sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._clients.discard(client)
            for task in (client.sender, receiver):
                task.cancel()
            for task in (client.sender, receiver):
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                    await task
            if client.too_slow and websocket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect, TimeoutError):
                    # a stalled peer must not hold this task forever
                    await asyncio.wait_for(websocket.close(TRY_AGAIN_LATER, "client too slow; reconnect"), 1.0)

    async def _send(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            await client.websocket.send_text(text)
            self.sent += 1

    @staticmethod
    async def _drain_incoming(websocket: WebSocket) -> None:
        """Clients send nothing after authenticating; reading is how a disconnect is noticed."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def close(self) -> None:
        """Disconnect every client (server shutdown)."""
        for client in list(self._clients):
            if client.sender is not None:
                client.sender.cancel()
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await client.websocket.close(1001, "server shutting down")
        self._clients.clear()
