"""No request waits longer than REQUEST_DEADLINE_SECONDS for the service's answer to begin.

Postgres or Redis can stop answering without closing a connection (frozen, a partition): a
query then waits with nothing to end it, and a statement timeout cannot help, since the server
that would enforce it is the one not answering. Here the app's work on a request runs as a
task; when it has not begun its answer by the deadline, the client gets 503 with
`Retry-After` and a sentence, and the task is cancelled in the background (its later sends are
dropped). The time the client takes to send its body is not counted (BodyPaceMiddleware times
that), and an answer once begun (a stream) is not timed. An upload has PDF_CPU_SECONDS more:
its file is read, in a child process held to that, before it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from api.resources import ApiResources

log = logging.getLogger("docuchat.api")

RETRY_AFTER_SECONDS = 5
_READING_POLL_SECONDS = 0.5  # while the body arrives, how often to look again
# Requests abandoned at their deadline whose work is still being cancelled.
_ABANDONED: set[asyncio.Task[Any]] = set()


class RequestDeadlineMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        resources: ApiResources = scope["app"].state.resources
        settings = resources.settings
        seconds = settings.request_deadline_seconds
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get("upload"):
            seconds += settings.pdf_cpu_seconds  # the file is read, in a bounded child, first
        await _Deadline(seconds, receive, send).run(self.app, scope)


class _Deadline:
    def __init__(self, seconds: float, receive: Receive, send: Send) -> None:
        self.seconds = seconds
        self._receive, self._send = receive, send
        self.since = time.monotonic()  # the clock restarts after each read of the body
        self.reading = False
        self.begun = False  # the app started its answer
        self.expired = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(app(scope, self.receive, self.send))
        while True:
            left = self.since + self.seconds - time.monotonic()
            wait = None if self.begun else _READING_POLL_SECONDS if self.reading else left
            await asyncio.wait({task}, timeout=max(wait, 0.01) if wait is not None else None)
            if task.done():
                task.result()  # the app's own errors go on to the server
                return
            if self.begun:
                continue
            if not self.reading and time.monotonic() >= self.since + self.seconds:
                await self._expire(scope, task)
                return

    async def receive(self) -> ReceiveMessage:
        self.reading = True
        try:
            return await self._receive()
        finally:
            self.reading, self.since = False, time.monotonic()

    async def send(self, message: Message) -> None:
        if self.expired:
            return  # the client was answered at the deadline
        if message["type"] == "http.response.start":
            self.begun = True
        await self._send(message)

    async def _expire(self, scope: Scope, task: asyncio.Task[Any]) -> None:
        self.expired = True
        task.cancel()
        _ABANDONED.add(task)
        task.add_done_callback(_forget)
        log.warning(
            "%s %s had no answer within %g s (REQUEST_DEADLINE_SECONDS): a dependency is not "
            "answering",
            scope.get("method", ""),
            scope["path"],
            self.seconds,
        )
        detail = (
            f"the service could not answer within {self.seconds:g} s: its database or queue "
            f"is not answering, or the work took too long; try again in {RETRY_AFTER_SECONDS} s"
        )
        body = msgspec.json.encode({"status": 503, "detail": detail})
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
        end: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": body,
            "more_body": False,
        }
        await self._send(start)
        await self._send(end)


def _forget(task: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.info("an abandoned request ended with %r", task.exception())
