"""Per-device keys: provisioned once, held by the device (secret) and by the centre (credential).

Most devices sign with Ed25519: the centre holds only their public keys, so a stolen centre keyring
cannot forge field data. Constrained devices (meters) may use HMAC-SHA256 with a per-device shared key,
as IEC 62351-6 allows for GOOSE; then the centre's copy is as secret as the device's. The centre signs
its commands with its own Ed25519 key, whose public half every device holds.

Two files, both written with mode 0600 (owner read/write only):

* ``field-keys.json`` — what the field (or the field simulator) holds: each device's secret and the
  centre's public command key.
* ``centre-keys.json`` — what the centre holds: each device's credential and the centre's command key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets as token
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridmesh.errors import GridmeshError

CENTRE = "centre"  # the identity that signs commands (``Command.issuer``)
FIELD_FILE = "field-keys.json"
CENTRE_FILE = "centre-keys.json"
ED25519_KEY_BYTES = 32
HMAC_KEY_BYTES = 32
MIN_HMAC_KEY_BYTES = 16  # RFC 2104: keys shorter than the hash output weaken HMAC; 128 bits is the floor
_FORMAT = 1


class KeyAlgorithm(StrEnum):
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"


class KeyringError(GridmeshError):
    """A keyring file is missing, unreadable or inconsistent with its twin."""


def check_key(device: str, alg: KeyAlgorithm, key: bytes, what: str) -> None:
    if alg is KeyAlgorithm.ED25519 and len(key) != ED25519_KEY_BYTES:
        raise KeyringError(f"{device}: an Ed25519 {what} has {ED25519_KEY_BYTES} bytes, got {len(key)}")
    if alg is KeyAlgorithm.HMAC_SHA256 and len(key) < MIN_HMAC_KEY_BYTES:
        raise KeyringError(f"{device}: an HMAC key needs at least {MIN_HMAC_KEY_BYTES} bytes, got {len(key)}")


@dataclass(frozen=True)
class DeviceSecret:
    """What a device holds: its Ed25519 private key (raw 32 bytes) or its HMAC key."""

    device: str
    alg: KeyAlgorithm
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.device, self.alg, self.secret, "private key")

    def credential(self) -> DeviceCredential:
        """The centre's half: the public key for Ed25519, the same shared key for HMAC."""
        if self.alg is KeyAlgorithm.HMAC_SHA256:
            return DeviceCredential(self.device, self.alg, self.secret)
        public = Ed25519PrivateKey.from_private_bytes(self.secret).public_key().public_bytes_raw()
        return DeviceCredential(self.device, self.alg, public)


@dataclass(frozen=True)
class DeviceCredential:
    """What the centre holds for a device: its Ed25519 public key (raw 32 bytes) or the shared HMAC key."""

    device: str
    alg: KeyAlgorithm
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.device, self.alg, self.key, "public key")

    @property
    def fingerprint(self) -> str:
        """A short SHA-256 digest of the key that is safe to show (reveals nothing of an HMAC key)."""
        return fingerprint(self.key)


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def new_secret(device: str, alg: KeyAlgorithm) -> DeviceSecret:
    """A fresh random key from the operating system's CSPRNG."""
    if alg is KeyAlgorithm.HMAC_SHA256:
        return DeviceSecret(device, alg, token.token_bytes(HMAC_KEY_BYTES))
    return DeviceSecret(device, alg, Ed25519PrivateKey.generate().private_bytes_raw())


def provision(
    devices: Iterable[str], *, hmac_devices: Collection[str] = ()
) -> tuple[dict[str, DeviceSecret], dict[str, DeviceCredential]]:
    """New keys for ``devices``: HMAC-SHA256 for those in ``hmac_devices``, Ed25519 for the rest."""
    hmac_set = set(hmac_devices)
    device_secrets = {
        d: new_secret(d, KeyAlgorithm.HMAC_SHA256 if d in hmac_set else KeyAlgorithm.ED25519) for d in devices
    }
    return device_secrets, {d: s.credential() for d, s in device_secrets.items()}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise KeyringError(f"{where}: expected a base64 string")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{where}: not valid base64 ({exc})") from exc


def algorithm_of(text: object, where: str) -> KeyAlgorithm:
    try:
        return KeyAlgorithm(str(text))
    except ValueError:
        known = [a.value for a in KeyAlgorithm]
        raise KeyringError(f"{where}: unknown algorithm {text!r}, expected one of {known}") from None


def write_private(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically with mode 0600: readers never see half a file, and no one else can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def device_keys(document: Mapping[str, Any], value: str, path: Path) -> dict[str, tuple[KeyAlgorithm, bytes]]:
    """Each device's algorithm and key bytes from a keyring document's ``devices`` (``value``: the entry's
    ``"key"`` or ``"secret"``), every malformed entry named."""
    out: dict[str, tuple[KeyAlgorithm, bytes]] = {}
    for device, entry in document["devices"].items():
        where = f"{path}: {device}"
        if not isinstance(entry, dict):
            raise KeyringError(f"{where}: expected an object with `alg` and `{value}`")
        out[device] = (algorithm_of(entry.get("alg"), where), unb64(entry.get(value), where))
    return out


def read_document(path: Path, kind: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyringError(f"{path} not found — create it with `gridmesh keys provision SCENARIO --out DIR`") from exc
    except (OSError, ValueError) as exc:
        raise KeyringError(f"{path} cannot be read ({exc}) — restore it from a backup or re-provision") from exc
    if not isinstance(document, dict) or document.get("kind") != kind or document.get("format") != _FORMAT:
        raise KeyringError(f"{path} is not a gridmesh {kind} keyring (format {_FORMAT})")
    if not isinstance(document.get("devices"), dict):
        raise KeyringError(f"{path}: `devices` must be an object of device id -> key")
    return document


@dataclass
class FieldKeyring:
    """The device side: the secrets of many devices and the centre's public command key."""

    secrets: dict[str, DeviceSecret]
    centre_public: bytes

    @property
    def centre_credential(self) -> DeviceCredential:
        """What a device verifies commands with."""
        return DeviceCredential(CENTRE, KeyAlgorithm.ED25519, self.centre_public)

    @classmethod
    def load(cls, path: Path) -> FieldKeyring:
        document = read_document(path, "field")
        device_secrets = {
            d: DeviceSecret(d, alg, key) for d, (alg, key) in device_keys(document, "secret", path).items()
        }
        centre_public = unb64(document.get("centre_public"), f"{path}: centre_public")
        check_key(CENTRE, KeyAlgorithm.ED25519, centre_public, "public key")
        return cls(device_secrets, centre_public)

    def save(self, path: Path) -> None:
        devices = {d: {"alg": s.alg.value, "secret": b64(s.secret)} for d, s in self.secrets.items()}
        write_private(
            path, {"kind": "field", "format": _FORMAT, "centre_public": b64(self.centre_public), "devices": devices}
        )


@dataclass
class CentreKeyring:
    """The centre side: every device's credential and the centre's own command-signing key."""

    credentials: dict[str, DeviceCredential]
    command_secret: DeviceSecret

    @property
    def centre_public(self) -> bytes:
        return self.command_secret.credential().key

    @classmethod
    def load(cls, path: Path) -> CentreKeyring:
        document = read_document(path, "centre")
        credentials = {d: DeviceCredential(d, alg, key) for d, (alg, key) in device_keys(document, "key", path).items()}
        where = f"{path}: command_secret"
        command = DeviceSecret(CENTRE, KeyAlgorithm.ED25519, unb64(document.get("command_secret"), where))
        return cls(credentials, command)

    def save(self, path: Path) -> None:
        devices = {d: {"alg": c.alg.value, "key": b64(c.key)} for d, c in self.credentials.items()}
        write_private(
            path,
            {
                "kind": "centre",
                "format": _FORMAT,
                "command_secret": b64(self.command_secret.secret),
                "devices": devices,
            },
        )


def provision_keyrings(
    devices: Iterable[str], *, hmac_devices: Collection[str] = ()
) -> tuple[FieldKeyring, CentreKeyring]:
    """Both keyrings for a fresh installation: device keys plus a new centre command key."""
    device_secrets, credentials = provision(devices, hmac_devices=hmac_devices)
    command = new_secret(CENTRE, KeyAlgorithm.ED25519)
    return FieldKeyring(device_secrets, command.credential().key), CentreKeyring(credentials, command)


def add_devices(
    field_ring: FieldKeyring, centre_ring: CentreKeyring, devices: Iterable[str], *, hmac_devices: Collection[str] = ()
) -> list[str]:
    """Provision keys for the devices the field keyring does not hold yet (in place); returns their ids.

    Devices already present keep their key and algorithm: re-keying a device means reconfiguring it.
    A device whose secret is in the field keyring but whose credential is missing at the centre (a save
    interrupted between the two files) gets its credential back from the secret.

    Raises:
        KeyringError: the centre knows a device the field keyring has no secret for.
    """
    wanted = list(dict.fromkeys(devices))
    orphans = [d for d in wanted if d in centre_ring.credentials and d not in field_ring.secrets]
    if orphans:
        raise KeyringError(
            f"the centre keyring has {len(orphans)} device(s) the field keyring lacks (first: {orphans[0]}) — "
            "restore the field keyring from a backup, or re-provision both"
        )
    for device, secret in field_ring.secrets.items():
        if device not in centre_ring.credentials:
            centre_ring.credentials[device] = secret.credential()
    missing = [d for d in wanted if d not in field_ring.secrets]
    device_secrets, credentials = provision(missing, hmac_devices=hmac_devices)
    field_ring.secrets.update(device_secrets)
    centre_ring.credentials.update(credentials)
    return missing


def ensure_keyrings(
    directory: Path, devices: Iterable[str], *, hmac_devices: Collection[str] = ()
) -> tuple[FieldKeyring, CentreKeyring]:
    """Load ``<directory>/field-keys.json`` and ``centre-keys.json``, creating them (0600) if both are missing
    and adding keys for devices not yet present. Used by ``gridmesh run`` on every start.

    The field keyring is written first: if the second write never happens, the next start restores the
    centre's credentials from it.

    Raises:
        KeyringError: one file exists without the other, or they do not belong together.
    """
    field_path, centre_path = directory / FIELD_FILE, directory / CENTRE_FILE
    if not field_path.exists() and not centre_path.exists():
        field_ring, centre_ring = provision_keyrings(devices, hmac_devices=hmac_devices)
        field_ring.save(field_path)
        centre_ring.save(centre_path)
        return field_ring, centre_ring
    for path, twin in ((field_path, centre_path), (centre_path, field_path)):
        if not path.exists():
            raise KeyringError(
                f"{path} is missing but {twin} exists — restore {path.name} from a backup, or delete both files "
                "to provision new keys (every device must then be given its new key)"
            )
    field_ring, centre_ring = FieldKeyring.load(field_path), CentreKeyring.load(centre_path)
    if field_ring.centre_public != centre_ring.centre_public:
        raise KeyringError(
            f"{field_path} and {centre_path} hold different centre keys — they come from different provisionings; "
            "restore the matching pair"
        )
    before = len(centre_ring.credentials)
    added = add_devices(field_ring, centre_ring, devices, hmac_devices=hmac_devices)
    if added:
        field_ring.save(field_path)
    if added or len(centre_ring.credentials) != before:
        centre_ring.save(centre_path)
    return field_ring, centre_ring
