"""MqttBus against the shared Mosquitto (127.0.0.1:1883): round trip, batching, routing, ack after the
handler, presence by last-will. Every test uses its own topic root and client ids."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gridmesh.adapters.mqtt import MqttBus, MqttBusError
from gridmesh.adapters.mqtt import bus as mqtt_bus_module
from gridmesh.services.bus import Bus, Message
from support.brokers import SHARED_BROKER, wait_for

MakeBus = Callable[..., MqttBus]


@pytest.fixture
def root() -> str:
    return f"gridmesh-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_bus() -> Iterator[MakeBus]:
    """Buses closed at the end of the test, whatever happens in it."""
    made: list[MqttBus] = []

    def make(**kwargs: object) -> MqttBus:
        kwargs.setdefault("client_id", f"test-{uuid.uuid4().hex[:12]}")
        kwargs.setdefault("persistent_session", False)
        bus = MqttBus(SHARED_BROKER, **kwargs)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close(timeout=5)


class Collector:
    """A handler that records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Message]) -> None:
        with self._lock:
            self.batches.append(list(batch))

    @property
    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m.payload for b in self.batches for m in b]


def test_mqtt_bus_satisfies_the_bus_protocol(make_bus: MakeBus) -> None:
    bus: Bus = make_bus()
    assert isinstance(bus, MqttBus)


def test_round_trip_delivers_every_message_in_order(make_bus: MakeBus, root: str) -> None:
    sub, pub = make_bus(), make_bus()
    got = Collector()
    sub.subscribe(f"{root}/+/telemetry", got)
    assert sub.ready(10), "subscription not confirmed by the broker"
    for i in range(300):
        pub.publish(f"{root}/meter-1/telemetry", str(i).encode())
    wait_for(lambda: len(got.payloads) >= 300, 30, "300 messages")
    assert got.payloads == [str(i).encode() for i in range(300)]
    assert pub.flush(10)
    counts = pub.counters()
    assert (counts.published, counts.acked, counts.buffered) == (300, 300, 0)
    wait_for(lambda: sub.counters().handled == 300, 10, "handled count")
    assert sub.counters().received == 300


def test_a_direct_publisher_waits_for_acks_instead_of_overflowing(
    make_bus: MakeBus, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_bus_module, "MAX_UNACKED_DIRECT", 4)  # paho's real bound is 65,535 ids
    sub, pub = make_bus(), make_bus()
    got = Collector()
    sub.subscribe(f"{root}/+/telemetry", got)
    assert sub.ready(10)
    for i in range(200):
        pub.publish(f"{root}/meter-1/telemetry", str(i).encode())
        assert len(pub._direct) <= 4
    wait_for(lambda: len(got.payloads) >= 200, 30, "200 messages")
    assert got.payloads == [str(i).encode() for i in range(200)]


def test_handler_gets_batches_of_what_is_queued_up_to_max_batch(make_bus: MakeBus, root: str) -> None:
    sub, pub = make_bus(max_batch=50), make_bus()
    release = threading.Event()
    sizes: list[int] = []

    def slow(batch: Sequence[Message]) -> None:
        sizes.append(len(batch))
        release.wait(30)

    sub.subscribe(f"{root}/x", slow)
    assert sub.ready(10)
    pub.publish(f"{root}/x", b"first")
    wait_for(lambda: sizes == [1], 10, "the first batch")
    for i in range(230):
        pub.publish(f"{root}/x", str(i).encode())
    wait_for(lambda: sub.counters().received == 231, 30, "230 more messages queued behind the busy handler")
    release.set()
    wait_for(lambda: sum(sizes) == 231, 30, "all batches handled")
    assert sizes == [1, 50, 50, 50, 50, 30]


def test_wildcard_routing_sends_each_message_to_every_matching_subscription(make_bus: MakeBus, root: str) -> None:
    sub, pub = make_bus(), make_bus()
    telemetry, everything, events_a = Collector(), Collector(), Collector()
    sub.subscribe(f"{root}/+/telemetry", telemetry)
    sub.subscribe(f"{root}/#", everything)
    sub.subscribe(f"{root}/a/event", events_a)
    assert sub.ready(10)
    for topic in ("a/telemetry", "b/event", "a/event", "b/telemetry"):
        pub.publish(f"{root}/{topic}", topic.encode())
    wait_for(lambda: len(everything.payloads) >= 4, 30, "4 messages on the # subscription")
    wait_for(lambda: len(telemetry.payloads) == 2 and len(events_a.payloads) == 1, 10, "routed messages")
    assert telemetry.payloads == [b"a/telemetry", b"b/telemetry"]
    assert events_a.payloads == [b"a/event"]
    assert everything.payloads == [b"a/telemetry", b"b/event", b"a/event", b"b/telemetry"]
    # Mosquitto sends one copy per matching subscription (7 here); each copy reaches only its own handler.
    wait_for(lambda: sub.counters().handled == 7, 10, "7 copies handled")
    assert sub.counters().received == 7


def test_a_failing_handler_gets_the_same_batch_again_and_it_is_acked_only_after_success(
    make_bus: MakeBus, root: str
) -> None:
    client_id = f"test-centre-{uuid.uuid4().hex[:8]}"
    attempts: list[list[bytes]] = []

    def flaky(batch: Sequence[Message]) -> None:
        attempts.append([m.payload for m in batch])
        if len(attempts) < 3:
            raise RuntimeError("storage unavailable")

    sub = make_bus(client_id=client_id, persistent_session=True)
    sub.subscribe(f"{root}/x", flaky)
    assert sub.ready(10)
    pub = make_bus()
    pub.publish(f"{root}/x", b"reading")
    wait_for(lambda: len(attempts) == 3, 30, "two failures and a success")
    assert attempts == [[b"reading"]] * 3
    assert len(sub.errors) == 2 and "storage unavailable" in str(sub.errors[0])
    sub.close()
    # The same session again: the acknowledged message must not come back.
    again = Collector()
    resumed = make_bus(client_id=client_id, persistent_session=True)
    resumed.subscribe(f"{root}/x", again)
    assert resumed.ready(10)
    pub.publish(f"{root}/x", b"marker")
    wait_for(lambda: b"marker" in again.payloads, 30, "the marker message")
    assert again.payloads == [b"marker"]


def test_a_batch_never_handled_is_redelivered_to_the_next_session(make_bus: MakeBus, root: str) -> None:
    client_id = f"test-centre-{uuid.uuid4().hex[:8]}"
    failures: list[int] = []

    def broken(batch: Sequence[Message]) -> None:
        failures.append(len(batch))
        raise RuntimeError("database down")

    sub = make_bus(client_id=client_id, persistent_session=True)
    sub.subscribe(f"{root}/x", broken)
    assert sub.ready(10)
    pub = make_bus()
    for i in range(5):
        pub.publish(f"{root}/x", str(i).encode())
    wait_for(lambda: sum(failures) >= 5, 30, "the handler to fail on all five")
    sub.close(timeout=2)
    got = Collector()
    resumed = make_bus(client_id=client_id, persistent_session=True)
    resumed.subscribe(f"{root}/x", got)
    wait_for(lambda: len(got.payloads) >= 5, 30, "redelivery of the unacknowledged batch")
    assert sorted(set(got.payloads)) == [str(i).encode() for i in range(5)]


def test_buffered_publisher_round_trip_empties_its_buffer(make_bus: MakeBus, root: str, tmp_path: Path) -> None:
    sub = make_bus()
    got = Collector()
    sub.subscribe(f"{root}/t", got)
    assert sub.ready(10)
    pub = make_bus(buffer_path=tmp_path / "outbox.db")
    for i in range(500):
        pub.publish(f"{root}/t", str(i).encode())
    assert pub.flush(30), "the broker did not acknowledge the buffered messages"
    assert pub.counters().buffered == 0
    wait_for(lambda: len(got.payloads) >= 500, 30, "500 buffered messages")
    assert got.payloads == [str(i).encode() for i in range(500)]


def test_publish_rejects_wildcards_and_use_after_close(make_bus: MakeBus, root: str) -> None:
    bus = make_bus()
    with pytest.raises(MqttBusError, match="wildcards"):
        bus.publish(f"{root}/+/x", b"")
    with pytest.raises(MqttBusError, match="qos"):
        bus.publish(f"{root}/x", b"", qos=3)
    bus.close()
    with pytest.raises(MqttBusError, match="after close"):
        bus.publish(f"{root}/x", b"")


PRESENCE_CHILD = """
import sys, time
from gridmesh.adapters.mqtt import MqttBus
url, client_id, topic = sys.argv[1:4]
bus = MqttBus(url, client_id=client_id, will=(topic, b"offline"), online=(topic, b"online"))
if not bus.ready(10):
    sys.exit("no broker")
print("up", flush=True)
time.sleep(600)
"""


def test_last_will_announces_a_killed_device_offline(make_bus: MakeBus, root: str) -> None:
    state = f"{root}/meter-9/state"
    seen = Collector()
    sub = make_bus()
    sub.subscribe(state, seen)
    assert sub.ready(10)
    child = subprocess.Popen(
        [sys.executable, "-c", PRESENCE_CHILD, SHARED_BROKER, f"test-dev-{uuid.uuid4().hex[:8]}", state],
        stdout=subprocess.PIPE,
    )
    try:
        wait_for(lambda: b"online" in seen.payloads, 30, "the device's online message")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        wait_for(lambda: b"offline" in seen.payloads, 30, "the broker's last-will after SIGKILL")
        assert seen.payloads == [b"online", b"offline"]
    finally:
        child.kill()
        make_bus().publish(state, b"", retain=True)  # clear the retained state on the shared broker


def test_clean_close_publishes_offline_itself(make_bus: MakeBus, root: str) -> None:
    state = f"{root}/meter-8/state"
    seen = Collector()
    sub = make_bus()
    sub.subscribe(state, seen)
    assert sub.ready(10)
    device = make_bus(will=(state, b"offline"), online=(state, b"online"))
    wait_for(lambda: b"online" in seen.payloads, 30, "the online message")
    device.close()
    wait_for(lambda: b"offline" in seen.payloads, 30, "the offline message on close")
    assert seen.payloads == [b"online", b"offline"]
    make_bus().publish(state, b"", retain=True)
