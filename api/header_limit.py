"""Requests whose headers are too large get 431 before any other work.

uvicorn's httptools parser sets no limit on header size, so without this a client could send
megabytes of headers with every request. 32 KiB is far above what browsers send (a few KiB
with cookies) and what our longest header, a bearer token, needs.
"""

from __future__ import annotations

import msgspec
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

MAX_HEADER_BYTES = 32 * 1024


def header_limit(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                await _refusal(size)(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def _refusal(size: int) -> ASGIResponse:
    detail = f"the request's headers take {size:,} bytes; at most {MAX_HEADER_BYTES:,} are accepted"
    return ASGIResponse(
        body=msgspec.json.encode({"status": 431, "detail": detail}),
        status_code=431,
        media_type="application/json",
    )
