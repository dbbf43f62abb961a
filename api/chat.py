"""`POST /v1/chat` queues a question; `GET /v1/chat/{job_id}/stream` relays its answer as
Server-Sent Events read from the job's Redis Stream, resumable with Last-Event-ID."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy import func, select

from api.capacity import Hold
from api.identity import Caller, CallerDep, bearer_caller, caller_of
from api.openapi import problem_responses
from api.params import parse_document_ids, parse_field_id, parse_id, text_field
from api.relay import follow
from api.resources import ApiResources, ResourcesDep
from api.schemas import ChatStarted
from api.signin.tokens import InvalidToken, decode_stream_token, issue_stream_token
from core.errors import (
    AuthenticationFailed,
    Gone,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from db.chat import AskedQuestion, session_of_job
from db.engine import async_unit_of_work
from db.jobs import FINISHED, get_job
from db.models import Job
from transport import events
from transport.events import format_stream_id, parse_stream_id, stream_key
from usecases import chat

log = logging.getLogger("docuchat.api")

# The stream authenticates itself (a stream token or the bearer header): see `stream_caller`.
STREAM_PATH = r"^/v1/chat/[^/]+/stream$"
# Browsers reconnect this many milliseconds after a dropped stream.
RECONNECT_MS = 1000


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A question, as `POST /v1/chat` takes it and a WebSocket's question frame carries it."""

    message: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    session_id: str | None = None
    document_ids: Annotated[list[str], msgspec.Meta(max_length=100)] | None = None
    model: str | None = None


async def ask_question(resources: ApiResources, caller: Caller, data: ChatRequest) -> AskedQuestion:
    """Check a question's fields and queue it: the same for HTTP and WebSocket."""
    question = text_field(data.message, "message").strip()
    if not question:
        raise InvalidInput("message", "the message is empty")
    return await chat.ask(
        resources,
        caller,
        question,
        data.model,
        parse_field_id(data.session_id, "session_id") if data.session_id else None,
        parse_document_ids(data.document_ids),
    )


def stream_url(resources: ApiResources, caller: Caller, job_id: uuid.UUID) -> str:
    token = issue_stream_token(
        resources.settings, caller.user_id, caller.tenant_id, job_id, caller.token_version
    )
    return f"/v1/chat/{job_id}/stream?token={token}"


@post("/", status_code=202, summary="Ask a question; the answer streams")
async def ask(
    resources: ResourcesDep, caller: CallerDep, data: JSONBody[ChatRequest]
) -> ChatStarted:
    asked = await ask_question(resources, caller, data)
    return ChatStarted(
        job_id=str(asked.job.id),
        session_id=str(asked.chat_session.id),
        message_id=str(asked.answer.id),
        stream_url=stream_url(resources, caller, asked.job.id),
    )


async def stream_caller(
    request: Request[Any, Any, Any], resources: ApiResources, job_id: uuid.UUID, token: str | None
) -> Caller:
    """Who reads this stream: a stream token for exactly this job, or the usual bearer token."""
    if token is None:
        return await bearer_caller(request)
    try:
        claims = decode_stream_token(resources.settings, token)
    except InvalidToken as exc:
        raise AuthenticationFailed(str(exc)) from None
    if claims.job_id != job_id:
        raise PermissionDenied("this stream token is for another job")
    requested = request.headers.get(resources.settings.tenant_header)
    return await caller_of(resources, claims.user_id, claims.tenant_id, requested, claims.version)


async def own_chat_job(resources: ApiResources, caller: Caller, job_id: uuid.UUID) -> Job:
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        job = await get_job(session, job_id)
    if job.kind != "chat" or job.user_id != caller.user_id:
        raise NotFound(f"no chat job {job_id}")
    return job


@get(
    "/{job_id:str}/stream",
    summary="The answer as Server-Sent Events: start, citations, delta..., end or error",
    description=(
        "Authenticate with the `token` query parameter of `stream_url` (browsers' EventSource "
        "cannot send headers) or with the bearer header. Every event has an id; reconnecting "
        "with `Last-Event-ID` resumes right after it; an id this stream never gave out is "
        "422, and the last event of a finished answer is 204 (EventSource then stops "
        "reconnecting). Keep-alive comments arrive every SSE_KEEPALIVE_SECONDS."
    ),
    security=[{}],
    responses={
        204: ResponseSpec(
            None, description="the answer is finished and Last-Event-ID was its last event"
        ),
        **problem_responses(410),
    },
)
async def stream_answer(
    request: Request[Any, Any, Any],
    resources: ResourcesDep,
    job_id: FromPath[str],
    token: Annotated[str | None, QueryParameter(name="token", max_length=4096)] = None,
) -> Response[Any]:
    ident = parse_id(job_id, "job")
    caller = await stream_caller(request, resources, ident, token)
    job = await own_chat_job(resources, caller, ident)
    key = stream_key(ident)
    last_id, read_all = await resume_point(resources, key, request.headers.get("last-event-id", ""))
    if read_all and job.status in FINISHED:
        return Response(None, status_code=204)  # EventSource stops reconnecting on a 204
    if job.status in FINISHED and not await resources.redis.exists(key):
        raise Gone(await _why_gone(resources, caller, job))
    hold = await resources.capacity.take(resources.streams, caller.user_id, caller.tenant_id)
    body = relay(resources, caller, ident, last_id, hold)
    resources.capacity.guard(body, hold)
    return Stream(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _why_gone(resources: ApiResources, caller: Caller, job: Job) -> str:
    """Why a finished answer's live stream is missing, and where its saved answer is: it
    outlived its retention, or Redis lost it (a reset, a flush) before then."""
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        session_id = await session_of_job(session, job.id)
        now = await session.scalar(select(func.now()))
    where = (
        f"read the saved answer with GET /v1/sessions/{session_id}/messages"
        if session_id
        else "its conversation was deleted"
    )
    retention = resources.settings.stream_retention_seconds
    ended = job.finished_at or job.updated_at
    if now is not None and (now - ended).total_seconds() < retention:
        return (
            "the live stream of this answer was lost (the server's Redis was reset or "
            f"flushed); {where}"
        )
    return f"the live stream of this answer was kept for {retention} s and has expired; {where}"


async def resume_point(resources: ApiResources, key: str, header: str) -> tuple[str, bool]:
    """The stream id to read after (Last-Event-ID when it is one this stream could have given
    out, "0-0" without one), and whether the reader has read every entry there is. An id past
    the stream's last entry, or from the future, would be waited for until the stream
    expired: 422 instead."""
    last_id = header.strip() or "0-0"
    refused = InvalidInput("Last-Event-ID", "not an event id this stream gave out")
    wanted = parse_stream_id(last_id)
    if wanted is None:
        raise refused
    seconds, micros = await resources.redis.time()
    if wanted[0] > seconds * 1000 + micros // 1000:  # Redis makes ids from its own clock
        raise refused
    newest = await resources.redis.xrevrange(key, count=1)
    last = parse_stream_id(_text(newest[0][0])) if newest else None
    if last is not None and wanted > last:
        raise refused
    return format_stream_id(wanted), last is not None and wanted == last


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def relay(
    resources: ApiResources, caller: Caller, job_id: uuid.UUID, last_id: str, hold: Hold
) -> AsyncIterator[bytes]:
    """The answer's events after `last_id` as Server-Sent Events (`api/relay.py` follows the
    stream), keep-alive comments while nothing comes, until the answer's last event; `hold`
    is its place in the stream budget, let go at the end. What arrived together goes out in
    one write, encoded here: at a thousand readers the relay's cost is its per-event work."""
    retry = b"retry: %d\n" % RECONNECT_MS  # on the first write, and with `reconnect`
    try:
        async for item in follow(resources, caller, job_id, last_id):
            if item is None:
                chunk = b": keep-alive\n\n"
            elif isinstance(item, list):
                chunk = b"".join(
                    b"id: %s\nevent: %s\ndata: %s\n\n"
                    % (stored.id.encode(), stored.name.encode(), stored.data)
                    for stored in item
                )
            else:
                chunk = _made(item)
                if isinstance(item, events.Reconnect):
                    retry = retry or b"retry: %d\n" % RECONNECT_MS
            yield retry + chunk
            retry = b""
    finally:
        await hold.release()


def _made(event: events.AnswerEvent) -> bytes:
    """An event the relay makes itself (never stored: it has no id)."""
    return b"event: %s\ndata: %s\n\n" % (events.name_of(event).encode(), events.data_of(event))


router = Router("/chat", tags=["chat"], route_handlers=[ask, stream_answer])
