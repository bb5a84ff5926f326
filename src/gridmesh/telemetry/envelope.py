"""The telemetry envelope: one message per device per publish, signed over its canonical bytes.

Wire format (JSON, UTF-8)::

    {"device": "meter-LV1_101_Load_1", "seq": 42, "ts": 1764216000000000000,
     "readings": [{"q": "TotW", "ph": "", "v": 1520.0, "ql": "good"}, ...],
     "alg": "ed25519", "sig": "<base64 signature>"}

The signature covers :func:`canonical_bytes`: the same JSON with ``sig`` set to the empty string, keys in
the order above, no whitespace, and every float field written as msgspec writes it (shortest round trip,
always with a fraction or exponent: ``1520.0``, ``1e16``; ``docs/telemetry.md`` gives the exact rule for
devices in other languages). The centre re-encodes the decoded envelope to verify, so key order or
spacing in what was sent does not matter.
"""

from __future__ import annotations

import msgspec

from gridmesh.telemetry.quantities import Phase, Quality

MAX_PAYLOAD_BYTES = 256 * 1024  # larger messages are rejected before decoding
MAX_READINGS = 2_000
TOPIC_ROOT = "gridmesh/v1"
CHANNELS = ("telemetry", "event", "command", "ack", "state")


class Reading(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One measured value: quantity (IEC 61850 name), phase, value in SI units, quality."""

    q: str
    v: float
    ph: Phase = Phase.TOTAL
    ql: Quality = Quality.GOOD


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A signed batch of readings from one device. ``ts`` is UTC nanoseconds since the Unix epoch."""

    device: str
    seq: int
    ts: int
    readings: list[Reading]
    alg: str = "ed25519"
    sig: str = ""


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device event (``last-gasp``, ``trip``, ``fault-passage``, ``online``...) signed like telemetry."""

    device: str
    seq: int
    ts: int
    kind: str
    detail: dict[str, str | float | int | bool] = msgspec.field(default_factory=dict)
    alg: str = "ed25519"
    sig: str = ""


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A setpoint or switching order from the centre to a device, signed by the centre's key.

    ``action`` is ``set-power`` (``value`` in W, generator convention), ``open``, ``close`` or ``release``
    (hand control back to the device's local rule). ``expires`` (UTC ns) bounds how long a stale command
    may still be executed.
    """

    device: str
    seq: int
    ts: int
    action: str
    value: float = 0.0
    expires: int = 0
    issuer: str = "centre"
    alg: str = "ed25519"
    sig: str = ""


class Ack(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device's answer to a command: done, or refused with the reason."""

    device: str
    seq: int
    ts: int
    command_seq: int
    ok: bool
    reason: str = ""
    alg: str = "ed25519"
    sig: str = ""


class FaultOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Simulation control from the centre to the field simulator's gateway: put a fault into the twin
    (``inject``) or take it out after repair (``repair``). Signed by the centre like a :class:`Command`;
    a real grid never receives one. ``fault_id`` names the fault in events and in the repair order.
    ``table`` is ``buses`` or ``lines``; ``fault_type`` a :class:`~gridmesh.physics.short_circuit.FaultType`
    value; ``position`` the fraction along a line from its from-bus (None: a bus, or the line's middle)."""

    device: str
    seq: int
    ts: int
    action: str
    fault_id: str
    element: str = ""
    table: str = "lines"
    fault_type: str = "three-phase"
    position: float | None = None
    permanent: bool = True
    issuer: str = "centre"
    alg: str = "ed25519"
    sig: str = ""


class Presence(msgspec.Struct, frozen=True, omit_defaults=True):
    """Retained online/offline flag on the ``state`` channel, and a connection's last will.

    Unsigned on purpose: a last will is published by the broker, not the device, and presence only
    changes what the dashboard shows as online, never stored data or control.
    """

    device: str
    online: bool
    ts: int
    reason: str = ""


Signed = Envelope | Event | Command | Ack | FaultOrder

_encoder = msgspec.json.Encoder()


def canonical_bytes(message: Signed) -> bytes:
    """The bytes a signature covers: the message encoded with an empty ``sig``."""
    return _encoder.encode(msgspec.structs.replace(message, sig=""))


def encode(message: Signed) -> bytes:
    return _encoder.encode(message)


def topic(site: str, device: str, channel: str) -> str:
    """``gridmesh/v1/{site}/{device}/{channel}``; ``site`` is a microgrid id or ``grid`` outside any."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    return f"{TOPIC_ROOT}/{site}/{device}/{channel}"


def parse_topic(name: str) -> tuple[str, str, str] | None:
    """``(site, device, channel)`` of a gridmesh topic, or None for anything else."""
    parts = name.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or parts[4] not in CHANNELS:
        return None
    return parts[2], parts[3], parts[4]
