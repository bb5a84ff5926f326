"""``MqttBus``: the :class:`gridmesh.services.bus.Bus` contract over a real broker (paho-mqtt, MQTT v5).

* **Publish (field side).** With ``buffer_path`` every message is committed to a :class:`DiskBuffer`
  before ``publish`` returns and a :class:`BufferedSender` feeds the broker in order; rows leave on
  PUBACK, so a broker outage or a restart of the publisher loses nothing. Without a buffer, messages go
  to paho's in-memory queue (resent by paho after a reconnect, lost if the process dies): right for the
  centre's commands, which are stale after a restart anyway.
* **Subscribe (centre side).** Each pattern is its own MQTT subscription with a stable *subscription
  identifier* (from the pattern's CRC), so a message matching overlapping patterns, which Mosquitto
  sends once per subscription, reaches each handler exactly once. A fixed client id with
  ``clean_start=False`` and a session expiry lets the broker keep what arrives while the centre is
  down. ``manual_ack`` holds each PUBACK until the batch handler has returned (see
  :mod:`.subscription`), so a message is acknowledged only after it was committed. Messages that
  arrive before a matching ``subscribe`` call (a persistent session resumes at once on connect) are
  parked unacknowledged and handed to the subscription they were sent for once it is made.
* **Presence.** ``will`` is the broker's last-will (retained) for a crash or lost link; ``online`` is
  published retained on every (re)connect; a clean :meth:`MqttBus.close` publishes ``will`` itself,
  since a broker sends the last-will only for unclean disconnects.

Broker settings matter: Mosquitto keeps at most ``max_queued_messages`` (default 1000) per offline
client and drops the rest, so a deployment sizes it for the outages the centre must ride out.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridmesh.adapters.mqtt.buffer import DiskBuffer
from gridmesh.adapters.mqtt.sender import BufferedSender
from gridmesh.adapters.mqtt.subscription import Delivery, Subscription
from gridmesh.adapters.mqtt.url import parse_mqtt_url
from gridmesh.errors import GridmeshError
from gridmesh.services.bus import BatchHandler, Message

SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps a persistent session of a client that is gone
KEEPALIVE_S = 30
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
SEND_WINDOW = 1_000  # buffered messages in flight at once, further capped by the broker's Receive Maximum
DIRECT_INFLIGHT = 100  # paho's own in-flight window for unbuffered publishing
CLOSE_TIMEOUT_S = 10.0
MAX_SUBSCRIPTION_ID = 268_435_455  # MQTT v5 variable byte integer limit

_log = logging.getLogger(__name__)


MAX_UNACKED_DIRECT = 20_000  # direct (unbuffered) QoS>0 messages awaiting PUBACK before publish() waits


class MqttBusError(GridmeshError):
    """The MQTT client refused an operation (closed bus, invalid topic); the message says what to do."""


@dataclass(frozen=True, slots=True)
class BusCounters:
    """Cumulative counts since the bus was created (``buffered`` and ``parked`` are current levels)."""

    published: int  # messages accepted by publish()
    acked: int  # PUBACKs received from the broker (includes presence messages)
    buffered: int  # published but not yet acknowledged by the broker
    dropped: int  # oldest buffered messages discarded because the disk buffer was full
    received: int  # messages received from the broker
    handled: int  # messages passed to handlers that returned
    parked: int  # received messages still waiting for a matching subscribe()
    reconnects: int  # successful connections after the first


class MqttBus:
    """The gridmesh bus over an MQTT broker; see the module docstring for the guarantees."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        buffer_path: Path | None = None,
        will: tuple[str, bytes] | None = None,
        online: tuple[str, bytes] | None = None,
        persistent_session: bool = True,
        max_batch: int = 1000,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        address = parse_mqtt_url(url)
        self.address = address
        self.client_id = address.client_id or client_id
        self._will = will
        self._online = online
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._parked: list[tuple[Message, Delivery, list[int]]] = []
        self._direct: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self._generation = 0
        self._connected = threading.Event()
        self._suback_pending: set[int] = set()
        self._closed = False
        self.errors: list[BaseException] = []
        self._published = self._acked = self._received = self._handled = self._connects = 0

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self._client = client
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(ca_certs=str(address.ca_path) if address.ca_path else None)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_socket_open = _set_nodelay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

        self._buffer = DiskBuffer(buffer_path) if buffer_path is not None else None
        self._sender: BufferedSender | None = None
        if self._buffer is not None:
            client.max_inflight_messages_set(0)  # the sender's window is the limit
            self._sender = BufferedSender(client, self._buffer, window=SEND_WINDOW, name=self.client_id)
        else:
            client.max_inflight_messages_set(DIRECT_INFLIGHT)

        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent_session else 0
        properties.ReceiveMaximum = min(65_535, 10 * max_batch)
        client.connect_async(
            address.host,
            address.port,
            keepalive=KEEPALIVE_S,
            clean_start=not persistent_session,
            properties=properties,
        )
        client.loop_start()

    # -- the Bus contract ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message for the broker; returns at once (after the disk commit when buffered)."""
        if self._closed:
            raise MqttBusError(f"publish to {topic!r} after close(); create a new MqttBus")
        if qos not in (0, 1, 2):
            raise MqttBusError(f"qos must be 0, 1 or 2, got {qos}")
        if not topic or "+" in topic or "#" in topic:
            raise MqttBusError(f"cannot publish to {topic!r}: a topic must be non-empty and without wildcards")
        if self._buffer is not None and self._sender is not None:
            self._buffer.append(topic, payload, qos, retain)
            self._sender.wake()
        else:
            self._publish_direct(topic, payload, qos, retain)
        with self._lock:
            self._published += 1

    def subscribe(self, pattern: str, handler: BatchHandler) -> None:
        """Deliver messages matching ``pattern`` (``+``/``#`` wildcards) to ``handler`` in batches."""
        if self._closed:
            raise MqttBusError(f"subscribe to {pattern!r} after close(); create a new MqttBus")
        with self._lock:
            sub_id = _subscription_id(pattern, {s.sub_id for s in self._subs})
        sub = Subscription(
            pattern,
            sub_id,
            handler,
            max_batch=self._max_batch,
            done=self._delivery_done,
            on_handled=self._count_handled,
            on_error=self._error,
        )
        with self._lock:
            self._subs.append(sub)
            still_parked: list[tuple[Message, Delivery, list[int]]] = []
            for message, delivery, sub_ids in self._parked:
                if _routes_to(sub, message.topic, sub_ids):
                    sub.put(message, delivery)
                else:
                    still_parked.append((message, delivery, sub_ids))
            self._parked = still_parked
            if self._connected.is_set():
                self._subscribe_at_broker(sub)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush publishes, let handlers finish what is queued, announce offline, disconnect cleanly."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        if not self.flush(timeout):
            _log.warning("%s: closing with %d message(s) unacknowledged", self.client_id, self._pending())
        for sub in self._subs:
            sub.stop(max(0.0, deadline - time.monotonic()))
        if self._will is not None and self._connected.is_set():
            info = self._publish_direct(self._will[0], self._will[1], 1, True)
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()
        if self._sender is not None:
            self._sender.stop()
        if self._buffer is not None:
            self._buffer.close()

    # -- beyond the contract ------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged everything published so far; False on timeout."""
        if self._sender is not None:
            return self._sender.flush(timeout)
        deadline = time.monotonic() + timeout
        while self._pending():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def ready(self, timeout: float = 10.0) -> bool:
        """Wait until connected and every subscription is confirmed by the broker (SUBACK)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._connected.is_set() and not self._suback_pending:
                    return True
            time.sleep(0.01)
        return False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def counters(self) -> BusCounters:
        return BusCounters(
            published=self._published,
            acked=self._acked,
            buffered=self._pending(),
            dropped=self._buffer.dropped if self._buffer is not None else 0,
            received=self._received,
            handled=self._handled,
            parked=len(self._parked),
            reconnects=max(0, self._connects - 1),
        )

    # -- internals ----------------------------------------------------------------------------------
    def _pending(self) -> int:
        if self._buffer is not None:
            return len(self._buffer)
        return sum(1 for info in list(self._direct) if not info.is_published())

    def _publish_direct(self, topic: str, payload: bytes, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        if qos > 0:
            self._await_room()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0:
            info.rc = mqtt.MQTT_ERR_SUCCESS  # paho keeps QoS>0 messages and sends them after reconnecting
        elif info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttBusError(f"paho refused to publish to {topic!r}: {mqtt.error_string(info.rc)}")
        if qos > 0:  # QoS 0 is fire-and-forget: nothing to wait for
            self._direct.append(info)
            while self._direct and self._direct[0].is_published():
                self._direct.popleft()
        return info

    def _await_room(self) -> None:
        """Backpressure: block while too many direct messages await their PUBACK. paho numbers in-flight
        messages with 16-bit ids, so an unbounded producer would collide ids ("message queue full")."""
        while len(self._direct) >= MAX_UNACKED_DIRECT:
            oldest = self._direct[0]
            if not oldest.is_published():
                oldest.wait_for_publish(timeout=1.0)
            while self._direct and self._direct[0].is_published():
                self._direct.popleft()

    def _error(self, exc: BaseException) -> None:
        _log.warning("%s: handler failed, batch will be retried: %r", self.client_id, exc)
        self.errors = [*self.errors[-99:], exc]

    def _count_handled(self, n: int) -> None:
        with self._lock:
            self._handled += n

    def _delivery_done(self, delivery: Delivery) -> None:
        with self._lock:
            delivery.pending -= 1
            if delivery.pending > 0 or delivery.qos == 0:
                return
            current = delivery.generation == self._generation and self._connected.is_set()
        if current:  # an older connection's packet id may be reused; the broker redelivers those anyway
            self._client.ack(delivery.mid, delivery.qos)

    def _subscribe_at_broker(self, sub: Subscription) -> None:
        """One SUBSCRIBE per pattern: a packet carries a single subscription identifier. Caller holds the lock."""
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        properties.SubscriptionIdentifier = sub.sub_id
        rc, mid = self._client.subscribe(sub.pattern, options=SubscribeOptions(qos=1), properties=properties)
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._suback_pending.add(mid)

    # -- paho callbacks (network thread) ------------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            _log.warning("%s: broker %s refused the connection: %s", self.client_id, self.address.display(), reason)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", 65_535)
        with self._lock:
            self._generation += 1
            self._connects += 1
            self._suback_pending.clear()
        if self._sender is not None:
            self._sender.connected(receive_maximum)
        if self._online is not None:
            client.publish(self._online[0], self._online[1], qos=1, retain=True)
        with self._lock:
            self._connected.set()
            for sub in self._subs:
                self._subscribe_at_broker(sub)
        _log.info(
            "%s: connected to %s (session present: %s)", self.client_id, self.address.display(), flags.session_present
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if self._sender is not None:
            self._sender.disconnected()
        if not self._closed:
            _log.warning("%s: lost the broker (%s); reconnecting with back-off", self.client_id, reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Properties
    ) -> None:
        self._acked += 1
        if self._sender is not None:
            self._sender.acked(mid)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties,
    ) -> None:
        failed = [r for r in reasons if r.is_failure]
        with self._lock:
            self._suback_pending.discard(mid)
        if failed:
            self._error(MqttBusError(f"broker refused a subscription: {failed}; check the broker's ACL"))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload))
        sub_ids: list[int] = getattr(msg.properties, "SubscriptionIdentifier", [])
        with self._lock:
            self._received += 1
            subs = [s for s in self._subs if _routes_to(s, message.topic, sub_ids)]
            delivery = Delivery(msg.mid, msg.qos, self._generation, len(subs))
            if not subs:
                delivery.pending = 1
                self._parked.append((message, delivery, sub_ids))
                return
        for sub in subs:
            sub.put(message, delivery)


def _subscription_id(pattern: str, taken: set[int]) -> int:
    """A subscription identifier that stays the same across restarts, so a resumed session's messages
    (tagged with the ids of the previous run) still find their handler."""
    sub_id = zlib.crc32(pattern.encode()) % MAX_SUBSCRIPTION_ID + 1
    while sub_id in taken:
        sub_id = sub_id % MAX_SUBSCRIPTION_ID + 1
    return sub_id


def _routes_to(sub: Subscription, topic: str, sub_ids: list[int]) -> bool:
    """By subscription identifier when the broker sent one, else by topic match."""
    if sub_ids:
        return sub.sub_id in sub_ids
    return bool(mqtt.topic_matches_sub(sub.pattern, topic))


def _set_nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Disable Nagle: small PUBLISH/PUBACK packets must not wait for more data (latency target 50 ms p99)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
