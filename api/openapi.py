"""The error half of the OpenAPI document, generated from the route table.

Every DocuChat error is a problem body ({"status", "detail", "field"?, "errors"?, ...}). Which
statuses an operation can answer follows from what it is: every operation can be invalid
(422), rate limited (429), sent too many header bytes (431) or find a dependency down (503);
one that needs a token can be 401 or 403; one with an id in its path 404; one with a body 413.
Statuses particular to one operation (409, 410, 415) sit on its decorator. A new route is
documented by being in the app; the fuzz test (tests/test_api_fuzz.py) holds every response
to this document. The examples on every body and response are data, in `openapi_examples.json`
beside this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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

# What the document shows as examples: plain data, read when the document is built.
EXAMPLES = Path(__file__).with_name("openapi_examples.json")

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


@dataclass
class _Verbatim(BaseSchemaObject):
    """An example served as written: Litestar drops None from what it serialises, and an
    example without its nulls would not match its own schema (`"error": null` is required)."""

    value: Any

    def to_schema(self) -> Any:
        return self.value


def document_examples(app: Litestar) -> None:
    """Put an example on every request body and every response of the served document, read
    from `openapi_examples.json` beside this module."""
    assert app.openapi_schema.paths is not None
    examples = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    requests, responses = examples["requests"], examples["responses"]
    problems, streams = examples["problems"], examples["event_streams"]
    for path, item in app.openapi_schema.paths.items():
        for method in ("get", "post", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            name = f"{method.upper()} {path}"
            body = requests.get(name)
            if body is not None and isinstance(operation.request_body, RequestBody):
                for media in (operation.request_body.content or {}).values():
                    media.example = _Verbatim(body)
            for code, response in (operation.responses or {}).items():
                if not isinstance(response, OpenAPIResponse) or not response.content:
                    continue
                if path.endswith(("/stream", "/events")) and code == "200":
                    events = streams["/stream" if path.endswith("/stream") else "/events"]
                    response.content = {
                        "text/event-stream": OpenAPIMediaType(
                            schema=Schema(type=OpenAPIType.STRING), example=_sse(events)
                        )
                    }
                    continue
                example = responses.get(name) if code.startswith("2") else problems.get(code)
                if code == "503" and path == "/healthz":
                    example = responses["GET /healthz"] | {"status": "down"}
                for media in response.content.values():
                    media.example = _Verbatim(example)


def _sse(events: list[dict[str, str]]) -> str:
    """Server-sent events as they come over the wire."""
    return "".join(f"id: {e['id']}\nevent: {e['event']}\ndata: {e['data']}\n\n" for e in events)
