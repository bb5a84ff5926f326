"""Key provisioning and the two keyring files: algorithms, round trips, file modes, repair and refusals."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridmesh.security.keys import (
    CENTRE_FILE,
    FIELD_FILE,
    CentreKeyring,
    DeviceCredential,
    DeviceSecret,
    FieldKeyring,
    KeyAlgorithm,
    KeyringError,
    ensure_keyrings,
    provision,
    provision_keyrings,
)

DEVICES = ["meter-a", "meter-b", "inverter-c"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_gives_each_device_its_algorithm_and_matching_halves() -> None:
    device_secrets, credentials = provision(DEVICES, hmac_devices=["meter-a", "meter-b"])
    assert {d: s.alg for d, s in device_secrets.items()} == {
        "meter-a": KeyAlgorithm.HMAC_SHA256,
        "meter-b": KeyAlgorithm.HMAC_SHA256,
        "inverter-c": KeyAlgorithm.ED25519,
    }
    assert credentials["meter-a"].key == device_secrets["meter-a"].secret  # HMAC: the centre shares the key
    expected_public = Ed25519PrivateKey.from_private_bytes(device_secrets["inverter-c"].secret).public_key()
    assert credentials["inverter-c"].key == expected_public.public_bytes_raw()
    assert len({s.secret for s in device_secrets.values()}) == 3  # fresh randomness per device


def test_key_lengths_are_checked() -> None:
    with pytest.raises(KeyringError, match="32 bytes"):
        DeviceSecret("x", KeyAlgorithm.ED25519, b"short")
    with pytest.raises(KeyringError, match="at least 16 bytes"):
        DeviceCredential("x", KeyAlgorithm.HMAC_SHA256, b"k" * 15)
    assert DeviceCredential("x", KeyAlgorithm.HMAC_SHA256, b"k" * 16).key == b"k" * 16


def test_secrets_are_not_in_repr() -> None:
    device_secrets, credentials = provision(["meter-a"], hmac_devices=["meter-a"])
    secret = device_secrets["meter-a"]
    assert secret.secret.hex() not in repr(secret)
    assert repr(secret.secret) not in repr(secret) and repr(secret.secret) not in repr(credentials["meter-a"])


def test_keyrings_round_trip_through_files_with_mode_0600(tmp_path: Path) -> None:
    field_ring, centre_ring = provision_keyrings(DEVICES, hmac_devices=["meter-a"])
    old_umask = os.umask(0o000)  # even a permissive umask must not widen the mode
    try:
        field_ring.save(tmp_path / FIELD_FILE)
        centre_ring.save(tmp_path / CENTRE_FILE)
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / FIELD_FILE) == 0o600
    assert mode(tmp_path / CENTRE_FILE) == 0o600
    assert FieldKeyring.load(tmp_path / FIELD_FILE) == field_ring
    assert CentreKeyring.load(tmp_path / CENTRE_FILE) == centre_ring
    assert field_ring.centre_public == centre_ring.centre_public
    assert field_ring.centre_credential.alg is KeyAlgorithm.ED25519
    # the field file carries no centre secret, the centre file no Ed25519 device secret
    field_text = (tmp_path / FIELD_FILE).read_text()
    assert json.loads(field_text)["centre_public"] and "command_secret" not in field_text
    assert set(tmp_path.iterdir()) == {tmp_path / FIELD_FILE, tmp_path / CENTRE_FILE}  # no temp file left


def test_ensure_keyrings_creates_then_keeps_and_extends(tmp_path: Path) -> None:
    first_field, first_centre = ensure_keyrings(tmp_path, DEVICES, hmac_devices=["meter-a"])
    assert mode(tmp_path / FIELD_FILE) == 0o600 and mode(tmp_path / CENTRE_FILE) == 0o600
    again_field, again_centre = ensure_keyrings(tmp_path, DEVICES, hmac_devices=["meter-a"])
    assert again_field == first_field and again_centre == first_centre
    grown_field, grown_centre = ensure_keyrings(tmp_path, [*DEVICES, "battery-d"], hmac_devices=["meter-b"])
    assert set(grown_field.secrets) == {*DEVICES, "battery-d"}
    assert {d: grown_field.secrets[d] for d in DEVICES} == first_field.secrets  # old keys and algorithms stay
    assert grown_centre.command_secret == first_centre.command_secret
    assert FieldKeyring.load(tmp_path / FIELD_FILE) == grown_field


def test_centre_credentials_are_restored_from_the_field_keyring(tmp_path: Path) -> None:
    field_ring, _ = ensure_keyrings(tmp_path, DEVICES)
    document = json.loads((tmp_path / CENTRE_FILE).read_text())
    del document["devices"]["meter-b"]  # as if the centre file was not rewritten after the field file
    (tmp_path / CENTRE_FILE).write_text(json.dumps(document))
    _, centre_ring = ensure_keyrings(tmp_path, DEVICES)
    assert centre_ring.credentials["meter-b"] == field_ring.secrets["meter-b"].credential()
    assert "meter-b" in CentreKeyring.load(tmp_path / CENTRE_FILE).credentials


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="gridmesh keys provision"):
        CentreKeyring.load(tmp_path / CENTRE_FILE)
    ensure_keyrings(tmp_path, DEVICES)
    (tmp_path / CENTRE_FILE).unlink()
    with pytest.raises(KeyringError, match=r"restore centre-keys\.json"):
        ensure_keyrings(tmp_path, DEVICES)
    other = tmp_path / "other"
    ensure_keyrings(other, DEVICES)
    (tmp_path / CENTRE_FILE).write_bytes((other / CENTRE_FILE).read_bytes())
    with pytest.raises(KeyringError, match="different centre keys"):
        ensure_keyrings(tmp_path, DEVICES)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["devices"]["meter-a"].update(key="***"), "not valid base64"),
        (lambda d: d["devices"]["meter-a"].update(alg="rsa"), "unknown algorithm 'rsa'"),
        (lambda d: d["devices"]["meter-a"].update(key="AAAA"), "32 bytes"),
        (lambda d: d.update(kind="field"), "not a gridmesh centre keyring"),
    ],
)
def test_corrupt_centre_keyring_is_refused(tmp_path: Path, edit: object, message: str) -> None:
    ensure_keyrings(tmp_path, DEVICES)
    document = json.loads((tmp_path / CENTRE_FILE).read_text())
    edit(document)  # type: ignore[operator]
    (tmp_path / CENTRE_FILE).write_text(json.dumps(document))
    with pytest.raises(KeyringError, match=message):
        CentreKeyring.load(tmp_path / CENTRE_FILE)
