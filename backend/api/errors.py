"""API errors: every failure leaves as JSON ``{"error": code, "detail": text}`` with its status.

``error`` is a short machine-readable code (``not_joined``, ``duplicate_update``...); ``detail``
says what was wrong and, where it can, what to do about it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import ChainError, ConfigError, IntegrityError, MeritError, StorageError

log = logging.getLogger("merit.api")


class ApiError(Exception):
    """Raised anywhere in a request to answer with this status and JSON body."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _server_side(exc: MeritError) -> tuple[int, str, str]:
    """Status, code and a detail that reveals nothing about the server (paths, URLs, users)."""
    if isinstance(exc, ChainError):
        return 503, "chain_unavailable", "the chain node cannot be reached; retry later"
    if isinstance(exc, IntegrityError):
        return 502, "storage_integrity", "stored content failed its integrity check; the operator's log has the details"
    if isinstance(exc, StorageError):
        return 503, "storage_unavailable", "the content store cannot be reached or read; retry later"
    if isinstance(exc, ConfigError):
        return 500, "server_misconfigured", "the server is misconfigured; the operator's log has the details"
    return 500, "internal_error", "internal error; the operator's log has the details"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /openapi.json"
        return error_response(
            exc.status_code,
            _HTTP_CODES.get(exc.status_code, "http_error"),
            detail,
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_detail(exc))

    @app.exception_handler(MeritError)
    async def _merit_error(request: Request, exc: MeritError) -> JSONResponse:
        # Integrity and config problems are ours, not the caller's; an unreachable backend is a 503.
        # The exception's text names local paths and endpoints: it goes to the log, never the client.
        status, code, detail = _server_side(exc)
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(status, code, detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}; the server log has the details")
