"""API tokens with roles, stored hashed in a JSON file readable by its owner only.

A token is ``gm_`` followed by 32 random bytes in URL-safe base64 (256 bits). The store keeps only the
SHA-256 of each token. A slow, salted password hash (scrypt, PBKDF2) exists to make guessing a *human*
password expensive; a 256-bit random secret cannot be guessed, so a fast unsalted digest protects it as
well while letting every request be verified in microseconds. (The same reasoning is why GitHub and
PyPI store API tokens as plain SHA-256 digests.) The ``gm_`` prefix makes a leaked token recognisable to
secret scanners and to people.

The file is re-read when it changes on disk, so ``gridmesh token create`` or ``revoke`` takes effect in a
running server without a restart.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from gridmesh.errors import GridmeshError

TOKEN_PREFIX = "gm_"
TOKEN_BYTES = 32
FIRST_START_NAME = "first-start"
TOKEN_FILE = "tokens.json"


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, required: Role) -> bool:
        """True when this role may do what ``required`` may (admin ⊇ operator ⊇ viewer)."""
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class TokenError(GridmeshError):
    """A token operation failed (unreadable store, missing name)."""


class UnknownToken(TokenError):
    """No token has the given id."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One stored token; ``hash`` is the hex SHA-256 of the token text, ``created`` is UTC."""

    id: str
    name: str
    role: Role
    created: datetime
    hash: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's id, its name (shown as the user in audit logs) and its role."""

    token_id: str
    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Token records in one JSON file (mode 0600), indexed by hash for lookups on every request.

    Thread-safe: the API verifies from many threads while the CLI may write the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, TokenRecord] = {}
        self._by_hash: dict[str, TokenRecord] = {}
        self._stamp: tuple[int, int, int] | None = None
        with self._lock:
            self._reload()

    def create(self, role: Role, name: str) -> str:
        """Store a new token and return its text; it is shown this once and cannot be recovered."""
        if not name.strip():
            raise TokenError("a token needs a name (who or what uses it), e.g. --name control-room")
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            self._reload()
            record = TokenRecord(
                id=secrets.token_hex(4),
                name=name.strip(),
                role=Role(role),
                created=datetime.now(UTC).replace(microsecond=0),
                hash=digest(token),
            )
            while record.id in self._records:
                record = replace(record, id=secrets.token_hex(4))
            self._records[record.id] = record
            self._save()
        return token

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token, else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        presented = digest(token)
        with self._lock:
            self._reload()
            record = self._by_hash.get(presented)
        # The dict lookup is keyed by a digest the caller cannot steer; the comparison is constant-time
        # anyway so that no path compares secret-derived strings byte by byte.
        if record is None or record.revoked or not hmac.compare_digest(record.hash, presented):
            return None
        return Principal(record.id, record.name, record.role)

    def revoke(self, token_id: str) -> TokenRecord:
        """Mark a token revoked (kept in the file for the audit trail); returns the updated record."""
        with self._lock:
            self._reload()
            record = self._records.get(token_id)
            if record is None:
                raise UnknownToken(f"no token with id {token_id!r}; `gridmesh token list` shows the ids")
            record = replace(record, revoked=True)
            self._records[token_id] = record
            self._save()
        return record

    def list(self) -> builtins.list[TokenRecord]:
        """Every record in creation order (hashes included; callers decide what to show)."""
        with self._lock:
            self._reload()
            return builtins.list(self._records.values())

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _reload(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        records: dict[str, TokenRecord] = {}
        if stamp is not None:
            try:
                raw = json.loads(self.path.read_text())
                for item in raw["tokens"]:
                    record = TokenRecord(
                        id=item["id"],
                        name=item["name"],
                        role=Role(item["role"]),
                        created=datetime.fromisoformat(item["created"]),
                        hash=item["hash"],
                        revoked=bool(item.get("revoked", False)),
                    )
                    records[record.id] = record
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise TokenError(
                    f"cannot read the token store {self.path}: {exc}; restore it from a backup or delete it "
                    "and create new tokens with `gridmesh token create`"
                ) from exc
        self._records = records
        self._by_hash = {r.hash: r for r in records.values()}
        self._stamp = stamp

    def _save(self) -> None:
        """Write atomically (temp file then rename) so a reader never sees half a file; 0600 from the start."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": 1,
            "tokens": [
                {**asdict(r), "role": r.role.value, "created": r.created.isoformat()} for r in self._records.values()
            ],
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._by_hash = {r.hash: r for r in self._records.values()}
        self._stamp = self._stat()


def ensure_operator_token(store: TokenStore) -> str | None:
    """On first start (no usable operator or admin token), create one and return it; else None."""
    if any(not r.revoked and r.role.includes(Role.OPERATOR) for r in store.list()):
        return None
    return store.create(Role.OPERATOR, FIRST_START_NAME)


def store_in(data_dir: Path) -> TokenStore:
    """The token store of a data folder (``<data_dir>/tokens.json``), shared by the CLI and the server."""
    return TokenStore(data_dir / TOKEN_FILE)
