"""The in-process bus: MQTT topic matching, batches, retained messages, and a drain that means it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gridmesh.services.bus import InProcessBus, Message


def test_wildcards_route_and_retained_messages_reach_late_subscribers() -> None:
    bus = InProcessBus()
    got: list[str] = []
    bus.publish("gridmesh/v1/grid/meter-1/state", b"online", retain=True)
    bus.subscribe("gridmesh/v1/+/+/state", lambda batch: got.extend(m.topic for m in batch))
    bus.subscribe("gridmesh/v1/#", lambda batch: got.extend(m.topic for m in batch))
    bus.publish("gridmesh/v1/mg/battery-1/telemetry", b"x")
    assert bus.drain()
    assert sorted(got) == sorted(
        ["gridmesh/v1/grid/meter-1/state", "gridmesh/v1/grid/meter-1/state", "gridmesh/v1/mg/battery-1/telemetry"]
    )
    bus.close()


def test_drain_waits_for_messages_that_handlers_publish_in_turn() -> None:
    bus = InProcessBus()
    release = threading.Event()
    answers: list[Message] = []

    def slow_echo(batch: Sequence[Message]) -> None:
        release.wait(5)
        for message in batch:
            bus.publish(message.topic.replace("command", "ack"), message.payload)

    bus.subscribe("t/+/command", slow_echo)
    bus.subscribe("t/+/ack", answers.extend)
    bus.publish("t/d/command", b"1")
    assert not bus.drain(timeout=0.05)  # the handler holds the message: not drained
    release.set()
    assert bus.drain()
    assert [m.payload for m in answers] == [b"1"]  # the echo was handled before drain returned
    bus.close()


def test_a_failing_handler_is_recorded_and_delivery_goes_on() -> None:
    bus = InProcessBus()
    seen: list[bytes] = []

    def picky(batch: Sequence[Message]) -> None:
        seen.extend(m.payload for m in batch)
        if any(m.payload == b"bad" for m in batch):
            raise ValueError("cannot handle bad")

    bus.subscribe("t/#", picky)
    bus.publish("t/a", b"bad")
    assert bus.drain()
    bus.publish("t/a", b"good")
    assert bus.drain()
    assert seen == [b"bad", b"good"] and isinstance(bus.errors[0], ValueError)
    bus.close()
