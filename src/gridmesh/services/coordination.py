"""ADMM coordination over the bus: the DSO's :class:`Coordinator` and one :class:`MicrogridAgent` per microgrid.

Per round k the coordinator publishes to each agent, signed with its key, the price ``λ_i`` and target
``z_i`` (a retained message, so an agent that connects late or lost a message still finds the latest);
each agent answers with its signed bid ``p_i`` for round k. Only boundary powers and prices cross; an
agent's data never leaves it. Topics (QoS 1)::

    gridmesh/v1/coordination/{run}/{agent}/price     coordinator → agent (retained; cleared at the end)
    gridmesh/v1/coordination/{run}/{agent}/bid       agent → coordinator

The coordinator waits for the round's bids until every expected agent has answered or
``round_timeout_s`` passes, then updates with the latest valid bid of each agent (asynchronous ADMM:
a straggler's last bid stands in). A bid that does not decode, is signed wrongly, names another run or
agent, has the wrong length, a NaN (``null`` in JSON), or a power beyond the agent's PCC rating is excluded from the
round and logged with the reason (``rejections``). An agent silent for ``max_stale_rounds`` rounds in a
row is no longer waited for (it may come back); an agent that never sent a valid bid is pinned at zero
import. The result says which agents were stale or never heard from, so a reader knows what the
converged plan assumed. Nothing an agent sends can stop the coordinator.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt

from gridmesh.adapters.mqtt.bus import MqttBus
from gridmesh.errors import GridmeshError
from gridmesh.optim.admm import AdmmCoordinator, AdmmSettings, Residuals
from gridmesh.optim.feeder_problem import FeederData
from gridmesh.optim.lp import FloatArray
from gridmesh.optim.microgrid_problem import MicrogridAgentProblem, MicrogridData, MicrogridError
from gridmesh.security.keys import DeviceCredential, DeviceSecret, provision
from gridmesh.security.signing import sign, verify
from gridmesh.services.bus import Bus, InProcessBus, Message

COORDINATOR = "coordinator"  # the identity that signs price signals
ROOT = "gridmesh/v1/coordination"
RANGE_TOLERANCE = 1e-6  # relative slack on the PCC rating check (solver round-off)
_log = logging.getLogger(__name__)
BoolArray = npt.NDArray[np.bool_]


class PriceSignal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Round ``seq`` for one agent: ``price`` λ (€/kW per step), ``target_kw`` z, penalty ``rho`` (€/kW²).
    ``final`` ends the run; ``target_kw`` is then the agreed schedule."""

    device: str
    seq: int
    ts: int
    run: str
    agent: str
    price: list[float]
    target_kw: list[float]
    rho: float
    final: bool = False
    alg: str = "ed25519"
    sig: str = ""


class Bid(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An agent's PCC import per step (kW) answering round ``seq``."""

    device: str
    seq: int
    ts: int
    run: str
    pcc_kw: list[float]
    alg: str = "ed25519"
    sig: str = ""


_M = TypeVar("_M", PriceSignal, Bid)


def _sign(message: _M, key: DeviceSecret) -> _M:
    # gridmesh.security.signing is typed for the telemetry messages; it needs only a msgspec struct with
    # ``alg`` and ``sig`` fields, which these are.
    return cast(_M, sign(cast(Any, message), key))


def _verify(message: PriceSignal | Bid, credential: DeviceCredential) -> bool:
    return verify(cast(Any, message), credential)


def price_topic(run: str, agent: str) -> str:
    return f"{ROOT}/{run}/{agent}/price"


def bid_topic(run: str, agent: str) -> str:
    return f"{ROOT}/{run}/{agent}/bid"


@dataclass(frozen=True)
class Rejection:
    """A message excluded from a round, and why."""

    round: int
    agent: str
    reason: str


@dataclass(frozen=True)
class CoordinationResult:
    """Where a distributed run ended. ``pcc_kw``: the bids used last ``(N, T)``; ``feeder_kw``: the DSO's z."""

    converged: bool
    iterations: int
    pcc_kw: FloatArray
    feeder_kw: FloatArray
    price: FloatArray
    history: tuple[Residuals, ...]
    rejections: tuple[Rejection, ...]
    missed_rounds: Mapping[str, int]  # rounds each agent did not answer in time
    stale: tuple[str, ...]  # agents whose bid in the last round was an older one
    never_heard: tuple[str, ...]  # agents pinned at zero import: no valid bid at all
    seconds: float


class Coordinator:
    """The DSO's side: publishes prices, collects and checks bids, runs :class:`AdmmCoordinator`."""

    def __init__(
        self,
        bus: Bus,
        feeder: FeederData,
        credentials: Mapping[str, DeviceCredential],
        key: DeviceSecret,
        *,
        run: str,
        settings: AdmmSettings | None = None,
        round_timeout_s: float = 5.0,
        max_stale_rounds: int = 3,
        on_round: Callable[[Residuals], None] | None = None,
    ) -> None:
        missing = [a for a in feeder.agents if a not in credentials]
        if missing:
            raise ValueError(f"no credential for agent(s) {missing}: provision their keys first")
        self.bus, self.feeder, self.key, self.run_id = bus, feeder, key, run
        self.admm = AdmmCoordinator(feeder, settings or AdmmSettings())
        self._credentials = dict(credentials)
        self._timeout, self._max_stale, self._on_round = round_timeout_s, max_stale_rounds, on_round
        self._index = {a: i for i, a in enumerate(feeder.agents)}
        n, t = len(feeder.agents), feeder.steps
        self._bids = np.zeros((n, t))
        self._bid_round = np.full(n, -1, dtype=np.int64)  # round of each agent's latest valid bid
        self._silent = np.zeros(n, dtype=np.int64)  # consecutive rounds without a fresh bid
        self._missed = np.zeros(n, dtype=np.int64)
        self._round = 0
        self._arrived = threading.Condition()
        self.rejections: list[Rejection] = []
        bus.subscribe(f"{ROOT}/{run}/+/bid", self._on_bids)

    # -- bids (bus thread) ---------------------------------------------------------------------------
    def _on_bids(self, batch: Sequence[Message]) -> None:
        for message in batch:
            try:
                self._take(message)
            except Exception as exc:  # a message must never stop the coordinator; log and go on
                self._reject(message.topic.split("/")[-2], f"could not be processed: {exc!r}")

    def _take(self, message: Message) -> None:
        agent = message.topic.split("/")[-2]
        try:  # JSON has no NaN or infinity: msgspec refuses ``null`` and ``1e999`` for a float here
            bid = msgspec.json.decode(message.payload, type=Bid)
        except msgspec.DecodeError as exc:
            self._reject(agent, f"not a bid: {exc}")
            return
        reason = self._check(agent, bid)
        if reason:
            self._reject(agent, reason)
            return
        i = self._index[agent]
        with self._arrived:
            if bid.seq > self._bid_round[i]:
                self._bids[i] = np.asarray(bid.pcc_kw)
                self._bid_round[i] = bid.seq
                self._silent[i] = 0  # back (even if late for this round): wait for it again from the next
                self._arrived.notify_all()

    def _check(self, agent: str, bid: Bid) -> str:
        """Why the bid is excluded, or the empty string if it is fine."""
        credential = self._credentials.get(agent)
        if agent not in self._index or credential is None:
            return "unknown agent"
        if bid.device != agent:
            return f"bid signed as {bid.device!r} on {agent!r}'s topic"
        if not _verify(bid, credential):
            return "signature does not verify"
        if bid.run != self.run_id:
            return f"bid for run {bid.run!r}, not {self.run_id!r}"
        if bid.seq > self._round:
            return f"bid for round {bid.seq}, which was not asked yet"
        values = np.asarray(bid.pcc_kw, dtype=np.float64)
        if values.shape != (self.feeder.steps,):
            return f"{values.size} values, expected one per step ({self.feeder.steps})"
        limit = self.feeder.pcc_limit_kw[self._index[agent]] * (1 + RANGE_TOLERANCE)
        beyond = np.abs(values) > limit
        if beyond.any():
            k = int(np.argmax(beyond))
            return f"pcc_kw {values[k]:.1f} kW at step {k} is beyond the PCC rating ±{limit:.1f} kW"
        return ""

    def _reject(self, agent: str, reason: str) -> None:
        with self._arrived:
            self.rejections.append(Rejection(self._round, agent, reason))
        _log.warning("round %d: message from %s excluded: %s", self._round, agent, reason)

    # -- rounds --------------------------------------------------------------------------------------
    def _publish(self, *, final: bool = False) -> None:
        now = time.time_ns()
        for agent, i in self._index.items():
            signal = PriceSignal(
                device=COORDINATOR,
                seq=self._round,
                ts=now,
                run=self.run_id,
                agent=agent,
                price=self.admm.price[i].tolist(),
                target_kw=self.admm.z[i].tolist(),
                rho=self.admm.rho,
                final=final,
            )
            self.bus.publish(price_topic(self.run_id, agent), msgspec.json.encode(_sign(signal, self.key)), retain=True)

    def _wait(self, k: int) -> tuple[FloatArray, BoolArray, BoolArray]:
        """Wait for round ``k``'s bids; returns (bids, which agents have any bid, which answered round k)."""
        deadline = time.monotonic() + self._timeout
        with self._arrived:
            expected = self._silent < self._max_stale
            self._arrived.wait_for(
                lambda: bool((self._bid_round[expected] >= k).all()), max(0.0, deadline - time.monotonic())
            )
            return self._bids.copy(), self._bid_round >= 0, self._bid_round >= k

    def run(self) -> CoordinationResult:
        """Rounds until the residuals and every expected agent agree, or ``max_iterations``."""
        start = time.perf_counter()
        history: list[Residuals] = []
        converged = False
        fresh = np.zeros(len(self._index), dtype=bool)
        for k in range(self.admm.settings.max_iterations):
            with self._arrived:
                self._round = k
            self._publish()
            bids, active, fresh = self._wait(k)
            with self._arrived:
                self._silent = np.where(fresh, 0, self._silent + 1)
            self._missed += ~fresh
            residuals = self.admm.update(bids, active=active)
            history.append(residuals)
            if self._on_round is not None:
                self._on_round(residuals)
            if residuals.converged and fresh[self._silent < self._max_stale].all():
                converged = True
                break
        with self._arrived:
            self._round += 1
        self._publish(final=True)
        agents = self.feeder.agents
        return CoordinationResult(
            converged=converged,
            iterations=len(history),
            pcc_kw=self.admm.bids.copy(),
            feeder_kw=self.admm.z.copy(),
            price=self.admm.price.copy(),
            history=tuple(history),
            rejections=tuple(self.rejections),
            missed_rounds={a: int(m) for a, m in zip(agents, self._missed, strict=True) if m},
            stale=tuple(a for a, f, r in zip(agents, fresh, self._bid_round, strict=True) if not f and r >= 0),
            never_heard=tuple(a for a, r in zip(agents, self._bid_round, strict=True) if r < 0),
            seconds=time.perf_counter() - start,
        )

    def clear(self) -> None:
        """Remove the retained price messages from the broker (an empty retained message deletes one)."""
        for agent in self._index:
            self.bus.publish(price_topic(self.run_id, agent), b"", retain=True)


class MicrogridAgent:
    """A microgrid's side: answers each signed price with its best response; its data stays here."""

    def __init__(
        self, bus: Bus, data: MicrogridData, key: DeviceSecret, coordinator: DeviceCredential, *, run: str
    ) -> None:
        if key.device != data.id:
            raise ValueError(f"agent {data.id} was given the key of {key.device}")
        self.bus, self.data, self.key, self.coordinator, self.run_id = bus, data, key, coordinator, run
        self.problem = MicrogridAgentProblem(data)
        self.done = threading.Event()
        self.schedule_kw: FloatArray | None = None
        self.answered = 0
        self._last = -1

    def start(self) -> None:
        self.bus.subscribe(price_topic(self.run_id, self.data.id), self._on_signals)

    def _on_signals(self, batch: Sequence[Message]) -> None:
        valid = [s for s in (self._signal(m) for m in batch) if s is not None]
        if not valid:
            return
        signal = max(valid, key=lambda s: s.seq)  # rounds queued while solving: answer only the newest
        if signal.final:
            self.schedule_kw = np.asarray(signal.target_kw)
            self.done.set()
            return
        try:
            answer = self.problem.solve(
                price=np.asarray(signal.price), target_kw=np.asarray(signal.target_kw), rho=signal.rho
            )
        except MicrogridError as exc:
            _log.error("%s: no bid for round %d: %s", self.data.id, signal.seq, exc)
            return
        self._last = signal.seq
        bid = Bid(device=self.data.id, seq=signal.seq, ts=time.time_ns(), run=self.run_id,
                  pcc_kw=answer.pcc_kw.tolist())  # fmt: skip
        self.bus.publish(bid_topic(self.run_id, self.data.id), msgspec.json.encode(_sign(bid, self.key)))
        self.answered += 1

    def _signal(self, message: Message) -> PriceSignal | None:
        if not message.payload:
            return None  # a cleared retained message
        try:
            signal = msgspec.json.decode(message.payload, type=PriceSignal)
        except msgspec.DecodeError as exc:
            _log.warning("%s: ignored a price message that does not decode: %s", self.data.id, exc)
            return None
        steps = self.data.steps
        if signal.device != COORDINATOR or not _verify(signal, self.coordinator):
            reason = "its signature does not verify"
        elif signal.run != self.run_id or signal.agent != self.data.id:
            reason = "it is for another run or agent"
        elif len(signal.price) != steps or len(signal.target_kw) != steps or not math.isfinite(signal.rho):
            reason = f"it does not hold {steps} prices and targets and a finite rho"
        elif signal.seq <= self._last:
            return None  # answered already (a redelivery)
        else:
            return signal
        _log.warning("%s: ignored price for round %d: %s", self.data.id, signal.seq, reason)
        return None


# -- running a whole case ------------------------------------------------------------------------------
def new_run_id() -> str:
    """A fresh run id: topics of different runs on one broker never mix."""
    return secrets.token_hex(4)


def agent_process(
    url: str,
    run: str,
    grids: Sequence[MicrogridData],
    keys: Sequence[DeviceSecret],
    coordinator: DeviceCredential,
    ready: Any,
    timeout_s: float,
) -> None:
    """Entry point of an agents' process: one MQTT connection, one agent per microgrid, until the final round."""
    bus = MqttBus(url, client_id=f"gridmesh-agents-{run}-{grids[0].id}", persistent_session=False)
    agents = [MicrogridAgent(bus, g, k, coordinator, run=run) for g, k in zip(grids, keys, strict=True)]
    for agent in agents:
        agent.start()
    bus.ready(timeout=30.0)
    ready.put(len(agents))
    deadline = time.monotonic() + timeout_s
    for agent in agents:
        agent.done.wait(max(0.0, deadline - time.monotonic()))
    bus.close()


class CoordinationError(GridmeshError):
    """The agents' processes did not come up; the message says which and how they ended."""


def _await_workers(workers: Sequence[multiprocessing.process.BaseProcess], ready: Any, *, timeout_s: float) -> None:
    """Wait until every agents' process has subscribed, failing early if one dies."""
    deadline, up = time.monotonic() + timeout_s, 0
    while up < len(workers):
        try:
            ready.get(timeout=0.2)
            up += 1
        except queue.Empty:
            dead = [w.name for w in workers if w.exitcode is not None]
            if dead or time.monotonic() > deadline:
                raise CoordinationError(
                    f"agents' processes not up ({up} of {len(workers)} ready; ended: {dead or 'none'}); "
                    "check the broker URL and the processes' log"
                ) from None


def coordinate(
    grids: Sequence[MicrogridData],
    feeder: FeederData,
    *,
    url: str | None = None,
    processes: int = 0,
    settings: AdmmSettings | None = None,
    round_timeout_s: float = 5.0,
    on_round: Callable[[Residuals], None] | None = None,
) -> CoordinationResult:
    """Run a case end to end with fresh keys: agents in this process (threads on the bus) or in
    ``processes`` separate processes talking over the MQTT broker at ``url``."""
    if processes and url is None:
        raise ValueError("agents in separate processes need a broker: pass an MQTT url")
    run = new_run_id()
    agent_keys, credentials = provision([g.id for g in grids])
    own_key, own = provision([COORDINATOR])
    key, coordinator_credential = own_key[COORDINATOR], own[COORDINATOR]
    if url is None:
        bus: Bus = InProcessBus()
    else:
        bus = MqttBus(url, client_id=f"gridmesh-coordinator-{run}", persistent_session=False)
    workers: list[multiprocessing.process.BaseProcess] = []
    try:
        coordinator = Coordinator(bus, feeder, credentials, key, run=run, settings=settings,
                                  round_timeout_s=round_timeout_s, on_round=on_round)  # fmt: skip
        if processes:
            # A fork server: no inherited threads or broker sockets (unlike fork), and the heavy imports are
            # done once in the server instead of once per process (unlike spawn).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __name__])
            ready = context.Queue()
            chunks = [c for c in np.array_split(np.arange(len(grids)), min(processes, len(grids))) if c.size]
            for chunk in chunks:
                args = (url, run, [grids[i] for i in chunk], [agent_keys[grids[i].id] for i in chunk],
                        coordinator_credential, ready, 3600.0)  # fmt: skip
                workers.append(context.Process(target=agent_process, args=args, daemon=True))
                workers[-1].start()
            _await_workers(workers, ready, timeout_s=120.0)
        else:
            for g in grids:
                MicrogridAgent(bus, g, agent_keys[g.id], coordinator_credential, run=run).start()
        result = coordinator.run()
        coordinator.clear()
        for worker in workers:
            worker.join(timeout=30.0)
        return result
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        bus.close()
