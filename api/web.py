"""What a browser loads: the reference web client at `/` with its script and styles under
`/static/`, and the API's documentation under `/schema`, all served from the package (no CDN:
it works offline like the rest).

The OpenAPI document is rendered once per format and kept: rendering it (YAML above all) took
about 0.2 s of the event loop, on every request, for anyone who asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import swagger_ui
import yaml
from litestar import MediaType, Request, Response, Router, get
from litestar.enums import OpenAPIMediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File
from litestar.serialization import encode_json
from litestar.static_files import create_static_files_router

from api.identity import PUBLIC
from core.errors import NotFound

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "index.html"
# Swagger UI's own files, from the swagger-ui-py package; only these two are served.
SWAGGER = Path(swagger_ui.__file__).parent / "static"
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
DOCS_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DocuChat API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


@get("/", opt={PUBLIC: True}, include_in_schema=False)
async def web_client() -> Response[bytes]:
    return Response(
        PAGE.read_bytes(), media_type=MediaType.HTML, headers={"Cache-Control": "no-cache"}
    )


@get("/static/swagger/{name:str}", opt={PUBLIC: True}, include_in_schema=False)
async def swagger_asset(name: FromPath[str]) -> File:
    media_type = SWAGGER_FILES.get(name)
    if media_type is None:
        raise NotFound(f"no file {name!r}")
    return File(SWAGGER / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"})


def static_files() -> Router:
    """The web client's script and styles, and the documentation page's start-up script."""
    return create_static_files_router(
        path="/static",
        directories=[STATIC],
        opt={PUBLIC: True},
        cache_control=None,
        include_in_schema=False,
    )


class RenderedOnce(OpenAPIRenderPlugin):
    """One rendering of the OpenAPI document (JSON, YAML) or of the docs page, made at the
    first request and served as the same bytes from then on."""

    def __init__(
        self,
        path: str | Sequence[str],
        media_type: MediaType | OpenAPIMediaType,
        render: Any,
    ) -> None:
        super().__init__(path=path, media_type=media_type)
        self._render = render
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self._render(openapi_schema)
        return self._rendered


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """`/schema` (and `/schema/swagger`): Swagger UI; `/schema/openapi.json` and `.yaml`."""
    return [
        RenderedOnce(["/", "/swagger"], MediaType.HTML, lambda _: DOCS_PAGE),
        RenderedOnce("/openapi.json", OpenAPIMediaType.OPENAPI_JSON, encode_json),
        RenderedOnce(
            ["/openapi.yaml", "/openapi.yml"],
            OpenAPIMediaType.OPENAPI_YAML,
            lambda schema: yaml.dump(schema, default_flow_style=False).encode("utf-8"),
        ),
    ]
