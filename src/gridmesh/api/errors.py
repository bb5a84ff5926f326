"""Every API error is JSON ``{"error": what went wrong, "fix": what to do next}`` with a fitting status.

Validation errors add ``problems``: one ``{"where", "problem"}`` per invalid input, all of them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridmesh.api.ports import CentreError
from gridmesh.security.tokens import TokenError, UnknownToken

log = logging.getLogger(__name__)

_HTTP_FIXES = {
    404: "check the path; the endpoints are listed at /docs",
    405: "check the HTTP method; the endpoints and their methods are listed at /docs",
}


class ApiError(Exception):
    """An error answered as JSON with ``status``; raised by routes and dependencies."""

    def __init__(self, status: int, error: str, fix: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.fix = fix
        self.headers = dict(headers or {})


def error_response(
    status: int, error: str, fix: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "fix": fix, **extra}, status_code=status, headers=dict(headers or {}))


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.fix, headers=exc.headers)


async def _centre_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CentreError)
    return error_response(exc.status, exc.message, exc.fix)


async def _token_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, UnknownToken):
        return error_response(404, str(exc), "list the token ids with GET /api/v1/tokens")
    return error_response(500, str(exc), "fix the token store named in the error, then retry")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"where": _where(tuple(e.get("loc", ()))), "problem": str(e.get("msg", ""))} for e in exc.errors()]
    first = problems[0] if problems else {"where": "request", "problem": "invalid"}
    return error_response(
        422,
        f"invalid request: {first['where']}: {first['problem']}",
        "correct the inputs listed in `problems`; parameters and their types are documented at /docs",
        problems=problems,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    fix = _HTTP_FIXES.get(exc.status_code, "see /docs for the API")
    return error_response(exc.status_code, str(exc.detail), fix, headers=exc.headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the API", exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}", "see the server log; report it if it repeats")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CentreError, _centre_error)
    app.add_exception_handler(TokenError, _token_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
