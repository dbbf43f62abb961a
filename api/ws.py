"""`/ws/chat`: the original WebSocket contract, on the same jobs and streams as SSE.

Connect with `?token=<access token>&tenant=<slug>` (or the Authorization and tenant headers).
Send `{"message": "...", "session_id"?, "document_ids"?, "model"?}` to ask (one question at a
time, as many as you like one after another), `{"resume": {"job_id", "last_event_id"?}}` to
read an answer on from where you were, `{"cancel": "<job id>"}` to stop one. Every event
comes as a text frame `{"event", "id", "data"}` with exactly the SSE payload; events the
relay makes itself (a stream error, `reconnect`) have no id. A bad frame gets an `error`
frame and the socket stays open; a failed sign-in closes it with 4401, a refused one 4403.

Questions cost what `POST /v1/chat` costs: the same rate limit, quota, usage and saved
messages; the answer is the job's own stream, so it can be read over SSE too, and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Annotated, Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from api.chat import own_chat_job, resume_point, stream_url
from api.identity import Caller, caller_of, parse_bearer
from api.params import parse_document_ids, parse_field_id, parse_id, text_field
from api.rate_limiting import budget_for
from api.relay import follow
from api.resources import ApiResources, resources_of
from api.signin.tokens import InvalidToken, decode_access_token
from core.errors import AuthenticationFailed, DocuChatError, InvalidInput, PermissionDenied
from db.jobs import FINISHED
from transport import events
from transport.events import stream_key
from usecases import chat, jobs

log = logging.getLogger("docuchat.api")

WS_PATH = r"^/ws/"
UNAUTHENTICATED = 4401
FORBIDDEN = 4403


class Question(msgspec.Struct, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    session_id: str | None = None
    document_ids: Annotated[list[str], msgspec.Meta(max_length=100)] | None = None
    model: str | None = None


class ResumeAt(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    last_event_id: str | None = None


class Resume(msgspec.Struct, forbid_unknown_fields=True):
    resume: ResumeAt


class Cancel(msgspec.Struct, forbid_unknown_fields=True):
    cancel: str


def _frame(name: str, data: Any, event_id: str | None = None) -> str:
    return msgspec.json.encode({"event": name, "id": event_id, "data": data}).decode()


def _error_frame(code: str, message: str, **extra: Any) -> str:
    return _frame("error", {"code": code, "message": message, **extra})


async def _socket_caller(socket: WebSocket[Any, Any, Any], resources: ApiResources) -> Caller:
    token = socket.query_params.get("token") or parse_bearer(
        socket.headers.get("authorization", "")
    )
    if not token:
        raise AuthenticationFailed(
            "connect with ?token=<access token>&tenant=<slug>, or the Authorization header"
        )
    try:
        claims = decode_access_token(resources.settings, token)
    except InvalidToken as exc:
        raise AuthenticationFailed(str(exc)) from None
    requested = socket.query_params.get("tenant") or socket.headers.get(
        resources.settings.tenant_header
    )
    return await caller_of(resources, claims.user_id, claims.tenant_id, requested, claims.version)


class _Connection:
    """One socket: its caller, the one answer it relays at a time, and ordered sends."""

    def __init__(self, socket: WebSocket[Any, Any, Any], resources: ApiResources, caller: Caller):
        self.socket = socket
        self.resources = resources
        self.caller = caller
        self.relaying: asyncio.Task[None] | None = None
        self.answering = False  # until the relayed answer's last event is on its way
        self._send = asyncio.Lock()

    async def send(self, text: str) -> None:
        async with self._send:
            await self.socket.send_text(text)

    @property
    def busy(self) -> bool:
        return self.answering

    async def handle(self, raw: str | bytes) -> None:
        try:
            frame = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            await self.send(_error_frame("bad_frame", "a frame is one JSON object"))
            return
        if not isinstance(frame, dict):
            await self.send(_error_frame("bad_frame", "a frame is one JSON object"))
            return
        try:
            if "cancel" in frame:
                await self._cancel(msgspec.convert(frame, Cancel))
            elif "resume" in frame:
                await self._resume(msgspec.convert(frame, Resume).resume)
            elif "message" in frame:
                await self._ask(msgspec.convert(frame, Question))
            else:
                await self.send(_error_frame(
                    "bad_frame", "send {\"message\"}, {\"resume\"} or {\"cancel\"}"
                ))  # fmt: skip
        except msgspec.ValidationError as exc:
            await self.send(_error_frame("bad_frame", str(exc)))
        except DocuChatError as exc:
            await self.send(_error_frame(_code(exc), str(exc), **_details(exc)))

    async def _ask(self, question: Question) -> None:
        if self.busy:
            raise InvalidInput("message", "one question at a time: wait for its end, or cancel it")
        await self._spend()
        text = text_field(question.message, "message").strip()
        if not text:
            raise InvalidInput("message", "the message is empty")
        asked = await chat.ask(
            self.resources,
            self.caller,
            text,
            question.model,
            parse_field_id(question.session_id, "session_id") if question.session_id else None,
            parse_document_ids(question.document_ids),
        )
        self._relay(asked.job.id, "0-0")

    async def _resume(self, at: ResumeAt) -> None:
        if self.busy:
            raise InvalidInput("resume", "an answer is being relayed: wait for its end")
        job_id = parse_field_id(at.job_id, "job_id")
        job = await own_chat_job(self.resources, self.caller, job_id)
        last_id, read_all = await resume_point(
            self.resources, stream_key(job_id), at.last_event_id or ""
        )
        if read_all and job.status in FINISHED:
            await self.send(_error_frame("finished", "the answer ended there: nothing follows"))
            return
        self._relay(job_id, last_id)

    async def _cancel(self, cancel: Cancel) -> None:
        job = await jobs.cancel(self.resources, self.caller, parse_id(cancel.cancel, "job"))
        await self.send(_frame("cancelled", {"job_id": str(job.id), "status": job.status}))

    async def _spend(self) -> None:
        budget = budget_for("POST", self.resources.settings)
        limiter = self.resources.rate_limiter
        decision = await limiter.hit(
            limiter.budget(budget.per_minute), budget.name, "user", str(self.caller.user_id)
        )
        if not decision.allowed:
            raise _RateLimited(
                f"over {budget.per_minute} {budget.spent_on} a minute; "
                f"retry in {decision.reset_after} s",
                decision.reset_after,
            )

    def _relay(self, job_id: uuid.UUID, last_id: str) -> None:
        self.answering = True
        self.relaying = asyncio.get_running_loop().create_task(self._follow(job_id, last_id))

    async def _follow(self, job_id: uuid.UUID, last_id: str) -> None:
        try:
            async for item in follow(self.resources, self.caller, job_id, last_id):
                if item is None:
                    continue  # a socket needs no keep-alive comments
                if isinstance(item, list):
                    for stored in item:
                        self.answering = not stored.terminal
                        await self.send(
                            _frame(stored.name, msgspec.json.decode(stored.data), stored.id)
                        )
                    continue
                # the relay's own last word: an error, or `reconnect`
                self.answering = False
                await self.send(
                    _frame(events.name_of(item), msgspec.json.decode(events.data_of(item)))
                )
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if self.relaying is asyncio.current_task():  # not a newer answer's
                self.answering = False


class _RateLimited(DocuChatError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _code(exc: DocuChatError) -> str:
    if isinstance(exc, _RateLimited):
        return "rate_limited"
    return {
        "InvalidInput": "invalid_input",
        "NotFound": "not_found",
        "Conflict": "conflict",
        "PermissionDenied": "forbidden",
        "AuthenticationFailed": "unauthenticated",
        "QuotaExceeded": "quota_exceeded",
        "RateLimited": "rate_limited",
        "ServiceUnavailable": "unavailable",
    }.get(type(exc).__name__, "error")


def _details(exc: DocuChatError) -> dict[str, Any]:
    retry = getattr(exc, "retry_after", None)
    return {"retry_after": retry} if isinstance(retry, int) else {}


@websocket("/ws/chat", opt={"exclude_from_auth": True})
async def chat_socket(socket: WebSocket[Any, Any, Any]) -> None:
    resources = resources_of(socket)
    await socket.accept()
    try:
        caller = await _socket_caller(socket, resources)
    except AuthenticationFailed as exc:
        await socket.close(code=UNAUTHENTICATED, reason=str(exc)[:120])
        return
    except PermissionDenied as exc:
        await socket.close(code=FORBIDDEN, reason=str(exc)[:120])
        return
    connection = _Connection(socket, resources, caller)
    try:
        while True:
            message = await socket.receive_data(mode="text")
            await connection.handle(message)
    except WebSocketDisconnect:
        pass
    finally:
        if connection.relaying is not None:
            connection.relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connection.relaying


__all__ = ["WS_PATH", "chat_socket", "stream_url"]
