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

from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
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
    410: "the resource has expired",
    413: "the body is larger than allowed",
    415: "the upload is not a PDF",
    422: "a field, parameter or header is invalid; `field` names it",
    429: "rate limit or monthly token quota reached; see Retry-After",
    431: "the request's headers are larger than 32 KiB",
    503: "a dependency (database, Redis, queue) is unavailable; retry after Retry-After",
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
        statuses |= {413, 415}
    if operation.request_body is not None:
        statuses |= {413} if handler.opt.get("upload") else {400, 413}
    responses = operation.responses or {}
    if "400" not in {str(code) for code in statuses} and not public:
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
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Problem")
            )
        },
    )
