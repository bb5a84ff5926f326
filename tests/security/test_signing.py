"""Signing and verification against published test vectors and hand-built canonical bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gridmesh.security.keys import DeviceCredential, DeviceSecret, KeyAlgorithm, provision
from gridmesh.security.signing import sign, signature, verify
from gridmesh.telemetry.envelope import Ack, Command, Envelope, Event, Reading
from gridmesh.telemetry.quantities import Phase

SECRETS, CREDENTIALS = provision(["ed", "mac"], hmac_devices=["mac"])
ENVELOPE = Envelope("ed", 7, 1_764_216_000_000_000_000, [Reading("TotW", 1520.5), Reading("PhV", 231.25, Phase.A)])
MESSAGES = [
    ENVELOPE,
    Event("ed", 8, 1_764_216_000_000_000_000, "trip", {"current_a": 812.5, "phase": "B"}),
    Command("ed", 3, 1_764_216_000_000_000_000, "set-power", -2500.0, expires=1_764_216_060_000_000_000),
    Ack("ed", 9, 1_764_216_000_000_000_000, command_seq=3, ok=False, reason="soc below window"),
]


def test_ed25519_matches_rfc8032_test_vectors() -> None:
    """RFC 8032 section 7.1, tests 1 and 2 (secret key → signature of the message)."""
    vectors = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            b"",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            bytes.fromhex("72"),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ]
    for secret_hex, message, expected in vectors:
        assert signature(message, DeviceSecret("v", KeyAlgorithm.ED25519, bytes.fromhex(secret_hex))).hex() == expected


def test_hmac_matches_rfc4231_test_case_1() -> None:
    secret = DeviceSecret("v", KeyAlgorithm.HMAC_SHA256, b"\x0b" * 20)
    expected = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert signature(b"Hi There", secret).hex() == expected


def test_signature_covers_the_documented_canonical_bytes() -> None:
    message = Envelope("mac", 1, 5, [Reading("TotW", 1.5)])
    signed = sign(message, SECRETS["mac"])
    readings = b'"readings":[{"q":"TotW","v":1.5,"ph":"","ql":"good"}]'
    canonical = b'{"device":"mac","seq":1,"ts":5,' + readings + b',"alg":"hmac-sha256","sig":""}'
    expected = hmac.new(SECRETS["mac"].secret, canonical, hashlib.sha256).digest()
    assert signed.alg == "hmac-sha256"
    assert base64.b64decode(signed.sig) == expected
    ed = sign(msgspec.structs.replace(message, device="ed"), SECRETS["ed"])
    canonical_ed = b'{"device":"ed","seq":1,"ts":5,' + readings + b',"alg":"ed25519","sig":""}'
    Ed25519PublicKey.from_public_bytes(CREDENTIALS["ed"].key).verify(base64.b64decode(ed.sig), canonical_ed)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("device", ["ed", "mac"])
def test_every_message_kind_round_trips_and_tampering_fails(message: Envelope, device: str) -> None:
    signed = sign(message, SECRETS[device])
    assert verify(signed, CREDENTIALS[device])
    decoded = msgspec.json.decode(msgspec.json.encode(signed), type=type(message))
    assert verify(decoded, CREDENTIALS[device])  # the wire form verifies too
    assert not verify(msgspec.structs.replace(signed, seq=signed.seq + 1), CREDENTIALS[device])
    assert not verify(msgspec.structs.replace(signed, ts=signed.ts - 1), CREDENTIALS[device])
    other = "mac" if device == "ed" else "ed"
    assert not verify(signed, CREDENTIALS[other])  # another device's key (and algorithm)


def test_changed_reading_fails() -> None:
    signed = sign(ENVELOPE, SECRETS["ed"])
    readings = [Reading("TotW", 1520.25), signed.readings[1]]
    assert not verify(msgspec.structs.replace(signed, readings=readings), CREDENTIALS["ed"])


def test_algorithm_label_cannot_be_swapped() -> None:
    """An HMAC tag relabelled as Ed25519 (or the reverse) never verifies, whatever the credential."""
    signed = sign(ENVELOPE, SECRETS["mac"])
    relabelled = msgspec.structs.replace(signed, alg="ed25519")
    assert not verify(relabelled, CREDENTIALS["mac"])
    assert not verify(relabelled, CREDENTIALS["ed"])
    mac_credential_of_ed = DeviceCredential("ed", KeyAlgorithm.HMAC_SHA256, CREDENTIALS["ed"].key)
    assert not verify(sign(ENVELOPE, SECRETS["ed"]), mac_credential_of_ed)


@pytest.mark.parametrize("sig", ["", "not base64!", "é", "QQ==", base64.b64encode(b"x" * 63).decode(), "A" * 88])
def test_garbage_signatures_are_false_not_errors(sig: str) -> None:
    forged = msgspec.structs.replace(ENVELOPE, alg="ed25519", sig=sig)
    assert verify(forged, CREDENTIALS["ed"]) is False
    assert verify(msgspec.structs.replace(forged, alg="hmac-sha256"), CREDENTIALS["mac"]) is False


def test_sign_does_not_modify_its_input() -> None:
    unsigned = msgspec.structs.replace(ENVELOPE, alg="whatever")
    signed = sign(unsigned, SECRETS["ed"])
    assert unsigned.sig == "" and unsigned.alg == "whatever"
    assert signed == sign(unsigned, SECRETS["ed"])  # Ed25519 is deterministic
