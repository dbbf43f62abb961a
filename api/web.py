"""The reference web client: one static page at `/` (HTML, CSS and JavaScript, no build)."""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Response, get

from api.identity import PUBLIC

PAGE = Path(__file__).parent / "static" / "index.html"


@get("/", opt={PUBLIC: True}, include_in_schema=False)
async def web_client() -> Response[bytes]:
    return Response(
        PAGE.read_bytes(),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
