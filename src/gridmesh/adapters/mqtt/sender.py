"""The field side's sender: feeds the disk buffer to the broker in order, a bounded window at a time.

Only this thread hands buffered messages to paho. Each connection is a *generation*: when a connection
comes up, paho's own queue of unacknowledged messages is dropped (it belongs to the old connection) and
the sender starts again from the oldest buffered row, so everything not yet acknowledged is resent in
buffer order. A PUBACK removes its row; acknowledgements are tagged with the generation they arrived
in, and a stale one (its packet id may already be reused) is ignored. The result is at-least-once,
in order per publisher: a message acknowledged but not yet removed when the process dies is sent again.

The callbacks below run on paho's network thread while paho holds its own locks, so they only append to
a deque and set an event; the sender thread does the work.
"""

from __future__ import annotations

import collections
import logging
import threading

import paho.mqtt.client as mqtt

from gridmesh.adapters.mqtt.buffer import DiskBuffer

_log = logging.getLogger(__name__)

IDLE_WAKE_S = 0.5  # re-check even without a wake-up, so a missed signal cannot stall the sender


class BufferedSender:
    """A thread that keeps up to ``window`` buffered messages in flight and removes them on PUBACK."""

    def __init__(self, client: mqtt.Client, buffer: DiskBuffer, *, window: int, name: str) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._client = client
        self._buffer = buffer
        self._window = window
        self._limit = window
        self._generation = 0
        self._connected = False
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-sender:{name}", daemon=True)
        self._thread.start()

    # -- called on paho's network thread -------------------------------------------------------------
    def connected(self, receive_maximum: int) -> None:
        """A new connection: forget paho's queue and resend from the oldest buffered message."""
        self._client.drop_out_messages()
        self._limit = max(1, min(self._window, receive_maximum))
        self._generation += 1
        self._connected = True
        self._wake.set()

    def disconnected(self) -> None:
        self._connected = False
        self._wake.set()

    def acked(self, mid: int) -> None:
        self._acks.append((self._generation, mid))
        self._wake.set()

    # -- called by publishers and close() -------------------------------------------------------------
    def wake(self) -> None:
        """A new message was buffered."""
        self._idle.clear()
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until every buffered message is acknowledged; False if ``timeout`` ran out first."""
        self.wake()
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # -- the sender thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        generation = 0
        in_flight: dict[int, int] = {}  # packet id -> buffer row id
        cursor = 0  # highest row id handed to paho in this generation
        while not self._stop.is_set():
            self._wake.wait(IDLE_WAKE_S)
            self._wake.clear()
            try:
                if generation != self._generation:
                    generation = self._generation
                    in_flight.clear()
                    cursor = 0
                self._remove_acked(generation, in_flight)
                if self._connected and generation == self._generation:
                    cursor = self._send(cursor, in_flight)
                if not in_flight and len(self._buffer) == 0:
                    self._idle.set()
            except Exception:  # keep the thread alive: the rows stay buffered and are retried
                _log.exception("store-and-forward sender failed; retrying in %.1f s", IDLE_WAKE_S)
                self._stop.wait(IDLE_WAKE_S)

    def _remove_acked(self, generation: int, in_flight: dict[int, int]) -> None:
        done: list[int] = []
        while self._acks:
            acked_in, mid = self._acks.popleft()
            if acked_in == generation and mid in in_flight:
                done.append(in_flight.pop(mid))
        if done:
            self._buffer.remove(done)

    def _send(self, cursor: int, in_flight: dict[int, int]) -> int:
        room = self._limit - len(in_flight)
        if room <= 0:
            return cursor
        for message in self._buffer.peek(cursor, room):
            info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                _log.warning("publish of buffered message %d refused by paho (%s)", message.id, info.rc)
                break
            in_flight[info.mid] = message.id
            cursor = message.id
        return cursor
