"""Fixtures of the API tests: a fake centre, a token store with one token per role, a test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.centre_double import FakeCentre
from gridmesh.api import Hub, create_app
from gridmesh.security.tokens import Role, TokenStore


@pytest.fixture
def centre() -> FakeCentre:
    return FakeCentre()


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


@pytest.fixture
def tokens(store: TokenStore) -> dict[Role, str]:
    return {role: store.create(role, f"test-{role.value}") for role in Role}


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def client(centre: FakeCentre, store: TokenStore, hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(centre, store, hub=hub)) as test_client:
        yield test_client
