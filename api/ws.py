"""`/ws/chat`: the original WebSocket contract, on the same jobs and streams as SSE.

Connect with `?token=<access token>&tenant=<slug>` (or the Authorization and tenant headers).
Send `{"message": "...", "session_id"?, "document_ids"?, "model"?}` to ask (one question at a
time, as many as you like one after another), `{"resume": {"job_id", "last_event_id"?}}` to
read an answer on from where you were, `{"cancel": "<job id>"}` to stop one. Every event
comes as a text frame `{"event", "id", "data"}` with exactly the SSE payload; events the
relay makes itself (a stream error, `reconnect`) have no id. A bad frame gets an `error`
frame and the socket stays open; a failed sign-in closes it with 4401, a refused one 4403.

A socket is held to what HTTP is held to. Connecting spends a read of the caller's budget and
takes a place among their open streams (4429 past either, 1013 when this process is full);
every frame spends a read before it is decoded (a question or a cancel the other budget
too, as their HTTP twins do), and past it gets an `error` frame `rate_limited`. Every frame
is authorised again (token expiry, membership, token version): a removed member or an
expired token gets the socket closed (4403, 4401), at the latest a keep-alive interval after
the change, with or without a frame. A message larger than WS_MAX_FRAME_BYTES closes it with 1009.

Questions cost what `POST /v1/chat` costs: the same rate limit, quota, usage and saved
messages; the answer is the job's own stream, so it can be read over SSE too, and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError

from api.capacity import Hold
from api.chat import ChatRequest, ask_question, own_chat_job, resume_point, stream_url
from api.identity import Caller, caller_of, parse_bearer
from api.params import parse_field_id, parse_id
from api.rate_limiting import refusal, spend, spender
from api.relay import follow
from api.resources import ApiResources, ResourcesDep
from api.signin.tokens import InvalidToken, decode_access_token
from core.errors import (
    AuthenticationFailed,
    DocuChatError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from db.jobs import FINISHED
from transport import events
from transport.events import stream_key
from usecases import jobs

log = logging.getLogger("docuchat.api")

WS_PATH = r"^/ws/"
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
TOO_MANY = 4429
TRY_AGAIN_LATER = 1013  # RFC 6455's registry: the server is overloaded
MESSAGE_TOO_BIG = 1009


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


@dataclass(frozen=True)
class _SignedIn:
    caller: Caller
    expires_at: int  # the access token's expiry (Unix seconds)


async def _socket_caller(socket: WebSocket[Any, Any, Any], resources: ApiResources) -> _SignedIn:
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
    caller = await caller_of(resources, claims.user_id, claims.tenant_id, requested, claims.version)
    return _SignedIn(caller, claims.expires_at)


class _Closed(Exception):
    """The socket must close with this code: its right to be open ended."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _Connection:
    """One socket: its caller, the one answer it relays at a time, and ordered sends."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        resources: ApiResources,
        signed_in: _SignedIn,
        hold: Hold,
    ):
        self.socket = socket
        self.resources = resources
        self.hold = hold  # the socket's place among its caller's open streams
        self.caller = signed_in.caller
        self.expires_at = signed_in.expires_at
        self.relaying: asyncio.Task[None] | None = None
        self.answering = False  # until the relayed answer's last event is on its way
        self._send = asyncio.Lock()
        self.closed = False

    async def send(self, text: str) -> None:
        async with self._send:
            if not self.closed:
                await self.socket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        """Stop relaying and close the socket with `code`, once."""
        await self.stop_relaying()
        async with self._send:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await self.socket.close(code=code, reason=reason[:120])

    async def stop_relaying(self) -> None:
        task, self.relaying = self.relaying, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def busy(self) -> bool:
        return self.answering

    async def authorise(self) -> None:
        """The caller may still use this socket: the token has not expired, and they are
        still a member with the same token version. _Closed otherwise."""
        if time.time() >= self.expires_at:
            raise _Closed(UNAUTHENTICATED, "the access token has expired; sign in again")
        try:
            self.caller = await caller_of(
                self.resources,
                self.caller.user_id,
                self.caller.tenant_id,
                None,
                self.caller.token_version,
            )
        except AuthenticationFailed as exc:
            raise _Closed(UNAUTHENTICATED, str(exc)) from None
        except PermissionDenied as exc:
            raise _Closed(FORBIDDEN, str(exc)) from None

    async def watch(self) -> None:
        """Close the socket when its token expires or its caller is no longer a member,
        looking at least every keep-alive interval, whether frames come or not."""
        keepalive = self.resources.settings.sse_keepalive_seconds
        while not self.closed:
            await asyncio.sleep(max(0.0, min(keepalive, self.expires_at - time.time())))
            try:
                await self.authorise()
            except _Closed as closed:
                await self.close(closed.code, str(closed))
            except (SQLAlchemyError, OSError) as exc:  # the next look may succeed
                log.warning("could not check a socket's caller: %s", exc)

    async def handle(self, raw: str | bytes) -> None:
        """Answer one frame. Every frame spends a read before it is even decoded (as every
        HTTP request spends one of its budget); a question or a cancel spends the other
        budget too, as POST /v1/chat and POST /v1/jobs/{id}/cancel do."""
        try:
            await self._admit("GET")
        except RateLimited as exc:
            await self.send(_error_frame(_code(exc), str(exc), **_details(exc)))
            return
        try:
            frame = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            frame = None
        except RecursionError:
            await self.send(_error_frame(
                "bad_frame", "the frame is nested too deeply to read; no frame nests more "
                "than a few levels",
            ))  # fmt: skip
            return
        if not isinstance(frame, dict):
            await self.send(_error_frame("bad_frame", "a frame is one JSON object"))
            return
        try:
            if "cancel" in frame:
                await self._admit("POST")
                await self._cancel(msgspec.convert(frame, Cancel))
            elif "resume" in frame:
                await self._resume(msgspec.convert(frame, Resume).resume)
            elif "message" in frame:
                await self._ask(msgspec.convert(frame, ChatRequest))
            else:
                await self.send(_error_frame(
                    "bad_frame", "send {\"message\"}, {\"resume\"} or {\"cancel\"}"
                ))  # fmt: skip
        except msgspec.ValidationError as exc:
            await self.send(_error_frame("bad_frame", str(exc)))
        except DocuChatError as exc:
            await self.send(_error_frame(_code(exc), str(exc), **_details(exc)))

    async def _admit(self, method: str) -> None:
        """Spend what the frame's HTTP twin spends, then check the caller's right."""
        who = ("user", str(self.caller.user_id))
        decision = await spend(self.resources, method, who)
        if not decision.allowed:
            raise RateLimited(
                refusal(method, self.resources.settings, decision), decision.reset_after
            )
        await self.authorise()

    async def _ask(self, question: ChatRequest) -> None:
        await self._admit("POST")
        if self.busy:
            raise InvalidInput("message", "one question at a time: wait for its end, or cancel it")
        asked = await ask_question(self.resources, self.caller, question)
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


def _code(exc: DocuChatError) -> str:
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


async def _open(socket: WebSocket[Any, Any, Any], resources: ApiResources) -> _Connection:
    """Spend the connect's read, sign the caller in and take their place among open streams;
    _Closed with the code to close with otherwise."""
    try:
        decision = await spend(resources, "GET", spender(resources, socket.scope))
        if not decision.allowed:
            raise _Closed(TOO_MANY, refusal("GET", resources.settings, decision))
        signed_in = await _socket_caller(socket, resources)
        caller = signed_in.caller
        hold = await resources.capacity.take(resources.streams, caller.user_id, caller.tenant_id)
    except AuthenticationFailed as exc:
        raise _Closed(UNAUTHENTICATED, str(exc)) from None
    except PermissionDenied as exc:
        raise _Closed(FORBIDDEN, str(exc)) from None
    except RateLimited as exc:
        raise _Closed(TOO_MANY, str(exc)) from None
    except ServiceUnavailable as exc:
        raise _Closed(TRY_AGAIN_LATER, str(exc)) from None
    return _Connection(socket, resources, signed_in, hold)


@websocket("/ws/chat", opt={"exclude_from_auth": True})
async def chat_socket(socket: WebSocket[Any, Any, Any], resources: ResourcesDep) -> None:
    await socket.accept()
    try:
        connection = await _open(socket, resources)
    except _Closed as closed:
        await socket.close(code=closed.code, reason=str(closed)[:120])
        return
    limit = resources.settings.ws_max_frame_bytes
    watch = asyncio.get_running_loop().create_task(connection.watch())
    try:
        await _serve(socket, connection, limit)
    finally:
        try:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
            await connection.stop_relaying()
        finally:
            await connection.hold.release()


async def _serve(socket: WebSocket[Any, Any, Any], connection: _Connection, limit: int) -> None:
    """Read and answer frames until the client leaves or the socket is closed."""
    try:
        while not connection.closed:
            message = await socket.receive_data(mode="text")
            size = len(message.encode()) if isinstance(message, str) else len(message)
            if size > limit:
                await connection.close(
                    MESSAGE_TOO_BIG, f"a message may hold {limit} bytes (WS_MAX_FRAME_BYTES)"
                )
                break
            try:
                await connection.handle(message)
            except _Closed as closed:
                await connection.close(closed.code, str(closed))
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client left, or the socket was closed under the read


__all__ = ["WS_PATH", "chat_socket", "stream_url"]
