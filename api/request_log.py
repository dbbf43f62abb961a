"""Every request gets an id, echoed in `X-Request-ID` and carried by every log line written
while it is served, and one access line when its response starts.

A caller's own `X-Request-ID` (up to 128 letters, digits, `-`, `_` and `.`) is kept, so a
request can be followed from a proxy or client through the API into the logs; otherwise a new
one is made. The id is set by the first middleware; the header and the access line come from
a `before_send` hook, which also sees the responses Litestar makes for errors raised outside
the route handlers (a missing token, an unknown path).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, cast

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from api.metrics import observe_request
from core import logs
from core.redaction import redact_query

HEADER = b"x-request-id"
_SANE = re.compile(rb"[\w.-]{1,128}")
_STARTED = "docuchat_started"
log = logging.getLogger("docuchat.access")


def request_context(app: ASGIApp) -> ASGIApp:
    """Sets the request id for the rest of the request (the request's own task: nothing
    outlives it), from the caller's header or anew."""

    async def with_context(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(HEADER, b"")
            logs.request_id.set(given.decode() if _SANE.fullmatch(given) else uuid.uuid4().hex)
            scope.setdefault("state", {})[_STARTED] = time.perf_counter()
        await app(scope, receive, send)

    return with_context


async def stamp_response(message: Message, scope: Scope) -> None:
    """`before_send`: the request id header and the access line, as the response starts."""
    if message["type"] != "http.response.start" or scope["type"] != "http":
        return
    ident = logs.request_id.get()
    if ident is None:  # refused before any middleware ran
        ident = uuid.uuid4().hex
        logs.request_id.set(ident)
    message["headers"] = [*message.get("headers", []), (HEADER, ident.encode())]
    started = scope.get("state", {}).get(_STARTED)
    seconds = time.perf_counter() - started if started else 0.0
    http = cast("HTTPScope", scope)
    method, path = http["method"], http["path"]
    query = redact_query(http["query_string"].decode("latin-1"))
    target = path + (f"?{query}" if query else "")
    status = message["status"]
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
    }
    observe_request(http, status, seconds)
    # The query string, masked as the server decodes it, goes in the message only.
    log.info("%s %s %d %.1f ms", method, target, status, seconds * 1000, extra={"fields": fields})
