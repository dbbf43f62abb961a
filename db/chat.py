"""Chat sessions, their messages, and the rows a chat job reads and writes.

A question is asked in one transaction: the session (new or the caller's own), the user's
message, the answer's placeholder (status `pending`) and the job, which both messages point
at. The worker later fills the placeholder, records usage and finishes the job in one more
transaction, keyed by the job, so a retried job never saves or counts twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from db.documents import require_documents
from db.jobs import finish_job, hold_job
from db.models import ChatSession, Job, Message
from db.paging import decode_cursor, page_of
from db.usage import record_usage

TITLE_CHARS = 80
# Messages of the session's past a worker reads as history (the prompt trims further).
HISTORY_MESSAGES = 20


@dataclass(frozen=True)
class AskedQuestion:
    job: Job
    chat_session: ChatSession
    answer: Message


# --- API side -------------------------------------------------------------------------------


async def own_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> ChatSession:
    chat = await session.scalar(
        select(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
    )
    if chat is None:
        raise NotFound(f"no session {session_id}")
    return chat


async def ask_question(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    question: str,
    model: str,
    session_id: uuid.UUID | None,
    document_ids: Sequence[uuid.UUID] | None,
) -> AskedQuestion:
    """Record a question and its chat job; the job still has to be enqueued."""
    if session_id is None:
        chat = ChatSession(tenant_id=tenant_id, user_id=user_id, title=_title(question))
        session.add(chat)
    else:
        try:
            chat = await own_session(session, user_id, session_id)
        except NotFound:
            raise InvalidInput("session_id", f"no session {session_id} of yours") from None
        chat.updated_at = func.now()
    if document_ids:
        await require_documents(session, document_ids)
    job = Job(
        tenant_id=tenant_id,
        user_id=user_id,
        kind="chat",
        options={"document_ids": [str(d) for d in document_ids or []]},
    )
    session.add(job)
    await session.flush()
    question_row = Message(
        tenant_id=tenant_id, session_id=chat.id, role="user", content=question, job_id=job.id
    )
    session.add(question_row)
    await session.flush()  # the question's clock_timestamp() comes before the answer's
    answer = Message(
        tenant_id=tenant_id,
        session_id=chat.id,
        role="assistant",
        content="",
        status="pending",
        model=model,
        job_id=job.id,
    )
    session.add(answer)
    await session.flush()
    await session.refresh(chat)
    await session.refresh(job)
    return AskedQuestion(job, chat, answer)


def _title(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


async def list_sessions(
    session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ChatSession], str | None]:
    """A page of the user's sessions, most recently active first."""
    query = (
        select(ChatSession)
        .where(ChatSession.user_id == user_id)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
    )
    if cursor:
        at, ident = decode_cursor(cursor)
        query = query.where(tuple_(ChatSession.updated_at, ChatSession.id) < tuple_(at, ident))
    rows = (await session.scalars(query.limit(limit + 1))).all()
    return page_of(rows, limit, lambda chat: (chat.updated_at, chat.id))


async def session_of_job(session: AsyncSession, job_id: uuid.UUID) -> uuid.UUID | None:
    """The chat session a chat job's question and answer belong to."""
    return await session.scalar(select(Message.session_id).where(Message.job_id == job_id).limit(1))


async def session_messages(session: AsyncSession, session_id: uuid.UUID) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.session_id == session_id)
        .order_by(Message.created_at, Message.id)
    )
    return list(rows.all())


async def delete_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> dict[uuid.UUID, str]:
    """Delete the user's session, its messages and its chat jobs; returns each job's status
    as it was, so the workers of the unfinished ones can be told to stop and every job's
    event stream be removed. What the jobs spent stays counted (usage loses the job id)."""
    chat = await own_session(session, user_id, session_id)
    job_ids = select(Message.job_id).where(Message.session_id == chat.id)
    jobs = await session.execute(
        select(Job.id, Job.status).where(Job.id.in_(job_ids)).with_for_update()
    )
    statuses = {job_id: status for job_id, status in jobs.all()}
    await session.execute(delete(ChatSession).where(ChatSession.id == chat.id))
    await session.execute(delete(Job).where(Job.id.in_(statuses)))
    return statuses


async def cancel_queued_answer(session: AsyncSession, job_id: uuid.UUID) -> None:
    """A chat job cancelled before any worker took it: its answer is empty and cancelled."""
    await session.execute(
        update(Message)
        .where(Message.job_id == job_id, Message.role == "assistant")
        .values(status="cancelled")
    )


# --- worker side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatTask:
    """What a worker needs to answer a chat job."""

    user_id: uuid.UUID | None
    session_id: uuid.UUID
    message_id: uuid.UUID
    question: str
    model: str
    document_ids: list[uuid.UUID]
    history: list[tuple[Literal["user", "assistant"], str]]


def load_chat_task(session: Session, job: Job) -> ChatTask | None:
    """The question, options and history of a chat job; None when its session is gone."""
    rows = {
        m.role: m for m in session.scalars(select(Message).where(Message.job_id == job.id)).all()
    }
    question, answer = rows.get("user"), rows.get("assistant")
    if question is None or answer is None:
        return None
    earlier = session.scalars(
        select(Message)
        .where(
            Message.session_id == question.session_id,
            Message.created_at < question.created_at,
            Message.status == "complete",
        )
        .order_by(Message.created_at.desc())
        .limit(HISTORY_MESSAGES)
    ).all()
    options: dict[str, Any] = job.options or {}
    return ChatTask(
        user_id=job.user_id,
        session_id=question.session_id,
        message_id=answer.id,
        question=question.content,
        model=answer.model or "",
        document_ids=[uuid.UUID(d) for d in options.get("document_ids", [])],
        history=[(m.role, m.content) for m in reversed(earlier)],  # type: ignore[misc]
    )


@dataclass(frozen=True)
class FinishedAnswer:
    content: str
    status: Literal["complete", "cancelled", "failed"]
    citations: list[dict[str, Any]]
    model: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    estimated: bool = False  # the counts are tiktoken's: the provider reported none


JOB_STATUS = {"complete": "succeeded", "cancelled": "cancelled", "failed": "failed"}


def save_answer(session: Session, tenant_id: uuid.UUID, job: Job, answer: FinishedAnswer) -> bool:
    """Store the answer, count its tokens and finish the job, all in the caller's transaction.
    Keyed by the job: saving again changes nothing and counts nothing twice. False when the
    job is gone (its session was deleted meanwhile): then only the tokens are counted."""
    if not hold_job(session, job.id):
        record_usage(
            session,
            tenant_id=tenant_id,
            user_id=job.user_id,
            job_id=None,
            kind="chat",
            model=answer.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            estimated=answer.estimated,
        )
        return False
    session.execute(
        update(Message)
        .where(Message.job_id == job.id, Message.role == "assistant")
        .values(
            content=answer.content,
            status=answer.status,
            citations=answer.citations,
            model=answer.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
        )
    )
    session_id = select(Message.session_id).where(Message.job_id == job.id).limit(1)
    session.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id.scalar_subquery())
        .values(updated_at=func.now())
    )
    record_usage(
        session,
        tenant_id=tenant_id,
        user_id=job.user_id,
        job_id=job.id,
        kind="chat",
        model=answer.model,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        estimated=answer.estimated,
    )
    finish_job(session, job.id, JOB_STATUS[answer.status], error=answer.error)
    return True


def fail_chat(session: Session, job_id: uuid.UUID, reason: str) -> None:
    """The chat job failed for `reason` before it could save an answer."""
    session.execute(
        update(Message)
        .where(Message.job_id == job_id, Message.role == "assistant", Message.status == "pending")
        .values(status="failed")
    )
    finish_job(session, job_id, "failed", error=reason)
