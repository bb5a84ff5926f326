"""The message bus the live platform runs on: in-process by default, MQTT when scaled out.

Both implementations share one contract, so the field simulator, the centre and the edge agents do not
know which one carries their messages:

* ``publish`` is at-least-once (QoS 1). It never blocks on the network: an MQTT publisher keeps the
  message in its store-and-forward buffer until the broker has acknowledged it.
* ``subscribe`` delivers messages in *batches* to the handler, from one worker thread per subscription.
  When the handler returns, the batch counts as processed and is acknowledged; if it raises, nothing in
  the batch is acknowledged and the broker redelivers it. So a handler must commit before returning, and
  storage must be idempotent (the same message may come twice).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from paho.mqtt.client import topic_matches_sub


@dataclass(frozen=True, slots=True)
class Message:
    """A received message; ``received_ns`` (``time.perf_counter_ns``) lets consumers measure latency."""

    topic: str
    payload: bytes
    received_ns: int = field(default_factory=time.perf_counter_ns)


BatchHandler = Callable[[Sequence[Message]], None]


class Bus(Protocol):
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...

    def subscribe(self, pattern: str, handler: BatchHandler) -> None: ...

    def close(self) -> None: ...


MAX_BATCH = 1_000


class _Subscription:
    """One worker thread draining a queue into a handler, batch by batch."""

    def __init__(self, pattern: str, handler: BatchHandler, on_error: Callable[[BaseException], None]) -> None:
        self.pattern = pattern
        self.handler = handler
        self.queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._on_error = on_error
        self._unhandled = 0  # put but not yet handled: drained() waits for 0 (an empty queue is not enough)
        self._count = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"bus:{pattern}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self.handler(batch)
            except Exception as exc:  # a failing handler must not stop delivery of later messages
                self._on_error(exc)
            with self._count:
                self._unhandled -= len(batch)
                self._count.notify_all()
            if stop:
                return

    def put(self, message: Message) -> None:
        with self._count:
            self._unhandled += 1
        self.queue.put(message)

    @property
    def idle(self) -> bool:
        with self._count:
            return self._unhandled == 0

    def drained(self, timeout: float) -> bool:
        with self._count:
            return self._count.wait_for(lambda: self._unhandled == 0, timeout)


class InProcessBus:
    """The embedded bus of ``gridmesh run``: topic matching as MQTT (``+`` and ``#``), no broker.

    Retained messages are kept per topic and delivered to later subscribers, as a broker would.
    Handler errors are counted and kept in ``errors`` (the last 100); delivery goes on.
    """

    def __init__(self) -> None:
        self._subs: list[_Subscription] = []
        self._retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.published = 0

    def _error(self, exc: BaseException) -> None:
        self.errors = [*self.errors[-99:], exc]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        with self._lock:
            if retain:
                self._retained[topic] = payload
            subs = [s for s in self._subs if topic_matches_sub(s.pattern, topic)]
            self.published += 1
        message = Message(topic, payload)
        for sub in subs:
            sub.put(message)

    def subscribe(self, pattern: str, handler: BatchHandler) -> None:
        with self._lock:
            sub = _Subscription(pattern, handler, self._error)
            self._subs.append(sub)
            for topic, payload in self._retained.items():
                if topic_matches_sub(pattern, topic):
                    sub.put(Message(topic, payload))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message has been handled (tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while True:  # a handler may publish to a subscription already waited for: until all are idle at once
            subs = list(self._subs)
            if not all(s.drained(max(0.0, deadline - time.monotonic())) for s in subs):
                return False
            if all(s.idle for s in subs):
                return True

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.queue.put(None)
        for s in subs:
            s.thread.join(timeout=5)
