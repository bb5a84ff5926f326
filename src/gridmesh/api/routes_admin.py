"""Who am I, and token administration (admin role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from gridmesh.api.auth import Admin, Viewer, tokens_of
from gridmesh.security.tokens import Role, TokenRecord

router = APIRouter(prefix="/api/v1", tags=["access"])


class WhoAmI(BaseModel):
    token_id: str
    name: str
    role: Role


class TokenView(BaseModel):
    """A token as listed: never its text or hash."""

    id: str
    name: str
    role: Role
    created: datetime
    revoked: bool

    @classmethod
    def of(cls, record: TokenRecord) -> TokenView:
        return cls(id=record.id, name=record.name, role=record.role, created=record.created, revoked=record.revoked)


class TokenCreate(BaseModel):
    role: Role
    name: str = Field(min_length=1, max_length=64, pattern=r"\S", description="who or what uses the token")


class TokenCreated(BaseModel):
    """The token text is shown this once; store it now."""

    id: str
    name: str
    role: Role
    token: str


@router.get("/whoami", summary="The caller's token name and role")
def whoami(caller: Viewer) -> WhoAmI:
    return WhoAmI(token_id=caller.token_id, name=caller.name, role=caller.role)


@router.get("/tokens", summary="List tokens (admin)")
def list_tokens(_: Admin, request: Request) -> list[TokenView]:
    return [TokenView.of(r) for r in tokens_of(request).list()]


@router.post("/tokens", status_code=201, summary="Create a token (admin); its text is returned once")
def create_token(_: Admin, request: Request, body: TokenCreate) -> TokenCreated:
    store = tokens_of(request)
    token = store.create(body.role, body.name)
    created = store.verify(token)
    assert created is not None  # just stored
    return TokenCreated(id=created.token_id, name=created.name, role=created.role, token=token)


@router.delete("/tokens/{token_id}", summary="Revoke a token (admin)")
def revoke_token(_: Admin, request: Request, token_id: Annotated[str, Path(min_length=1)]) -> TokenView:
    return TokenView.of(tokens_of(request).revoke(token_id))
