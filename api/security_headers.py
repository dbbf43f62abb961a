"""Headers every response carries, whoever made it (a route, an error, the static files).

- `X-Content-Type-Options: nosniff`: a browser takes each body for what its type says.
- `Referrer-Policy: no-referrer`: a stream URL carries a token; no page passes it on.
- `Content-Security-Policy`: HTML (the web client, the docs) may run only the scripts and
  styles served from here, and no other site may frame it; anything else is data and may
  load nothing at all.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


async def add_security_headers(message: Message, scope: Scope) -> None:
    """`before_send`: stamps the headers on the start of every HTTP response."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    is_page = (headers.get("content-type") or "").startswith("text/html")
    headers["Content-Security-Policy"] = PAGE_POLICY if is_page else DATA_POLICY
