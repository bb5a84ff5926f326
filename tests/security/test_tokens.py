"""API tokens: hashing, verification, revocation, roles, the file on disk."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from gridmesh.security.tokens import (
    FIRST_START_NAME,
    Principal,
    Role,
    TokenError,
    TokenStore,
    UnknownToken,
    ensure_operator_token,
    store_in,
)


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "data" / "tokens.json")


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.includes(Role.OPERATOR) and Role.ADMIN.includes(Role.VIEWER)
    assert Role.OPERATOR.includes(Role.VIEWER) and Role.OPERATOR.includes(Role.OPERATOR)
    assert not Role.VIEWER.includes(Role.OPERATOR) and not Role.OPERATOR.includes(Role.ADMIN)


def test_create_and_verify(store: TokenStore) -> None:
    token = store.create(Role.OPERATOR, "control-room")
    assert token.startswith("gm_") and len(token) == 3 + 43  # 32 bytes in unpadded base64
    principal = store.verify(token)
    assert principal == Principal(store.list()[0].id, "control-room", Role.OPERATOR)
    assert store.verify(token + "x") is None
    assert store.verify(token[3:]) is None  # without the prefix
    assert store.verify("") is None


def test_the_file_keeps_only_a_sha256_and_is_private(store: TokenStore) -> None:
    token = store.create(Role.VIEWER, "wallboard")
    text = store.path.read_text()
    assert token not in text and token[3:] not in text
    record = json.loads(text)["tokens"][0]
    assert record["hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert record["role"] == "viewer" and record["revoked"] is False
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_tokens_are_unique(store: TokenStore) -> None:
    tokens = {store.create(Role.VIEWER, f"t{i}") for i in range(20)}
    assert len(tokens) == 20 and len({r.id for r in store.list()}) == 20


def test_revoke(store: TokenStore) -> None:
    keep = store.create(Role.VIEWER, "keep")
    drop = store.create(Role.ADMIN, "drop")
    dropped = store.verify(drop)
    assert dropped is not None
    record = store.revoke(dropped.token_id)
    assert record.revoked and record.name == "drop"
    assert store.verify(drop) is None and store.verify(keep) is not None
    assert [r.revoked for r in store.list()] == [False, True]  # kept for the audit trail
    with pytest.raises(UnknownToken, match="gridmesh token list"):
        store.revoke("nope")


def test_a_running_store_sees_changes_made_by_another_process(store: TokenStore) -> None:
    cli = TokenStore(store.path)  # `gridmesh token create` while the server runs
    token = cli.create(Role.VIEWER, "late")
    assert store.verify(token) is not None
    found = store.verify(token)
    assert found is not None
    cli.revoke(found.token_id)
    assert store.verify(token) is None


def test_a_corrupt_file_says_what_to_do(store: TokenStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(TokenError, match="restore it from a backup or delete it"):
        TokenStore(store.path)


def test_a_name_is_required(store: TokenStore) -> None:
    with pytest.raises(TokenError, match="needs a name"):
        store.create(Role.VIEWER, "  ")


def test_operator_token_on_first_start_only(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    assert store.path == tmp_path / "tokens.json"
    first = ensure_operator_token(store)
    assert first is not None
    principal = store.verify(first)
    assert principal is not None and principal.role is Role.OPERATOR and principal.name == FIRST_START_NAME
    assert ensure_operator_token(store) is None
    store.revoke(principal.token_id)
    assert ensure_operator_token(store) is not None  # no usable operator token left: make a new one


def test_a_viewer_token_does_not_count_as_the_operator_token(store: TokenStore) -> None:
    store.create(Role.VIEWER, "wallboard")
    assert ensure_operator_token(store) is not None
    store2 = TokenStore(store.path.with_name("other.json"))
    store2.create(Role.ADMIN, "root")
    assert ensure_operator_token(store2) is None
