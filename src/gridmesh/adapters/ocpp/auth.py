"""Charger authentication at the WebSocket handshake, per the OCPP security profiles.

* Profile 1: HTTP Basic auth (user = station identity, password = its provisioned secret) over ``ws://``.
  Only for closed networks: the password crosses the wire in clear.
* Profile 2: the same Basic auth over TLS (``wss://``); the station checks the centre's certificate.
* Profile 3: TLS with client certificates; the certificate's common name must be the station identity.

Unknown stations get 404 and bad or missing credentials 401 in the HTTP response, so a refused
station never reaches the OCPP layer. Passwords are stored as salted SHA-256: they are 160-bit random
secrets (40 hex characters, the most OCPP 2.0.1 ``BasicAuthPassword`` allows), which no one can guess,
so a slow hash would only cost the handshake time of a fleet reconnecting at once; the salt keeps
equal passwords from having equal hashes (the same reasoning as :mod:`gridmesh.security.tokens`).
"""

from __future__ import annotations

import hashlib
import hmac
import http
import json
import secrets
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response

from gridmesh.adapters.ocpp.registry import ChargerRegistry
from gridmesh.errors import GridmeshError
from gridmesh.security.keys import write_private

PATH_PREFIX = "/ocpp/"
PASSWORD_BYTES = 20  # 40 hex characters: OCPP 2.0.1 BasicAuthPassword is 16–40 characters
SALT_BYTES = 16
HASH_FILE = "ocpp-passwords.json"  # the centre's copy: salted hashes only
SECRET_FILE = "ocpp-charger-secrets.json"  # the stations' copy: the passwords themselves (0600)
REALM = "gridmesh OCPP"
_FORMAT = 1


class SecurityProfile(IntEnum):
    """OCPP security profile (OCPP 2.0.1 part 2 §A00 / 1.6 security whitepaper)."""

    BASIC = 1
    BASIC_TLS = 2
    CLIENT_CERT = 3


class CredentialError(GridmeshError):
    """A charger credential file is missing, unreadable or inconsistent."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A salted SHA-256 of a charger password (both hex)."""

    salt: str
    digest: str

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(salt.hex(), hashlib.sha256(salt + password.encode()).hexdigest())

    def matches(self, password: str) -> bool:
        presented = hashlib.sha256(bytes.fromhex(self.salt) + password.encode()).hexdigest()
        return hmac.compare_digest(presented, self.digest)


class PasswordStore:
    """The centre's charger password hashes; the file (mode 0600) is read once at start."""

    def __init__(self, hashes: Mapping[str, PasswordHash]) -> None:
        self._hashes = dict(hashes)

    def __contains__(self, charger_id: object) -> bool:
        return charger_id in self._hashes

    def verify(self, charger_id: str, password: str) -> bool:
        entry = self._hashes.get(charger_id)
        return entry is not None and entry.matches(password)

    @classmethod
    def load(cls, path: Path) -> PasswordStore:
        document = _read(path, "ocpp-hashes")
        try:
            return cls({c: PasswordHash(e["salt"], e["digest"]) for c, e in document["chargers"].items()})
        except (KeyError, TypeError) as exc:
            raise CredentialError(f"{path}: every charger needs `salt` and `digest` ({exc})") from exc

    def save(self, path: Path) -> None:
        chargers = {c: {"salt": h.salt, "digest": h.digest} for c, h in self._hashes.items()}
        write_private(path, {"kind": "ocpp-hashes", "format": _FORMAT, "chargers": chargers})


def _read(path: Path, kind: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CredentialError(f"{path} not found — create it with provision_passwords(charger_ids, DIR)") from exc
    except (OSError, ValueError) as exc:
        raise CredentialError(f"{path} cannot be read ({exc}) — restore it from a backup or re-provision") from exc
    if not isinstance(document, dict) or document.get("kind") != kind or not isinstance(document.get("chargers"), dict):
        raise CredentialError(f"{path} is not a gridmesh {kind} file (format {_FORMAT})")
    return document


def load_charger_secrets(path: Path) -> dict[str, str]:
    """The stations' passwords by identity (what the field or the charger simulator holds)."""
    chargers = _read(path, "ocpp-secrets")["chargers"]
    return {str(c): str(p) for c, p in chargers.items()}


def provision_passwords(charger_ids: Iterable[str], directory: Path) -> dict[str, str]:
    """Give every charger without one a fresh random password; returns the new passwords by identity.

    Writes ``<directory>/ocpp-charger-secrets.json`` (the passwords, for the stations) first and
    ``ocpp-passwords.json`` (salted hashes, for the centre) second, both 0600. Chargers already
    provisioned keep their password: changing it means reconfiguring the station.
    """
    secret_path, hash_path = directory / SECRET_FILE, directory / HASH_FILE
    known = load_charger_secrets(secret_path) if secret_path.exists() else {}
    hashes = PasswordStore.load(hash_path)._hashes if hash_path.exists() else {}
    orphans = sorted(set(hashes) - set(known))
    if orphans:
        raise CredentialError(
            f"{hash_path} has chargers that {secret_path} lacks (first: {orphans[0]}) — restore the secrets "
            "file from a backup, or delete both files and re-provision every station"
        )
    fresh = {c: secrets.token_hex(PASSWORD_BYTES) for c in dict.fromkeys(charger_ids) if c not in known}
    known.update(fresh)
    write_private(secret_path, {"kind": "ocpp-secrets", "format": _FORMAT, "chargers": known})
    for charger_id, password in known.items():
        if charger_id not in hashes:
            hashes[charger_id] = PasswordHash.of(password)
    PasswordStore(hashes).save(hash_path)
    return fresh


def charger_of_path(path: str) -> str | None:
    """The station identity in ``/ocpp/<id>`` (percent-decoded), or None for any other path."""
    path = path.split("?", 1)[0]
    if not path.startswith(PATH_PREFIX):
        return None
    identity = unquote(path[len(PATH_PREFIX) :])
    return identity if identity and "/" not in identity else None


def _peer_common_name(connection: ServerConnection) -> str | None:
    cert = connection.transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def handshake_check(
    registry: ChargerRegistry, profile: SecurityProfile, passwords: PasswordStore | None
) -> Callable[[ServerConnection, Request], Response | None]:
    """A websockets ``process_request`` that admits only known, authenticated stations.

    Written here rather than with ``websockets.asyncio.server.basic_auth`` because OCPP needs the user
    name to equal the identity in the path and unknown stations to get 404 before any password check.
    """
    if profile is not SecurityProfile.CLIENT_CERT and passwords is None:
        raise CredentialError(f"security profile {int(profile)} needs a password store (provision_passwords)")

    def refuse(connection: ServerConnection, text: str) -> Response:
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, text + "\n")
        if profile is not SecurityProfile.CLIENT_CERT:
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic(REALM)
        return response

    def check(connection: ServerConnection, request: Request) -> Response | None:
        charger_id = charger_of_path(request.path)
        if charger_id is None or charger_id not in registry:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown charging station\n")
        if profile is SecurityProfile.CLIENT_CERT:
            if _peer_common_name(connection) != charger_id:
                return refuse(connection, "client certificate does not name this station")
            return None
        header = request.headers.get("Authorization")
        if header is None:
            return refuse(connection, "missing credentials")
        try:
            user, password = parse_authorization_basic(header)
        except InvalidHeader:
            return refuse(connection, "unsupported credentials")
        assert passwords is not None
        if user != charger_id or not passwords.verify(charger_id, password):
            return refuse(connection, "invalid credentials")
        return None

    return check


def server_tls_context(cert_file: Path, key_file: Path, *, client_ca_file: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ for the centre (profile 2); with ``client_ca_file``, client certificates are required (3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca_file)
    return context


def client_tls_context(ca_file: Path, *, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ for a station: trusts ``ca_file``; presents a client certificate for profile 3."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
