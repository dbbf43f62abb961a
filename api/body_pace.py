"""Every request body must keep coming: 408 and the connection closed when it stalls or
trickles, whatever the route (a JSON body, a sign-in, an upload).

A request's line and headers are held to a deadline by the protocol (api/http_protocol.py);
its body by this middleware, which times the app's reads of it: BODY_IDLE_SECONDS without a
byte, or fewer than BODY_MIN_BYTES_PER_SECOND over a window of BODY_RATE_WINDOW_SECONDS, and
the read raises 408. The protocol closes a connection answered before its body arrived, and an
upload removes its temporary file, so a stalled body holds nothing. Once the body is in, the
app's later reads (a stream waiting for its client to leave) are not timed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from api.resources import ApiResources
from core.settings import Settings


@dataclass(frozen=True)
class Pace:
    """How slowly a body may arrive."""

    idle_seconds: float
    min_bytes_per_second: int
    window_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> Pace:
        return cls(
            settings.body_idle_seconds,
            settings.body_min_bytes_per_second,
            settings.body_rate_window_seconds,
        )


def _too_slow(detail: str) -> HTTPException:
    return HTTPException(status_code=408, detail=detail, headers={"Connection": "close"})


def paced(receive: Receive, pace: Pace) -> Receive:
    """`receive`, with the body's pieces due at `pace`."""
    done = False
    window_start, window_bytes = time.monotonic(), 0

    async def receive_paced() -> ReceiveMessage:
        nonlocal done, window_start, window_bytes
        if done:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), pace.idle_seconds)
        except TimeoutError:
            raise _too_slow(
                f"no byte of the request's body arrived for {pace.idle_seconds:g} s "
                "(BODY_IDLE_SECONDS); send it again"
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
            return message
        window_bytes += len(message.get("body", b""))
        elapsed = time.monotonic() - window_start
        if elapsed >= pace.window_seconds:
            if window_bytes < pace.min_bytes_per_second * elapsed:
                raise _too_slow(
                    f"the request's body arrived at {window_bytes / elapsed:.0f} bytes a second "
                    f"over {elapsed:.0f} s, slower than the {pace.min_bytes_per_second} allowed "
                    "(BODY_MIN_BYTES_PER_SECOND); send it again"
                )
            window_start, window_bytes = time.monotonic(), 0
        return message

    return receive_paced


class BodyPaceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            resources: ApiResources = scope["app"].state.resources
            receive = paced(receive, Pace.of(resources.settings))
        await self.app(scope, receive, send)
