"""The one place DocuChat's errors become HTTP responses: status, a sentence, maybe a field."""

from __future__ import annotations

import logging
import re
from datetime import UTC
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.errors import (
    AuthenticationFailed,
    Conflict,
    DocuChatError,
    Gone,
    InsufficientStorage,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    SignInRejected,
)
from pipeline.errors import (
    FileTooLarge,
    NotAPdf,
    PermanentError,
    TransientError,
    UnsupportedFormat,
)

log = logging.getLogger("docuchat.api")

# First match wins: the specific errors come before their parents.
STATUS: dict[type[DocuChatError], int] = {
    FileTooLarge: 413,
    NotAPdf: 415,
    UnsupportedFormat: 415,
    PermanentError: 422,
    TransientError: 503,
    ServiceUnavailable: 503,
    InsufficientStorage: 507,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    SignInRejected: 400,
    RateLimited: 429,
}


def problem(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    return Response(
        {"status": status, "detail": detail, **extra}, status_code=status, headers=headers
    )


def on_docuchat_error(_: Request[Any, Any, Any], exc: DocuChatError) -> Response[dict[str, Any]]:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    detail = str(exc)
    if isinstance(exc, InvalidInput):
        detail, extra["field"] = exc.message, exc.field
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="docuchat"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, QuotaExceeded):
        extra.update(quota=exc.quota, used=exc.used, resets_at=exc.resets_at.astimezone(UTC))
    if isinstance(exc, PermanentError):
        extra["field"] = "file"
    if isinstance(exc, FileTooLarge):  # the rest of the body is not read: hang up
        headers["Connection"] = "close"
    if isinstance(exc, TransientError | ServiceUnavailable):
        headers["Retry-After"] = "5"
    return problem(status, detail, headers, **extra)


_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def _field_of(item: dict[str, Any]) -> str:
    """The field a validation error is about; a missing or unknown field is named, not the
    whole body."""
    key = str(item.get("key", "body"))
    named = _NAMED_FIELD.search(str(item.get("message", "")))
    return named.group(1) if key == "data" and named else key


def _described(item: dict[str, Any]) -> dict[str, str]:
    field, message = _field_of(item), str(item.get("message", ""))
    if field == "data" and message == "'data'":  # Litestar's words for "no body at all"
        return {"field": "body", "message": "a JSON body is required"}
    return {"field": field, "message": message}


def on_validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """Malformed bodies and parameters: 422, naming each field and what is wrong with it."""
    errors = [
        _described(item)
        for item in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(item, dict)
    ]
    first = errors[0] if errors else None
    detail = f"{first['field']}: {first['message']}" if first else (exc.detail or "invalid request")
    return problem(422, detail, field=first["field"] if first else None, errors=errors)


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    return problem(exc.status_code, exc.detail, dict(exc.headers or {}))


def on_database_unavailable(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    """Postgres down, restarting or out of connections: the request can be tried again, and
    the pool's pre-ping reconnects by itself once the database is back."""
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(503, "the database is unavailable; try again shortly", {"Retry-After": "5"})


def on_unexpected_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    DocuChatError: on_docuchat_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    OperationalError: on_database_unavailable,
    InterfaceError: on_database_unavailable,
    PoolTimeout: on_database_unavailable,
    Exception: on_unexpected_error,
}
