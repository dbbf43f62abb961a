"""Questions and their sessions: asking (the question saved, its job queued, its stream
started) and deleting a session with everything it holds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from core.errors import InvalidInput
from db.chat import AskedQuestion, ask_question, fail_chat
from db.chat import delete_session as delete_session_rows
from db.engine import async_unit_of_work
from db.jobs import ACTIVE
from transport import events
from transport.queue import CHAT_ACTOR, enqueue
from usecases.jobs import enqueue_or_fail
from usecases.ports import ApiParts, Who
from usecases.quota import require_quota

# How long a deleted answer's stream stays for the readers already following it.
DELETED_STREAM_GRACE_SECONDS = 5


async def ask(
    parts: ApiParts,
    who: Who,
    question: str,
    model: str | None,
    session_id: uuid.UUID | None,
    document_ids: Sequence[uuid.UUID] | None,
) -> AskedQuestion:
    """Save a question with an empty answer and its job, start the job's event stream, and
    queue the job. A model outside OPENAI_MODEL and ALLOWED_MODELS is refused."""
    settings = parts.settings
    chosen = model or settings.default_chat_model
    if chosen not in settings.chat_models:
        raise InvalidInput(
            "model",
            f"{chosen!r} is not allowed here; choose one of {', '.join(settings.chat_models)}",
        )
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        await require_quota(session, who)
        asked = await ask_question(
            session,
            tenant_id=who.tenant_id,
            user_id=who.user_id,
            question=question,
            model=chosen,
            session_id=session_id,
            document_ids=document_ids,
        )
    job_id = asked.job.id
    start = events.Start(str(job_id), str(asked.chat_session.id), str(asked.answer.id), chosen)

    async def start_stream() -> None:
        await events.publish(parts.redis, job_id, settings.stream_retention_seconds, start)

    await enqueue_or_fail(
        parts,
        who,
        job_id,
        lambda broker: enqueue(broker, "chat", CHAT_ACTOR, str(job_id), str(who.tenant_id)),
        fail_chat,
        "the job queue is unavailable; your question was saved but not answered, try again shortly",
        first=start_stream,
    )
    return asked


async def delete_session(parts: ApiParts, who: Who, session_id: uuid.UUID) -> None:
    """Delete the caller's session, its messages and its answers' jobs and streams. An answer
    still being written stops (its worker sees the cancel key); whoever follows it reads its
    `End`, then its stream goes; a finished answer's stream goes at once."""
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        jobs = await delete_session_rows(session, who.user_id, session_id)
    unfinished = [job_id for job_id, status in jobs.items() if status in ACTIVE]
    finished = [job_id for job_id, status in jobs.items() if status not in ACTIVE]
    retention = parts.settings.stream_retention_seconds
    await events.request_cancel(parts.redis, unfinished, retention)
    await events.forget_streams(parts.redis, finished, unfinished, DELETED_STREAM_GRACE_SECONDS)
