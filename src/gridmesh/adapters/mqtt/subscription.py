"""The centre side's delivery: batches to handlers, PUBACK only after the handler has returned.

A broker message may match several subscriptions of one client; it is acknowledged once, when every
matching handler has returned (:class:`Delivery` counts them down). A handler that raises is retried on
the same batch with exponential back-off (``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``) instead of
being skipped: the batch stays unacknowledged, so if the process dies meanwhile the broker redelivers it
to the next session, and while it lives the retry *is* the redelivery, in the original order. The cost
is that a message the handler can never accept blocks its subscription, which is why handlers put
malformed messages in a dead-letter store and raise only for transient failures (storage down).
Unacknowledged messages also hold back the broker (its in-flight window is the client's Receive Maximum),
which is the back-pressure we want when storage is slow.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gridmesh.services.bus import BatchHandler, Message

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0


@dataclass(slots=True)
class Delivery:
    """One received PUBLISH: its packet id, QoS, the connection it came on, and handlers still to finish."""

    mid: int
    qos: int
    generation: int
    pending: int


AckFn = Callable[[Delivery], None]


class Subscription:
    """One pattern (``sub_id`` is its MQTT subscription identifier), one handler, one worker thread."""

    def __init__(
        self,
        pattern: str,
        sub_id: int,
        handler: BatchHandler,
        *,
        max_batch: int,
        done: AckFn,
        on_handled: Callable[[int], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.pattern = pattern
        self.sub_id = sub_id
        self._handler = handler
        self._max_batch = max_batch
        self._done = done
        self._on_handled = on_handled
        self._on_error = on_error
        self._queue: queue.SimpleQueue[tuple[Message, Delivery] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-sub:{pattern}", daemon=True)
        self._thread.start()

    def put(self, message: Message, delivery: Delivery) -> None:
        self._queue.put((message, delivery))

    def stop(self, timeout: float) -> bool:
        """Handle what is queued, then end; a handler still failing at that point is given up on.

        Returns False if the worker did not finish within ``timeout`` (its messages stay unacknowledged).
        """
        self._queue.put(None)
        self._stopping.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            end = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    end = True
                    break
                batch.append(item)
            if self._handle([m for m, _ in batch]):
                for _, delivery in batch:
                    self._done(delivery)
            if end:
                return

    def _handle(self, messages: list[Message]) -> bool:
        delay = RETRY_FIRST_S
        while True:
            try:
                self._handler(messages)
            except Exception as exc:  # retried below: a failing batch must be neither lost nor acknowledged
                self._on_error(exc)
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                self._on_handled(len(messages))
                return True
