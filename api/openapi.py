"""The error half of the OpenAPI document, generated from the route table.

Every DocuChat error is a problem body ({"status", "detail", "field"?, "errors"?, ...}). Which
statuses an operation can answer follows from what it is: every operation can be invalid
(422), rate limited (429), sent too many header bytes (431) or find a dependency down (503);
one that needs a token can be 401 or 403; one with an id in its path 404; one with a body 413.
Statuses particular to one operation (409, 410, 415) sit on its decorator. A new route is
documented by being in the app; the fuzz test (tests/test_api_fuzz.py) holds every response
to this document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.base import BaseSchemaObject
from litestar.routes import HTTPRoute

from api.identity import PUBLIC

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["status", "detail"],
    properties={
        "status": Schema(type=OpenAPIType.INTEGER, description="the HTTP status"),
        "detail": Schema(type=OpenAPIType.STRING, description="what is wrong, in a sentence"),
        "field": Schema(
            type=[OpenAPIType.STRING, OpenAPIType.NULL],
            description="the field or parameter at fault, when there is one",
        ),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                properties={
                    "field": Schema(type=OpenAPIType.STRING),
                    "message": Schema(type=OpenAPIType.STRING),
                },
            ),
            description="every invalid field, for 422",
        ),
    },
    description="An error: its status, a sentence, and the field at fault if any.",
)

MEANING = {
    400: "the body is not valid JSON, or (signing in) the code was refused",
    401: "no valid access token",
    403: "the token is not for this tenant, or the caller may not do this",
    404: "no such resource in the caller's tenant",
    409: "the resource is not in a state that allows this",
    408: (
        "the request's body stopped coming (BODY_IDLE_SECONDS) or came too slowly "
        "(BODY_MIN_BYTES_PER_SECOND); the connection is closed"
    ),
    410: "the resource has expired",
    413: "the body is larger than allowed",
    415: "the upload is not a document DocuChat reads",
    422: "a field, parameter or header is invalid; `field` names it",
    429: (
        "a rate limit, the monthly token quota, or the caller's or tenant's open streams or "
        "uploads are at their limit; see Retry-After. Reads (GET) and everything else "
        "(questions, searches, uploads, sign-ins, changes) have budgets of their own: "
        "`RateLimit-Policy` names the one that answered"
    ),
    431: "the request's headers are larger than 32 KiB",
    503: (
        "a dependency (database, Redis, queue) is unavailable or did not answer within "
        "REQUEST_DEADLINE_SECONDS; retry after Retry-After"
    ),
    507: "the server is low on disk space (MIN_FREE_DISK_MB): uploads wait until it is freed",
}
# What an upload's body looks like: one multipart field, the PDF.
UPLOAD_BODY = RequestBody(
    required=True,
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                required=["file"],
                properties={"file": Schema(type=OpenAPIType.STRING, format=None)},
            )
        )
    },
)


def problem_responses(*statuses: int) -> dict[int, Any]:
    """Decorator `responses` for statuses particular to one operation."""
    return {
        status: ResponseSpec(data_container=dict[str, Any], description=MEANING[status])
        for status in statuses
    }


def document_errors(app: Litestar) -> None:
    """Add the problem responses (and public operations' lack of security) to the app's
    OpenAPI document, which the app then serves."""
    document = app.openapi_schema
    assert document.components is not None and document.paths is not None
    document.components.schemas = {**(document.components.schemas or {}), "Problem": PROBLEM}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in document.paths:
            continue
        item = document.paths[route.path_format]
        for handler in route.route_handlers:
            for method in handler.http_methods - {"OPTIONS"}:
                operation = getattr(item, method.lower(), None)
                if operation is not None:
                    _document(operation, handler, route)


def _document(operation: Operation, handler: HTTPRouteHandler, route: HTTPRoute) -> None:
    public = bool(handler.opt.get(PUBLIC))
    statuses = {422, 429, 431, 503}
    if not public:
        statuses |= {401, 403}
    else:
        operation.security = [{}]
    if "{" in route.path_format:
        statuses.add(404)
    if handler.opt.get("upload"):
        operation.request_body = UPLOAD_BODY
        statuses |= {408, 413, 415, 507}
    elif operation.request_body is not None:
        statuses |= {400, 408, 413}  # malformed JSON; a stalled body; a body over 1 MiB
    responses = operation.responses or {}
    if 400 not in statuses and not public:
        responses.pop("400", None)  # Litestar's default; our invalid input is 422
    for status in sorted(statuses):
        if str(status) not in responses:
            responses[str(status)] = _problem(status)
    for code, response in responses.items():  # the decorators' 409, 410...
        if isinstance(response, OpenAPIResponse) and int(code) >= 400 and code != "503":
            responses[code] = _problem(int(code))
    operation.responses = responses


def _problem(status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=MEANING[status],
        headers=RATE_LIMIT_HEADERS if status == 429 else None,
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Problem")
            )
        },
    )


def _header(description: str) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description=description)


# Every response carries these; a 429 is where a client needs them.
RATE_LIMIT_HEADERS: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": _header("seconds until a request of this budget is accepted again"),
    "RateLimit-Policy": _header(
        'the budget that answered and its size: `"reads";q=600;w=60` (GET requests) or '
        '`"expensive";q=50;w=60` (everything else), per user, or per IP when anonymous'
    ),
    "RateLimit": _header('what is left of it: `"reads";r=599;t=60` (requests, seconds)'),
}


# ---- examples ---------------------------------------------------------------------------------

_ID = "6f1c2a4e-3b9d-4c8e-9a51-2d7e8f0b1c34"
_JOB = "0b7e9c2d-5a41-4f3e-8d26-91c4a7e3f5b8"
_AT = "2026-11-26T09:30:00Z"
_SKIPPED = "reading it took more than the 5 s of CPU a page may take (PDF_PAGE_CPU_SECONDS)"
_DOCUMENT = {
    "id": _ID,
    "filename": "manual.pdf",
    "size_bytes": 482133,
    "sha256": "9f2c" + "0" * 60,
    "status": "ready",
    "pages": 12,
    "chunks": 31,
    "error": None,
    "uploaded_by": "1d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6",
    "created_at": _AT,
    "updated_at": _AT,
    "skipped_pages": [],
    "page_report": None,
}
_BROKEN = (
    "its text layer looks like a broken font: 41 of its 212 Arabic-script words hold letters "
    "of another script (Coptic, Greek); read by OCR instead"
)
_PAGE_REPORT = {
    "text_layer": {"count": 9, "pages": [1, 2, 4, 5, 6, 7, 8, 10, 12]},
    "ocr": {
        "count": 2,
        "pages": [
            {"page": 3, "reason": "read by OCR: it has no text layer (a scan or a picture)"},
            {"page": 11, "reason": _BROKEN},
        ],
    },
    "sections": {"count": 0, "pages": []},
    "skipped": {"count": 1, "pages": [{"page": 9, "reason": _SKIPPED}]},
    "flagged": {"count": 1, "pages": [{"page": 11, "reason": _BROKEN}]},
}
_JOB_OUT = {
    "id": _JOB,
    "kind": "ingest",
    "status": "running",
    "progress": {
        "stage": "embedding",
        "pages_done": 12,
        "pages_total": 12,
        "chunks_done": 16,
        "chunks_total": 31,
    },
    "error": None,
    "document_id": _ID,
    "created_at": _AT,
    "started_at": _AT,
    "finished_at": None,
    "stream_url": None,
    "events_url": f"/v1/jobs/{_JOB}/events?token=eyJhbGciOiJIUzI1NiIs…",
}
_TOKENS = {
    "prompt_tokens": 5000,
    "completion_tokens": 880,
    "total_tokens": 5880,
    "requests": 7,
    "estimated_tokens": 0,
}
_WINDOW = {
    "since": _AT,
    "prompt_tokens": 5120,
    "completion_tokens": 880,
    "total_tokens": 6000,
    "requests": 14,
    "estimated_tokens": 120,
    "by_model": {"gpt-4o-mini": _TOKENS},
    "by_kind": {
        "chat": _TOKENS,
        "embedding": {
            "prompt_tokens": 120,
            "completion_tokens": 0,
            "total_tokens": 120,
            "requests": 7,
            "estimated_tokens": 120,
        },
    },
}
REQUEST_EXAMPLES: dict[tuple[str, str], Any] = {
    ("post", "/v1/auth/request-code"): {"email": "you@example.com"},
    ("post", "/v1/auth/verify-code"): {"email": "you@example.com", "code": "483920"},
    ("post", "/v1/search"): {"query": "How do I reset the device?", "top_k": 6},
    ("post", "/v1/chat"): {"message": "کتابخانه‌ی مرکزی در چه سالی ساخته شد؟"},
    ("post", "/v1/members"): {"email": "sara@example.com", "role": "member"},
    ("patch", "/v1/members/{member_id}"): {"role": "admin"},
}
_MEMBER = {
    "id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
    "email": "sara@example.com",
    "role": "member",
    "status": "invited",
    "invited_by": {"id": "1d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6", "email": "you@example.com"},
    "created_at": _AT,
    "last_sign_in": None,
}
RESPONSE_EXAMPLES: dict[tuple[str, str], Any] = {
    ("get", "/healthz"): {
        "status": "ok",
        "checks": {
            "database": {"status": "ok", "latency_ms": 1.9},
            "redis": {"status": "ok", "latency_ms": 0.6},
            "broker": {
                "status": "ok",
                "latency_ms": 0.8,
                "detail": {"workers": 2, "queued_ingest": 0, "queued_chat": 1},
            },
            "disk": {
                "status": "ok",
                "latency_ms": 0.1,
                "detail": {"free_mb": 48213, "needed_mb": 537},
            },
        },
        "ocr": {"available": True, "languages": "fas+eng", "missing": []},
    },
    ("post", "/v1/auth/request-code"): {
        "detail": "If the address can receive mail, a sign-in code is on its way.",
        "expires_in": 600,
    },
    ("post", "/v1/auth/verify-code"): {
        "access_token": "eyJhbGciOiJIUzI1NiIs…",
        "expires_in": 604800,
        "token_type": "bearer",
    },
    ("get", "/v1/me"): {
        "user_id": "1d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6",
        "email": "you@example.com",
        "role": "member",
        "tenant": {"id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", "slug": "demo"},
    },
    ("get", "/v1/files"): {"items": [_DOCUMENT], "next_cursor": None},
    ("post", "/v1/files"): {
        "document": _DOCUMENT | {"status": "queued", "pages": 12, "chunks": 0},
        "job": _JOB_OUT,
    },
    ("get", "/v1/files/{document_id}"): _DOCUMENT
    | {"skipped_pages": [{"page": 9, "reason": _SKIPPED}], "page_report": _PAGE_REPORT},
    ("get", "/v1/files/{document_id}/pages/{number}"): {
        "document_id": _ID,
        "filename": "manual.pdf",
        "number": 11,
        "source": "ocr",
        "flagged": True,
        "note": _BROKEN,
        "section": None,
        "text": "کتابخانه‌ی مرکزی شهر در سال ۱۳۵۰ ساخته شد…",
    },
    ("post", "/v1/files/{document_id}/retry"): {
        "document": _DOCUMENT | {"status": "queued", "chunks": 0, "error": None},
        "job": _JOB_OUT | {"status": "queued", "progress": {"stage": "queued"}},
    },
    ("get", "/v1/jobs/{job_id}"): _JOB_OUT,
    ("post", "/v1/jobs/{job_id}/cancel"): _JOB_OUT | {"status": "cancelled", "finished_at": _AT},
    ("post", "/v1/search"): {
        "results": [
            {
                "chunk_id": "c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f",
                "document_id": _ID,
                "filename": "manual.pdf",
                "page_start": 7,
                "page_end": 7,
                "score": 0.0328,
                "text": "To reset the device, hold the power button for ten seconds…",
                "section": None,
            }
        ]
    },
    ("post", "/v1/chat"): {
        "job_id": _JOB,
        "session_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        "message_id": "8e9f0a1b-2c3d-4e5f-9a0b-1c2d3e4f5a6b",
        "stream_url": f"/v1/chat/{_JOB}/stream?token=eyJhbGciOiJIUzI1NiIs…",
    },
    ("get", "/v1/sessions"): {
        "items": [
            {
                "id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
                "title": "How do I reset…",
                "created_at": _AT,
                "updated_at": _AT,
            }
        ],
        "next_cursor": None,
    },
    ("get", "/v1/sessions/{session_id}/messages"): {
        "session": {
            "id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            "title": "How do I reset…",
            "created_at": _AT,
            "updated_at": _AT,
        },
        "messages": [
            {
                "id": "5d6e7f8a-9b0c-4d1e-8f2a-3b4c5d6e7f8a",
                "role": "user",
                "content": "How do I reset the device?",
                "status": "complete",
                "citations": [],
                "model": None,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "job_id": _JOB,
                "created_at": _AT,
            },
            {
                "id": "8e9f0a1b-2c3d-4e5f-9a0b-1c2d3e4f5a6b",
                "role": "assistant",
                "content": "Hold the power button for ten seconds [1][2].",
                "status": "complete",
                "citations": [
                    {
                        "n": 1,
                        "document_id": _ID,
                        "filename": "manual.pdf",
                        "page_start": 7,
                        "page_end": 7,
                        "chunk_id": "c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f",
                    },
                    {  # a format without pages: its "pages" are sections, named
                        "n": 2,
                        "document_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                        "filename": "handbook.docx",
                        "page_start": 3,
                        "page_end": 3,
                        "chunk_id": "d5e6f7a8-b9c0-4d1e-8f2a-3b4c5d6e7f8a",
                        "section": "Resetting the device",
                    },
                ],
                "model": "gpt-4o-mini",
                "prompt_tokens": 1830,
                "completion_tokens": 12,
                "job_id": _JOB,
                "created_at": _AT,
            },
        ],
    },
    ("get", "/v1/members"): {
        "items": [_MEMBER | {"status": "active", "last_sign_in": _AT}],
        "next_cursor": None,
    },
    ("post", "/v1/members"): _MEMBER,
    ("patch", "/v1/members/{member_id}"): _MEMBER | {"role": "admin", "status": "active"},
    ("get", "/v1/usage"): {
        "scope": "user",
        "at": _AT,
        "last_24h": _WINDOW,
        "last_7d": _WINDOW,
        "quota": {
            "monthly_tokens": 2000000,
            "used_tokens": 412000,
            "remaining_tokens": 1588000,
            "period_start": "2026-11-01T00:00:00Z",
            "resets_at": "2026-12-01T00:00:00Z",
        },
    },
}
STREAM_EXAMPLE = (
    'id: 1764149400000-0\nevent: start\ndata: {"job_id": "…", "model": "gpt-4o-mini"}\n\n'
    'id: 1764149400120-0\nevent: citations\ndata: [{"n": 1, "filename": "manual.pdf", '
    '"page_start": 7, "page_end": 7}]\n\n'
    'id: 1764149400410-0\nevent: delta\ndata: {"text": "Hold the power button"}\n\n'
    'id: 1764149401950-0\nevent: end\ndata: {"finish_reason": "stop", "usage": {…}}\n\n'
)
JOB_EVENTS_EXAMPLE = (
    'id: 1796197800941030\nevent: progress\ndata: {"job_id": "…", "kind": "ingest", '
    '"status": "running", "stage": "extracting", "pages_done": 12, "pages_total": 40, '
    '"chunks_done": null, "chunks_total": null}\n\n'
    'id: 1796197812394282\nevent: end\ndata: {"job_id": "…", "status": "succeeded", '
    '"error": null}\n\n'
)
PROBLEM_EXAMPLES = {
    400: {"status": 400, "detail": "JSON is malformed: invalid character (byte 0)"},
    401: {"status": 401, "detail": "an `Authorization: Bearer <token>` header is required"},
    403: {"status": 403, "detail": "this token belongs to another tenant than 'acme'"},
    404: {"status": 404, "detail": f"no document '{_ID}'"},
    408: {
        "status": 408,
        "detail": "no byte of the request's body arrived for 10 s (BODY_IDLE_SECONDS); send it "
        "again",
    },
    409: {"status": 409, "detail": "the job has already succeeded; there is nothing to cancel"},
    410: {"status": 410, "detail": "the live stream of this answer has expired"},
    413: {"status": 413, "detail": "the file is larger than the 25 MB allowed"},
    415: {"status": 415, "detail": "the file is not a PDF", "field": "file"},
    422: {
        "status": 422,
        "detail": "message: Expected `str` of length >= 1",
        "field": "message",
        "errors": [{"field": "message", "message": "Expected `str` of length >= 1"}],
    },
    429: {
        "status": 429,
        "detail": "too many requests: reads (status, lists, streams) are limited to 600 a "
        "minute; retry in 12 s",
    },
    431: {"status": 431, "detail": "the request's headers take 40,960 bytes; at most 32,768"},
    503: {"status": 503, "detail": "the database is unavailable; try again shortly"},
    507: {
        "status": 507,
        "detail": "the server is low on disk space (310 MB free, 537 MB needed to take an "
        "upload): uploads are refused until space is freed; deleting documents frees theirs",
    },
}


@dataclass
class _Verbatim(BaseSchemaObject):
    """An example served as written: Litestar drops None from what it serialises, and an
    example without its nulls would not match its own schema (`"error": null` is required)."""

    value: Any

    def to_schema(self) -> Any:
        return self.value


def document_examples(app: Litestar) -> None:
    """Put an example on every request body and every response of the served document."""
    assert app.openapi_schema.paths is not None
    for path, item in app.openapi_schema.paths.items():
        for method in ("get", "post", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            body = REQUEST_EXAMPLES.get((method, path))
            if (method, path) == ("post", "/v1/files"):
                body = {"file": "(the PDF's bytes)"}
            if body is not None and isinstance(operation.request_body, RequestBody):
                for media in (operation.request_body.content or {}).values():
                    media.example = _Verbatim(body)
            for code, response in (operation.responses or {}).items():
                if not isinstance(response, OpenAPIResponse) or not response.content:
                    continue
                if path.endswith(("/stream", "/events")) and code == "200":
                    sse = STREAM_EXAMPLE if path.endswith("/stream") else JOB_EVENTS_EXAMPLE
                    response.content = {
                        "text/event-stream": OpenAPIMediaType(
                            schema=Schema(type=OpenAPIType.STRING), example=sse
                        )
                    }
                    continue
                example = (
                    RESPONSE_EXAMPLES.get((method, path))
                    if code.startswith("2")
                    else PROBLEM_EXAMPLES.get(int(code))
                )
                if code == "503" and path == "/healthz":
                    example = RESPONSE_EXAMPLES[("get", "/healthz")] | {"status": "down"}
                for media in response.content.values():
                    media.example = _Verbatim(example)
