"""Answering one chat job: retrieve, build the prompt, stream the provider's text into the
job's event stream, then save the answer and its usage in one transaction."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from core import metrics
from core.job_streams import error_payload, usage_payload
from db.chat import JOB_STATUS, ChatTask, FinishedAnswer, load_chat_task, save_answer
from db.engine import unit_of_work
from db.jobs import claim_job, finish_job, hold_job
from db.models import Job
from db.search import hybrid_search
from db.usage import record_usage
from pipeline.chunking import count_tokens
from pipeline.normalise import normalise_text
from pipeline.prompting import Prompt, Source, Turn, build_prompt
from workers.event_stream import EventWriter, Relayed, relay_generation
from workers.outcomes import describe, error_code
from workers.resources import WorkerResources

log = logging.getLogger("docuchat.workers")

RESTART_REASON = "the answer was interrupted (its worker or the queue failed) and starts again"


def answer_chat_job(
    resources: WorkerResources, writer: EventWriter, tenant_id: uuid.UUID, job_id: uuid.UUID
) -> None:
    with unit_of_work(resources.engine, tenant_id) as session:
        claimed = claim_job(session, job_id)
        if claimed is None:
            return  # cancelled before it started, or a duplicate delivery of finished work
        job = claimed.job
        task = load_chat_task(session, job)
        if task is None:
            finish_job(session, job_id, "cancelled", error="the session was deleted")
            return
    if claimed.earlier_attempt:
        # Whatever an earlier attempt streamed is a half answer that will never finish, and
        # the stream may even be gone (Redis lost it): clients drop what they have shown.
        writer.emit("restart", {"reason": RESTART_REASON})
    prompt = _prompt(resources, tenant_id, job, task)
    citations = [_citation(source) for source in prompt.sources]
    writer.emit("citations", citations)
    # With no sources there is nothing to send a model: the extractive answerer says so.
    provider = resources.chat_provider if prompt.sources else resources.extractive
    model = provider.model_for(task.model)
    relayed = relay_generation(provider.stream(prompt, model), writer)
    answer = _finished_answer(prompt, model, citations, relayed)
    with unit_of_work(resources.engine, tenant_id) as session:
        saved = save_answer(session, tenant_id, job, answer)
    if not saved:  # the session was deleted meanwhile: its stream goes with it
        writer.discard()
        return
    spent = (answer.prompt_tokens, answer.completion_tokens)
    metrics.record_job(resources.redis, "chat", JOB_STATUS[answer.status])
    first = relayed.first_piece_at
    metrics.record_answer(
        resources.redis,
        first - job.created_at.timestamp() if first is not None else None,
        answer.completion_tokens,
    )
    if answer.status == "failed":
        log.warning("chat job %s failed: %s", job_id, answer.error, exc_info=relayed.error)
        message = answer.error or ""
        writer.emit("error", error_payload(error_code(relayed.error), message, *spent))
        return
    finished = relayed.finished
    reason = finished.finish_reason if finished and answer.status == "complete" else "cancelled"
    writer.emit("end", {"finish_reason": reason, "usage": usage_payload(*spent)})


def _prompt(resources: WorkerResources, tenant_id: uuid.UUID, job: Job, task: ChatTask) -> Prompt:
    """Retrieve the question's sources; its embedding is counted with the search."""
    settings, embedder = resources.settings, resources.embedder
    query = normalise_text(task.question)
    embedded = embedder.embed_query(query)
    with unit_of_work(resources.engine, tenant_id) as session:
        vector, only = embedded.vectors[0], task.document_ids or None
        hits = hybrid_search(session, tenant_id, query, vector, settings.top_k, only)
        record_usage(  # last: the tenant's month total stays locked only until the commit
            session,
            tenant_id=tenant_id,
            user_id=job.user_id,
            job_id=job.id if hold_job(session, job.id) else None,
            kind="embedding",
            model=embedder.model,
            prompt_tokens=embedded.prompt_tokens,
        )
    sources = [
        Source(n, h.chunk_id, h.document_id, h.filename, h.page_start, h.page_end, h.text)
        for n, h in enumerate(hits, start=1)
    ]
    history = [Turn(role, content) for role, content in task.history]
    return build_prompt(task.question, sources, history, settings.max_context_tokens)


def _citation(source: Source) -> dict[str, Any]:
    return {
        "n": source.n,
        "document_id": str(source.document_id),
        "filename": source.filename,
        "page_start": source.page_start,
        "page_end": source.page_end,
        "chunk_id": str(source.chunk_id),
    }


def _finished_answer(
    prompt: Prompt, model: str, citations: list[dict[str, Any]], relayed: Relayed
) -> FinishedAnswer:
    if relayed.finished is not None and not relayed.cancelled:
        usage = relayed.finished.usage
        return FinishedAnswer(
            relayed.text, "complete", citations, model, usage.prompt_tokens, usage.completion_tokens
        )
    # Stopped early: the provider reported nothing, so tiktoken counts what was spent.
    spent = count_tokens(relayed.text)
    prompt_tokens = prompt.tokens if spent or relayed.cancelled else 0
    if relayed.cancelled:
        return FinishedAnswer(relayed.text, "cancelled", citations, model, prompt_tokens, spent)
    error = describe(relayed.error) if relayed.error else "the provider stopped without finishing"
    return FinishedAnswer(
        relayed.text, "failed", citations, model, prompt_tokens, spent, error=error
    )
