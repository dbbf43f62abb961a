"""A user's chat sessions: `GET /v1/sessions`, `GET /v1/sessions/{id}/messages`,
`DELETE /v1/sessions/{id}`. Sessions belong to their user; anyone else gets 404."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get
from litestar.params import FromPath, Parameter

from api.files import parse_id
from api.identity import Caller
from api.resources import resources_of
from api.schemas import SessionMessages, SessionPage, message_out, session_out
from core.job_streams import publish, request_cancel, usage_payload
from db.chat import delete_session, list_sessions, own_session, session_messages
from db.engine import async_unit_of_work


@get("/v1/sessions", tags=["sessions"], summary="Your chat sessions, most recently active first")
async def list_chat_sessions(
    request: Request[Caller, Any, Any],
    limit: int = Parameter(default=20, ge=1, le=100),
    cursor: str | None = Parameter(default=None, max_length=200),
) -> SessionPage:
    resources = resources_of(request)
    caller = request.user
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        chats, next_cursor = await list_sessions(session, caller.user_id, limit, cursor)
    return SessionPage([session_out(chat) for chat in chats], next_cursor)


@get(
    "/v1/sessions/{session_id:str}/messages",
    tags=["sessions"],
    summary="A session's messages, oldest first, with citations and token counts",
)
async def get_session_messages(
    request: Request[Caller, Any, Any], session_id: FromPath[str]
) -> SessionMessages:
    resources = resources_of(request)
    caller = request.user
    ident = parse_id(session_id, "session")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        chat = await own_session(session, caller.user_id, ident)
        messages = await session_messages(session, chat.id)
    return SessionMessages(session_out(chat), [message_out(m) for m in messages])


@delete(
    "/v1/sessions/{session_id:str}",
    status_code=204,
    tags=["sessions"],
    summary="Delete a session and its messages; an answer still being written stops",
)
async def delete_chat_session(
    request: Request[Caller, Any, Any], session_id: FromPath[str]
) -> None:
    resources = resources_of(request)
    caller = request.user
    ident = parse_id(session_id, "session")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        cancelled = await delete_session(session, caller.user_id, ident)
    retention = resources.settings.stream_retention_seconds
    await request_cancel(resources.redis, list(cancelled), retention)
    end = {"finish_reason": "cancelled", "usage": usage_payload(0, 0)}
    for job_id, previous in cancelled.items():
        if previous == "queued":  # no worker will write the end of this answer
            await publish(resources.redis, job_id, retention, ("end", end))
