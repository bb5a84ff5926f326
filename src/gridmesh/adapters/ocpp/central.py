"""The OCPP central system: a websockets server on its own thread, one ``ocpp`` session per station.

Stations connect to ``ws(s)://host:port/ocpp/<charger_id>`` offering ``ocpp2.0.1`` and/or ``ocpp1.6``;
the server picks 2.0.1 when both are offered. The handshake admits only registered, authenticated
stations (:mod:`gridmesh.adapters.ocpp.auth`). Other threads use the blocking methods
(:meth:`CentralSystem.push_profiles`, :meth:`CentralSystem.remote_start` …), which run on the server's
loop; a station that does not answer in ``response_timeout_s`` yields a timeout result, never a hang.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from ocpp.exceptions import OCPPError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gridmesh.adapters.ocpp import handlers_v16, handlers_v201
from gridmesh.adapters.ocpp.auth import PATH_PREFIX, PasswordStore, SecurityProfile, charger_of_path, handshake_check
from gridmesh.adapters.ocpp.profiles import Plan, plan_periods
from gridmesh.adapters.ocpp.registry import ChargerRegistry
from gridmesh.adapters.ocpp.sink import OcppSink
from gridmesh.adapters.ocpp.state import CentreState
from gridmesh.errors import GridmeshError

T = TypeVar("T")
SUBPROTOCOLS = (Subprotocol(handlers_v201.SUBPROTOCOL), Subprotocol(handlers_v16.SUBPROTOCOL))
LISTEN_BACKLOG = 2048  # a fleet reconnecting at once must not overflow the accept queue (asyncio's default: 100)
MAX_FRAME_BYTES = 1 << 16
START_TIMEOUT_S = 10.0


class OcppCallError(GridmeshError):
    """A call to a station failed: not connected, no answer in time, or a CALLERROR."""


class PushOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    NOT_CONNECTED = "not_connected"
    ERROR = "error"  # a CALLERROR or an invalid plan; see ``detail``


@dataclass(frozen=True, slots=True)
class PushResult:
    charger_id: str
    outcome: PushOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PushReport:
    """Per-charger results of one push and its wall time (s) from first send to last answer or timeout."""

    results: Mapping[str, PushResult]
    wall_s: float

    def count(self, outcome: PushOutcome) -> int:
        return sum(r.outcome is outcome for r in self.results.values())


class StationSession(Protocol):
    """What both protocol versions' centre sessions offer (handlers_v201.CentreV201, handlers_v16.CentreV16)."""

    id: str

    async def start(self) -> None: ...

    async def set_station_plan(self, periods_w: Sequence[tuple[int, float]], start: datetime) -> str: ...

    async def clear_station_plan(self) -> str: ...

    async def remote_start(self, id_token: str, connector: int) -> str: ...

    async def remote_stop(self, transaction_id: str) -> str: ...


@dataclass(frozen=True)
class CentralConfig:
    """How the centre listens. Profile 1 needs ``passwords``; 2 adds ``tls``; 3 needs ``tls`` that
    requires client certificates (``auth.server_tls_context(..., client_ca_file=...)``)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (tests); see CentralSystem.url
    profile: SecurityProfile = SecurityProfile.BASIC
    passwords: PasswordStore | None = None
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    response_timeout_s: float = 10.0
    heartbeat_s: int = 300
    push_concurrency: int = 128
    accepted_tokens: frozenset[str] | None = None  # None: any non-empty id token may charge

    def problems(self) -> list[str]:
        found = []
        if self.profile is not SecurityProfile.CLIENT_CERT and self.passwords is None:
            found.append(f"security profile {int(self.profile)} needs passwords (auth.provision_passwords)")
        if self.profile >= SecurityProfile.BASIC_TLS and self.tls is None:
            found.append(f"security profile {int(self.profile)} needs a TLS context (auth.server_tls_context)")
        if self.profile is SecurityProfile.CLIENT_CERT and self.tls and self.tls.verify_mode != ssl.CERT_REQUIRED:
            found.append("security profile 3 needs a TLS context that requires client certificates (client_ca_file)")
        if self.profile is SecurityProfile.BASIC and self.tls is not None:
            found.append("security profile 1 is plain ws://; use profile 2 for Basic auth over TLS")
        if not self.response_timeout_s > 0 or self.push_concurrency < 1:
            found.append("response_timeout_s must be > 0 and push_concurrency ≥ 1")
        return found


class CentralSystem:
    """The OCPP server as a service: ``start()``, ``url``, calls to stations, ``stop()``."""

    def __init__(self, registry: ChargerRegistry, sink: OcppSink, config: CentralConfig | None = None) -> None:
        self.config = config or CentralConfig()
        problems = self.config.problems()
        if problems:
            raise ValueError("OCPP central system: " + "; ".join(problems))
        self.registry = registry
        self.state = CentreState(sink, accepted_tokens=self.config.accepted_tokens)
        self._sessions: dict[str, StationSession] = {}
        self._connections: dict[str, ServerConnection] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL; a station connects to ``url + charger_id``."""
        scheme = "ws" if self.config.tls is None else "wss"
        return f"{scheme}://{self.config.host}:{self.port}{PATH_PREFIX}"

    def start(self) -> CentralSystem:
        if self._thread is not None:
            raise RuntimeError("the OCPP central system is already started")
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="ocpp-central", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._failure is not None:
            raise OcppCallError(f"the OCPP central system did not start: {self._failure}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                subprotocols=list(SUBPROTOCOLS),
                process_request=handshake_check(self.registry, self.config.profile, self.config.passwords),
                compression=None,  # OCPP frames are small; deflate would cost CPU per frame for little
                max_size=MAX_FRAME_BYTES,
                ssl=self.config.tls,
                backlog=LISTEN_BACKLOG,
            )
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None  # the handshake passed handshake_check
        charger_id = charger_of_path(connection.request.path)
        assert charger_id is not None
        session: StationSession
        options: dict[str, Any] = {
            "response_timeout": self.config.response_timeout_s,
            "heartbeat_s": self.config.heartbeat_s,
        }
        if connection.subprotocol == handlers_v16.SUBPROTOCOL:
            session, version = handlers_v16.CentreV16(charger_id, connection, self.state, **options), "1.6"
        else:
            session, version = handlers_v201.CentreV201(charger_id, connection, self.state, **options), "2.0.1"
        stale = self._connections.get(charger_id)
        if stale is not None:  # one connection per identity: a reconnecting station replaces its old link
            closing = asyncio.create_task(stale.close(code=1008, reason="replaced by a new connection"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._sessions[charger_id], self._connections[charger_id] = session, connection
        self.state.connected(charger_id, version)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self._sessions.get(charger_id) is session:
                del self._sessions[charger_id], self._connections[charger_id]
                self.state.disconnected(charger_id)

    # ---- calls to stations (any thread) --------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise OcppCallError("the OCPP central system is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def connected(self) -> list[str]:
        return sorted(c for c, s in self.state.chargers().items() if s.connected)

    def _session_call(self, charger_id: str, action: str, method: str, *args: Any) -> str:
        async def go() -> str:
            session = self._sessions.get(charger_id)
            if session is None:
                raise OcppCallError(f"{charger_id} is not connected; {action} not sent")
            try:
                return str(await getattr(session, method)(*args))
            except TimeoutError as exc:
                timeout = self.config.response_timeout_s
                raise OcppCallError(f"{charger_id} did not answer {action} within {timeout:g} s") from exc
            except OCPPError as exc:
                raise OcppCallError(f"{charger_id} answered {action} with {exc.code}: {exc.description}") from exc
            except ConnectionClosed as exc:
                raise OcppCallError(f"{charger_id} disconnected before answering {action}") from exc
            except ValueError as exc:  # e.g. a 1.6 transaction id that is not an integer
                raise OcppCallError(f"{charger_id}: {action} not sent: {exc}") from exc

        return self._run(go())

    def remote_start(self, charger_id: str, id_token: str, *, connector: int = 1) -> str:
        """RequestStartTransaction (2.0.1) / RemoteStartTransaction (1.6); returns the station's status.

        Raises:
            OcppCallError: not connected, no answer in time, or a CALLERROR.
        """
        return self._session_call(charger_id, "a remote start", "remote_start", id_token, connector)

    def remote_stop(self, charger_id: str, transaction_id: str) -> str:
        """RequestStopTransaction (2.0.1) / RemoteStopTransaction (1.6); returns the station's status."""
        return self._session_call(charger_id, "a remote stop", "remote_stop", transaction_id)

    def clear_charging_profile(self, charger_id: str) -> str:
        """ClearChargingProfile for the station-wide limit set by :meth:`push_profiles`."""
        return self._session_call(charger_id, "ClearChargingProfile", "clear_station_plan")

    def push_profiles(self, plans: Mapping[str, Plan]) -> PushReport:
        """SetChargingProfile to every charger at once (at most ``push_concurrency`` in flight).

        A plan is a limit in kW or periods ``[(seconds from now, kW), …]``; it limits the whole station.
        """
        return self._run(self.push_profiles_async(plans))

    async def push_profiles_async(self, plans: Mapping[str, Plan]) -> PushReport:
        gate = asyncio.Semaphore(self.config.push_concurrency)
        start = datetime.now(UTC)

        async def one(charger_id: str, plan: Plan) -> PushResult:
            try:
                periods = plan_periods(charger_id, plan)
            except ValueError as exc:
                return PushResult(charger_id, PushOutcome.ERROR, str(exc))
            session = self._sessions.get(charger_id)
            if session is None:
                return PushResult(charger_id, PushOutcome.NOT_CONNECTED, "not connected")
            async with gate:
                try:
                    status = await session.set_station_plan(periods, start)
                except TimeoutError:
                    detail = f"no answer in {self.config.response_timeout_s:g} s"
                    return PushResult(charger_id, PushOutcome.TIMEOUT, detail)
                except OCPPError as exc:
                    return PushResult(charger_id, PushOutcome.ERROR, f"{exc.code}: {exc.description}")
                except ConnectionClosed:
                    return PushResult(charger_id, PushOutcome.NOT_CONNECTED, "connection closed during the call")
                except Exception as exc:  # an answer the library cannot read: this charger's error, not the push's
                    return PushResult(charger_id, PushOutcome.ERROR, f"unreadable answer: {exc}")
            outcome = PushOutcome.ACCEPTED if status == "Accepted" else PushOutcome.REJECTED
            return PushResult(charger_id, outcome, status)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(c, p) for c, p in plans.items()))
        return PushReport({r.charger_id: r for r in results}, time.perf_counter() - t0)
