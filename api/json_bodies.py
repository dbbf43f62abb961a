"""JSON request bodies that nest too deeply are a client's mistake, not a server error.

Litestar decodes a body to plain Python values before checking it against the route's type,
and msgspec raises RecursionError on a body nested thousands of levels deep (`[[[[...`): a
500 with a traceback for one request of 200 KB. The request class turns it into a 400.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class BoundedJsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException(
                "the JSON body is nested too deeply to read; no field of this API nests more "
                "than a few levels"
            ) from None
