"""A user's chat sessions: `GET /v1/sessions`, `GET /v1/sessions/{id}/messages`,
`DELETE /v1/sessions/{id}`. Sessions belong to their user; anyone else gets 404."""

from __future__ import annotations

from litestar import Router, delete, get
from litestar.params import FromPath, Parameter

from api.identity import CallerDep
from api.params import parse_id
from api.resources import ResourcesDep
from api.schemas import SessionMessages, SessionPage, message_out, session_out
from db.chat import list_sessions, own_session, session_messages
from db.engine import async_unit_of_work
from usecases import chat

# How long a deleted answer's stream stays for the readers already following it.
DELETED_STREAM_GRACE_SECONDS = 5


@get("/", summary="Your chat sessions, most recently active first")
async def list_chat_sessions(
    resources: ResourcesDep,
    caller: CallerDep,
    limit: int = Parameter(default=20, ge=1, le=100),
    cursor: str | None = Parameter(default=None, max_length=200),
) -> SessionPage:
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        chats, next_cursor = await list_sessions(session, caller.user_id, limit, cursor)
    return SessionPage([session_out(chat) for chat in chats], next_cursor)


@get(
    "/{session_id:str}/messages",
    summary="A session's messages, oldest first, with citations and token counts",
)
async def get_session_messages(
    resources: ResourcesDep, caller: CallerDep, session_id: FromPath[str]
) -> SessionMessages:
    ident = parse_id(session_id, "session")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        chat = await own_session(session, caller.user_id, ident)
        messages = await session_messages(session, chat.id)
    return SessionMessages(session_out(chat), [message_out(m) for m in messages])


@delete(
    "/{session_id:str}",
    status_code=204,
    summary="Delete a session, its messages and answers; an answer still being written stops",
    description=(
        "Its jobs and their event streams go too (their URLs answer 404); a reader following "
        "an answer still being written gets its `end`. The tokens they spent stay counted."
    ),
)
async def delete_chat_session(
    resources: ResourcesDep, caller: CallerDep, session_id: FromPath[str]
) -> None:
    await chat.delete_session(resources, caller, parse_id(session_id, "session"))


router = Router(
    "/sessions",
    tags=["sessions"],
    route_handlers=[list_chat_sessions, get_session_messages, delete_chat_session],
)
